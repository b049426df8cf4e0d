"""IGM-DA appendix E (Figure 6): the aliased FrozenLake, the memoryless-policy analysis, the plain
Q-table against the integrated-DAgger Q-table, Proposition 5, and the figure/table outputs."""

from __future__ import annotations

import logging
import runpy
from pathlib import Path
from types import SimpleNamespace

import gymnasium
import numpy as np
import pandas as pd
import pytest

from marlrepro.frozenlake import (
    MAP,
    deterministic_policies,
    greedy_path,
    gymnasium_success_rate,
    imitation_update,
    make_lake,
    observation_success,
    run_frozenlake,
    success_probability,
)

ROOT = Path(__file__).resolve().parents[1]
SEEDS = (0, 1, 2, 3, 4)
EPISODES = 2000
RIGHT_DOWN_RIGHT_MIX = np.array([[0, 0, 1, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0.5, 0.5, 0]])  # per box


@pytest.fixture(scope="module")
def lake():
    return make_lake()


@pytest.fixture(scope="module")
def result():
    return run_frozenlake(SEEDS, EPISODES, methods=("qtable", "dagger"))


def test_map_and_aliasing(lake):
    assert MAP == ("SFFF", "FHFH", "FHFH", "HFFG")
    env = gymnasium.make("FrozenLake-v1", desc=list(MAP), is_slippery=False)
    assert ["".join(c.decode() for c in row) for row in env.unwrapped.desc] == list(MAP)
    assert lake.horizon == env.spec.max_episode_steps == 100
    assert (lake.start, lake.goal) == (0, 15)
    assert set(np.flatnonzero(lake.terminal)) == {5, 7, 9, 11, 12, 15}  # the holes and the goal
    np.testing.assert_array_equal(
        lake.observation.reshape(4, 4), [[0, 0, 1, 1], [0, 0, 1, 1], [2, 2, 3, 3], [2, 2, 3, 3]]
    )
    assert lake.n_cells == 16 and lake.n_observations == 4
    # moves (left, down, right, up): walls keep the agent in place; reward 1 only for stepping into G
    np.testing.assert_array_equal(lake.next_cell[0], [0, 4, 1, 0])
    np.testing.assert_array_equal(lake.next_cell[14], [13, 14, 15, 10])
    np.testing.assert_array_equal(np.argwhere(lake.reward == 1.0), [[14, 2]])


def test_no_deterministic_memoryless_policy_reaches_the_goal_but_a_stochastic_one_does(lake):
    policies = deterministic_policies(lake)
    assert policies.shape == (256, 4, 4)
    assert observation_success(lake, policies, "greedy").max() == 0.0
    # right in box 0, down in box 1, 50/50 down-right in box 3: P(G) = P(down at (2,2)) = 0.5
    assert observation_success(lake, RIGHT_DOWN_RIGHT_MIX, "proportional") == pytest.approx(0.5, abs=1e-9)


@pytest.mark.parametrize(
    ("p_down", "expected"),
    # 4 moves to (2,2), down with p_down, then right (1 - p_down) at (3,2) within the 95 moves left
    [(0.5, 0.5 * (1 - 0.5**95)), (0.99, 0.99 * (1 - 0.99**95))],  # 0.99: the 100-step limit bites
)
def test_exact_success_matches_gymnasium_rollouts(lake, p_down, expected):
    box_policy = RIGHT_DOWN_RIGHT_MIX.copy()
    box_policy[3] = [0, p_down, 1 - p_down, 0]
    cell_policy = box_policy[lake.observation]
    exact = float(success_probability(lake, cell_policy))
    assert exact == pytest.approx(expected, abs=1e-9)
    assert gymnasium_success_rate(lake, cell_policy, episodes=600, seed=0) == pytest.approx(exact, abs=0.07)


def test_imitation_regression_converges_to_the_average_one_hot():
    """Proposition 5 on a hand-made case: one observation shared by three cells visited 2:1:1, whose
    expert greedy actions are right, right and down: q(o, .) -> (0, 1/4, 3/4, 0)."""
    rng = np.random.default_rng(0)
    cells = rng.choice(3, size=20000, p=[0.5, 0.25, 0.25])
    labels = np.array([2, 1, 2])[cells]
    expected = np.bincount(labels, minlength=4) / len(labels)
    exact, smooth = np.zeros((1, 1, 4)), np.zeros((1, 1, 4))
    for n, label in enumerate(labels, start=1):
        imitation_update(exact, np.array([0]), np.array([label]), 1.0 / n)
        imitation_update(smooth, np.array([0]), np.array([label]), 0.005)
    np.testing.assert_allclose(exact[0, 0], expected, atol=1e-12)
    np.testing.assert_allclose(smooth[0, 0], [0.0, 0.25, 0.75, 0.0], atol=0.05)


