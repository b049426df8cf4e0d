"""CESMA's Figure 9 (appendix A.2, :mod:`marlrepro.report.cesma_loss`) on SYNTHETIC DAgger runs: the
team's and each agent's final loss and reward–loss correlation, both panels drawn, a task without
runs drawn "not planned", and the figure's claims (config/published/cesma.yaml) judged from the
table as the ledger reads it."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_cesma_workflow import CLAIMS, fig_table
from test_workflow import write_final

from marlrepro.report.cesma import CESMA
from marlrepro.report.cesma_loss import COLUMNS, LossSetting, loss_report
from marlrepro.report.claims import FAILS, HOLDS, NOT_JUDGED, judge
from marlrepro.report.runs import RunDataError

AGENTS = ["big and slow", "medium", "small and fast"]
SEEDS = 3


def synthetic_dagger_run(run_dir, seed: int, scales: tuple[float, ...], with_losses: bool = True) -> str:
    """Five evaluations every 100 episodes (2500 steps): no update yet at the first (NaN losses), then
    agent ``i``'s loss ``scales[i] / k`` falling while the return rises towards -10."""
    k = np.arange(5)
    rows = {"t_env": 2500 * k, "episode": 100 * k, "test_return_mean": -10.0 - 30.0 / (1 + k) - 0.1 * seed}
    for i, scale in enumerate(scales if with_losses else ()):
        rows[f"loss_agent{i}"] = np.where(k == 0, np.nan, scale / np.maximum(k, 1) + 0.01 * seed)
    write_final(run_dir, algo="dagger", env="jaxmpe:simple_spread_hetero", seed=seed, t_env=10000,
                backend="jaxmpe", test_return_mean=float(rows["test_return_mean"][-1]))
    pd.DataFrame(rows).to_parquet(run_dir / "metrics.parquet")
    return str(run_dir)


def files(tmp_path):
    return ([tmp_path / f"fig9.{ext}" for ext in ("csv", "md", "html")],
            [tmp_path / f"fig9.{ext}" for ext in ("png", "pdf")])


def test_figure_9_per_agent_losses_correlations_and_claims(tmp_path):
    """The non-homogeneous task: a row for the team (the mean of the agents' losses) and one per
    agent, in agent order; losses falling as the return rises correlate negatively; the homogeneous
    task without runs is drawn "not planned"; the ledger judges both claims from the csv."""
    runs = [synthetic_dagger_run(tmp_path / f"hetero{seed}", seed, (3.0, 2.0, 1.0)) for seed in range(SEEDS)]
    tables, figures = files(tmp_path)
    setting = LossSetting.from_dict({"title": "simple_spread_hetero", "students": runs, "agents": AGENTS})
    table = loss_report([setting], "t", None, "paper", "paper scale", tables, figures,
                        not_planned=["simple_spread"])
    assert list(table.columns) == list(COLUMNS) and list(table["series"]) == [CESMA, *AGENTS]
    rows = table.set_index("series")
    # the last evaluation (k = 4): loss scale/4 + 0.01·seed, median over seeds at seed 1
    assert rows.loc["big and slow", "final_loss_median"] == pytest.approx(0.76)
    assert rows.loc["small and fast", "final_loss_median"] == pytest.approx(0.26)
    assert rows.loc[CESMA, "final_loss_median"] == pytest.approx(0.51)
    assert (rows["reward_loss_correlation"] < -0.9).all()
    assert rows.loc[CESMA, "final_median"] == pytest.approx(-16.1) and rows.loc[CESMA, "n_seeds"] == SEEDS
    assert all(path.stat().st_size > 0 for path in figures)
    read = pd.read_csv(tables[0])  # as the ledger reads it
    assert judge(CLAIMS["fig9_big_slow_biggest_loss"], {"cesma_fig9": read}).verdict == HOLDS
    # the homogeneous task not run here: judged on the task that ran (the ledger's "all"), and says so
    verdict = judge(CLAIMS["fig9_reward_loss_negative"], {"cesma_fig9": read})
    assert verdict.verdict == HOLDS and "not run 1" in verdict.evidence
    both = fig_table({(task, CESMA): {"reward_loss_correlation": -0.8}
                      for task in ("simple_spread", "simple_spread_hetero")})
    assert judge(CLAIMS["fig9_reward_loss_negative"], {"cesma_fig9": both}).verdict == HOLDS
    both.loc[0, "reward_loss_correlation"] = 0.2
    assert judge(CLAIMS["fig9_reward_loss_negative"], {"cesma_fig9": both}).verdict == FAILS
    swapped = read.assign(final_loss_median=read["final_loss_median"][::-1].to_numpy())
    assert judge(CLAIMS["fig9_big_slow_biggest_loss"], {"cesma_fig9": swapped}).verdict == FAILS
    smoke = read.assign(scale="smoke")
    assert judge(CLAIMS["fig9_big_slow_biggest_loss"], {"cesma_fig9": smoke}).verdict == NOT_JUDGED


def test_figure_9_homogeneous_task_draws_the_teams_loss_and_needs_per_agent_losses(tmp_path):
    """The homogeneous task: the team's row alone; a run without per-agent losses (an older DAgger)
    is refused, naming its file."""
    runs = [synthetic_dagger_run(tmp_path / f"spread{seed}", seed, (1.0, 1.0, 1.0)) for seed in range(SEEDS)]
    tables, figures = files(tmp_path)
    table = loss_report([LossSetting.from_dict({"title": "simple_spread", "students": runs})], "t", None,
                        "smoke", "smoke scale", tables, figures)
    assert list(table["series"]) == [CESMA] and table.loc[0, "final_loss_median"] == pytest.approx(0.26)
    old = synthetic_dagger_run(tmp_path / "old", 0, (1.0, 1.0, 1.0), with_losses=False)
    with pytest.raises(RunDataError, match="old/metrics.parquet: no per-agent supervised loss"):
        loss_report([LossSetting.from_dict({"title": "simple_spread", "students": [old]})], "t", None,
                    "smoke", "smoke scale", tables, figures)