def test_plain_q_table_fails_and_dagger_q_table_reaches_the_goal(result, lake):
    final = result.final().set_index(["method", "policy", "seed"])["success"].sort_index()
    assert (final.xs("greedy", level="policy") == 0.0).all()  # every greedy policy fails (see the analysis)
    dagger, qtable = final[("dagger", "proportional")], final[("qtable", "proportional")]
    assert (dagger > 0.35).all(), dagger.to_dict()
    assert dagger.median() > qtable.median() + 0.3, (dagger.to_dict(), qtable.to_dict())
    for seed in range(len(SEEDS)):
        learner = result.tables["dagger"][seed][lake.observation]
        assert greedy_path(lake, learner.argmax(-1))[1] != "goal"
        expert = result.experts["dagger"][seed]
        assert greedy_path(lake, expert.argmax(-1))[1] == "goal"  # the expert on the true cell knows the way


def test_dagger_learner_holds_the_expert_policy_averaged_over_its_box(result, lake):
    q = result.tables["dagger"]
    # averages of one-hots: row sums are 1 - (1 - beta)^visits, so 1 for the boxes on the way to G
    np.testing.assert_array_less(q.sum(-1), 1.0 + 1e-12)
    np.testing.assert_allclose(q[:, [0, 1, 3]].sum(-1), 1.0, atol=1e-3)
    expert_action = result.experts["dagger"].argmax(-1)
    assert (expert_action[:, 10] == 1).all()  # down at (2,2)
    assert (expert_action[:, 14] == 2).all()  # right at (3,2)
    np.testing.assert_array_less(0.25, q[:, 3, 1])  # box 3 mixes the two labels
    np.testing.assert_array_less(0.25, q[:, 3, 2])


def test_runs_are_deterministic_and_independent_of_the_other_seeds():
    pair = run_frozenlake([1, 3], 200, methods=("dagger", "qtable"))
    alone = run_frozenlake([3], 200, methods=("dagger", "qtable"))
    again = run_frozenlake([1, 3], 200, methods=("dagger", "qtable"))
    for method in ("dagger", "qtable"):
        np.testing.assert_array_equal(pair.tables[method][1], alone.tables[method][0])
        np.testing.assert_array_equal(pair.tables[method], again.tables[method])
    seed3 = pair.curves[pair.curves["seed"] == 3].reset_index(drop=True)
    assert seed3.equals(alone.curves)


def test_snakemake_script_writes_table_figure_and_log(tmp_path, monkeypatch):
    """workflow/scripts/igm_da_fig6.py run in-process with a stand-in ``snakemake`` object (no Snakemake)."""
    outputs = {ext: str(tmp_path / f"igm_da_fig6.{ext}") for ext in ("csv", "md", "html", "png", "pdf")}
    log = str(tmp_path / "igm_da_fig6.log")
    smk = SimpleNamespace(
        params=SimpleNamespace(seeds=[0, 1], episodes=200, scale="smoke", scale_description="SMOKE: tiny"),
        input=SimpleNamespace(published=str(ROOT / "config/published/igm_da.yaml")),
        output=_Named(**outputs),
        log=[log],
    )
    monkeypatch.setattr(logging.root, "handlers", [])  # so the script's basicConfig opens its log file
    runpy.run_path(str(ROOT / "workflow/scripts/igm_da_fig6.py"), init_globals={"snakemake": smk})
    for handler in logging.root.handlers:
        handler.close()
    assert all(Path(path).stat().st_size > 0 for path in [*outputs.values(), log])
    markdown = Path(outputs["md"]).read_text()
    assert "**Scale: smoke**" in markdown and "DAgger Q-table" in markdown
    assert "| DAgger Q-table | Prop. 5 reading |" in markdown and "| reaches the goal |" in markdown
    table = pd.read_csv(outputs["csv"])
    assert list(table["method"]) == ["Q-table", "DAgger Q-table", "BC Q-table"]
    assert set(table["backend"]) == {"tabular (gymnasium FrozenLake-v1)"}


class _Named(list):
    """Snakemake's named lists: iterable, and each item also an attribute."""

    def __init__(self, **items: str) -> None:
        super().__init__(items.values())
        self.__dict__.update(items)
