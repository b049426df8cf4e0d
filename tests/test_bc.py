"""Behavioural cloning (algo ``bc``, :mod:`marlrepro.learners.bc`) and the core's demonstration
hook: BC recovers a known policy from its demonstrations; a pack whose runs use different numbers
of demonstrations equals its runs alone, exactly; a crashed run resumes exactly; the config's
demos section is checked."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pandas as pd
import pytest
import torch
from run_outputs import (
    assert_crashed_pack_resumes_exactly,
    assert_packed_run_equals_alone,
)
from scripted_demos import KNOWN, write_scripted_demos
from training_checks import run_and_check_training

from marlrepro.buffer import Episodes
from marlrepro.config import load_config
from marlrepro.controller import AgentController
from marlrepro.core.stacked import StackedModules
from marlrepro.demos import collect_demos, write_demos
from marlrepro.envs import make
from marlrepro.envs.registry import validate_env
from marlrepro.errors import ConfigError
from marlrepro.learners.bc import BCLearner
from marlrepro.policy_file import export_policy
from marlrepro.runner import EpisodeRunner
from marlrepro.train import DEMO_PREFIX, PackMember, Trainer, train_pack

SETTINGS = ["run.device=cpu", "run.progress=false", "tracking.uri=", "agent.hidden_dim=16", "run.eval_episodes=8"]


@pytest.fixture(scope="module")
def scripted_demos(tmp_path_factory) -> Path:
    """The scripted expert's demonstrations on matrix:monotonic (tests/scripted_demos.py)."""
    return write_scripted_demos(tmp_path_factory.mktemp("scripted"))


def test_bc_recovers_a_known_policy_from_its_demonstrations(scripted_demos, tmp_path):
    """On the matrix game, BC's greedy decentralised agents play the expert's most frequent joint
    action, the optimum (1, 2), and score its payoff 5, though a quarter of the demonstrations are
    uniform joint actions and the untrained agents play another; it trained (its weights moved,
    its losses are finite)."""
    config = load_config(["config/algos/bc.yaml"], [
        *SETTINGS, "env.name=matrix:monotonic", "learner.lr=0.01", "run.t_max=1200", "run.eval_interval=400",
        f"demos.path={scripted_demos}", "demos.count=64", "demos.batch_size=32"])
    (final,) = run_and_check_training(Trainer.solo(config, tmp_path))
    metrics = pd.read_parquet(tmp_path / "metrics.parquet")
    assert metrics["test_return_mean"].iloc[0] != 5.0  # the untrained agents play another joint action
    assert metrics["accuracy"].iloc[-1] > 0.75  # the demonstrations' share of KNOWN, and a share of the rest
    assert final["greedy_joint_action"] == list(KNOWN)
    assert (final["greedy_payoff"], final["test_return_mean"], final["test_won_mean"]) == (5.0, 5.0, 1.0)
    probs = torch.tensor(final["policy"])
    assert bool((probs.argmax(dim=-1) == torch.tensor(KNOWN)).all())


class GoToOwnLandmark(AgentController):
    """A scripted simple_spread expert: agent ``i`` moves along the axis of its larger offset to
    landmark ``i`` (mpe2's observation: velocity, position, then the landmarks' offsets; actions
    1 −x, 2 +x, 3 −y, 4 +y), its choice returned as one-hot values for the greedy runner."""

    def step(self, obs, last_actions, hidden, avail=None):
        n = obs.shape[1]
        offset = obs[..., 4:10].reshape(*obs.shape[:2], 3, 2)[:, torch.arange(n), torch.arange(n)]  # [B, N, 2]
        along_x = offset[..., 0].abs() >= offset[..., 1].abs()
        action = torch.where(along_x, torch.where(offset[..., 0] > 0, 2, 1), torch.where(offset[..., 1] > 0, 4, 3))
        return torch.nn.functional.one_hot(action, self.spec.n_actions).float(), hidden


def test_bc_imitates_a_scripted_expert_on_mpe_spread_well_above_random(tmp_path):
    """64 demonstrations of :class:`GoToOwnLandmark` on simple_spread (25 steps, random landmarks):
    in 150 updates BC's greedy agents come to take the expert's action on most demonstrated steps,
    and score closer to the expert's return than to a uniformly random policy's."""
    config = load_config([], ["env.name=mpe:simple_spread", "agent.hidden_dim=8"])
    env = make("mpe:simple_spread", 64, 0)
    runner = EpisodeRunner([env], StackedModules([torch.nn.ModuleDict(
        {"policy": GoToOwnLandmark(env.spec, config.agent)})]), "policy", "stepwise")
    episodes, expert = runner.run([0.0], [True], [torch.Generator()], explore=False)
    _, uniform = runner.run([1.0], [True], [torch.Generator().manual_seed(0)])  # ε = 1: uniform actions
    (tmp_path / "expert.txt").write_text("GoToOwnLandmark of tests/test_bc.py\n")
    write_demos(tmp_path / "demos.zip", Episodes(**{name: value[0] for name, value in episodes.tensors().items()}),
                list(range(64)), expert.returns[0], expert.won[0], env.spec, {}, "greedy", tmp_path / "expert.txt",
                {"method": "scripted"})
    config = load_config(["config/algos/bc.yaml"], [
        *SETTINGS, "env.name=mpe:simple_spread", "agent.hidden_dim=32", "learner.lr=0.01", "env.num_envs=4",
        "learner.batch_size=4", "learner.buffer_size=4", "learner.updates_per_rollout=10", "run.t_max=1500",
        "run.eval_interval=1500", "run.eval_episodes=32", f"demos.path={tmp_path / 'demos.zip'}", "demos.count=64",
        "demos.batch_size=16"])
    (final,) = run_and_check_training(Trainer.solo(config, tmp_path / "run"))
    metrics = pd.read_parquet(tmp_path / "run" / "metrics.parquet")
    expert_return, uniform_return = float(expert.returns.mean()), float(uniform.returns.mean())
    assert expert_return > uniform_return + 20
    assert metrics["test_return_mean"].iloc[0] < uniform_return  # untrained
    assert final["test_return_mean"] > (expert_return + uniform_return) / 2
    assert metrics["accuracy"].iloc[-1] > 0.7  # the mean over all its updates; a uniform policy's is 1/5


@pytest.mark.parametrize("one_action_means_dead", [True, False])
def test_the_loss_is_the_negative_log_likelihood_of_available_live_demonstrated_actions(one_action_means_dead):
    """BC's loss equals a direct computation: −mean of log softmax over the available actions at the
    demonstrated action, over filled steps of live agents (by SMAC's convention those with more
    than one available action; every agent where none dies, as on Gold Miner); the replay batch
    plays no part."""
    torch.manual_seed(0)
    spec = dataclasses.replace(validate_env("mpe:simple_spread", {})[0], one_action_means_dead=one_action_means_dead)
    config = load_config(["config/algos/bc.yaml"], [*SETTINGS, "env.name=mpe:simple_spread", "demos.path=x.zip"])
    learner = BCLearner(spec, config, torch.device("cpu"))
    b, t, n, a = 3, spec.episode_limit, spec.n_agents, spec.n_actions
    demos = Episodes.empty(b, spec, torch.device("cpu"))
    demos.obs.normal_()
    demos.avail_actions.copy_(torch.rand(b, t + 1, n, a) < 0.7)
    demos.avail_actions[..., 0] = True
    demos.avail_actions[:, :, 1] = False  # agent 1 "dead": only action 0
    demos.avail_actions[:, :, 1, 0] = True
    demos.actions.copy_(torch.randint(a, (b, t, n)))
    demos.filled[:, :20] = 1.0
    demos.filled[2, 10:] = 0.0
    terms = learner(Episodes.empty(2, spec, torch.device("cpu")), torch.tensor(0.0), demos=demos)
    logits = learner.actor.sequence(demos.obs, demos.actions, demos.avail_actions)[:, :-1].detach()
    total, count = 0.0, 0
    for i in range(b):
        for step in range(t):
            for agent in range(n):
                avail, action = demos.avail_actions[i, step, agent], demos.actions[i, step, agent]
                if demos.filled[i, step] and (avail.sum() > 1 or not one_action_means_dead) and avail[action]:
                    log_pi = torch.log_softmax(logits[i, step, agent][avail], dim=-1)
                    total += float(log_pi[avail[:action].sum()])
                    count += 1
    assert 0 < count < b * t * n
    assert float(terms.loss.detach()) == pytest.approx(-total / count, rel=1e-5)
    other = learner(Episodes.empty(5, spec, torch.device("cpu")), torch.tensor(9.0), demos=demos)
    assert torch.equal(other.loss, terms.loss)


MPE = ["env.name=mpe:simple_spread", "env.num_envs=2", "learner.batch_size=2", "learner.buffer_size=2",
       "learner.updates_per_rollout=2", "run.eval_interval=100", "run.eval_episodes=2", "demos.batch_size=4"]


@pytest.fixture(scope="module")
def mpe_demos(tmp_path_factory) -> Path:
    """32 greedy episodes of a briefly trained QMIX policy on mpe:simple_spread."""
    root = tmp_path_factory.mktemp("mpe")
    expert = load_config(["config/algos/qmix.yaml"], [*SETTINGS, "env.name=mpe:simple_spread", "env.num_envs=4",
                                                      "learner.batch_size=4", "run.t_max=100", "run.eval_interval=100"])
    train_pack([PackMember(expert, root / "run")])
    export_policy(root / "run", root / "expert.zip")
    collect_demos(root / "expert.zip", root / "demos.zip", 32, width=32)
    return root / "demos.zip"


def _bc(demos: Path, count: int, seed: int, *extra: str):
    return load_config(["config/algos/bc.yaml"], [*SETTINGS, *MPE, f"demos.path={demos}", f"demos.count={count}",
                                                  f"run.seed={seed}", *extra])


def test_a_pack_of_runs_with_different_demo_counts_equals_the_runs_alone(mpe_demos, tmp_path):
    """Three BC runs using the first 4, 8 and 32 demonstrations (and other seeds), packed, equal
    the three runs alone exactly (CPU): each samples its own prefix with its own generator. The
    runs differ, and each run's demo batches come from its prefix only."""
    runs = [(4, 0), (8, 1), (32, 2)]
    train_pack([PackMember(_bc(mpe_demos, count, seed, "run.t_max=300"), tmp_path / "pack" / str(count))
                for count, seed in runs])
    for count, seed in runs:
        train_pack([PackMember(_bc(mpe_demos, count, seed, "run.t_max=300"), tmp_path / "alone" / str(count))])
        assert_packed_run_equals_alone(tmp_path / "pack" / str(count), tmp_path / "alone" / str(count))
    trainer = Trainer([PackMember(_bc(mpe_demos, count, seed), tmp_path / "fresh" / str(count))
                       for count, seed in runs])
    drawn = torch.stack([trainer.demos.draw([run.generator for run in trainer.runs], [True] * 3) for _ in range(50)])
    for r, (count, _) in enumerate(runs):
        assert set(drawn[:, r].flatten().tolist()) == set(range(count)) if count < 32 else \
            set(drawn[:, r].flatten().tolist()) <= set(range(count))
        assert all(len(set(batch.tolist())) == 4 for batch in drawn[:, r])  # distinct within a batch


def test_the_demo_batch_joins_the_loss_inputs_in_the_replay_batchs_layout(mpe_demos, tmp_path):
    """An update's inputs carry each run's demo batch under the demo. prefix, float32, with the
    replay batch's padded length (here cut to a bucket: run.length_buckets=2)."""
    trainer = Trainer([PackMember(_bc(mpe_demos, 8, s, "run.length_buckets=2"), tmp_path / str(s)) for s in (0, 1)])
    episodes, _ = trainer.runner.run([0.0, 0.0], [True, True], [run.generator for run in trainer.runs])
    trainer.buffer.insert(episodes, [0, 1])
    inputs = trainer.sample_inputs([True, True])
    demos = {name.removeprefix(DEMO_PREFIX): v for name, v in inputs.items() if name.startswith(DEMO_PREFIX)}
    assert set(demos) == {"obs", "state", "avail_actions", "actions", "reward", "terminated", "filled"}
    assert demos["obs"].dtype == torch.float32 and demos["obs"].shape[:2] == (2, 4)
    assert demos["filled"].shape[-1] == inputs["filled"].shape[-1] == 25
    assert demos["obs"].shape[2] == inputs["obs"].shape[2] == 26


@pytest.mark.parametrize("algo", ["mifq", "iqvdn", "iiq", "masqil"])
def test_the_hook_trains_the_learners_of_demonstrations_and_replay(mpe_demos, tmp_path, algo):
    """The soft-Q imitation learners (learners/soft_q.py) train through the trainer on both batches,
    padded to one bucket length (run.length_buckets=2): every trained network moves, losses are
    finite; MIFQ's hypernetworks (mifq.yaml: iq.mixer_lr 0) keep their initial weights."""
    config = load_config([f"config/algos/{algo}.yaml"], [
        *SETTINGS, *MPE, "learner.buffer_size=8", "run.t_max=300", "run.eval_interval=150", "run.length_buckets=2",
        "mixer.embed_dim=8", "mixer.hypernet_embed=16", f"demos.path={mpe_demos}", "demos.count=16"])
    run_and_check_training(Trainer.solo(config, tmp_path), fixed=("mixer_r", "mixer_v") if algo == "mifq" else ())


def test_a_bc_pack_resumed_after_a_crash_equals_an_uninterrupted_one(mpe_demos, tmp_path, monkeypatch):
    """The demo batches are drawn by each run's checkpointed generator: a pack of two runs with
    different demo counts, crashed between checkpoints and resumed, ends bit for bit as an
    uninterrupted one."""
    def pack(name: str) -> list[PackMember]:
        return [PackMember(_bc(mpe_demos, count, seed, "run.t_max=300", "run.checkpoint_interval=2"),
                           tmp_path / name / f"seed{seed}") for count, seed in ((4, 0), (32, 1))]

    assert_crashed_pack_resumes_exactly(pack, monkeypatch, tmp_path, crash_after=3)


@pytest.mark.parametrize(("settings", "words"), [
    (["algo=qmix", "demos.path=d.zip"], "demos.path: algo 'qmix' learns from no demonstrations"),
    (["algo=bc", "demos.path=d.zip", "demos.count=8", "demos.batch_size=16"], "demos.batch_size: a batch draws distinct"),
    (["algo=bc", "demos.path=d.zip", "demos.count=0"], "demos.count: must be >= 1, got 0"),
    (["algo=bc", "demos.path=d.zip", "imitation.mode=bc", "imitation.expert_input=state"],
     "imitation.mode: algo 'bc' is a learner of its own"),
    (["algo=bc", "demos.pth=d.zip"], "demos.pth: unknown key 'pth' (did you mean 'path'?)"),
])
def test_the_demos_section_is_checked_up_front(settings, words):
    with pytest.raises(ConfigError) as err:
        load_config([], [*SETTINGS, "env.name=matrix:monotonic", *settings])
    assert words in str(err.value)


@pytest.mark.parametrize("algo", ["bc", "mifq", "masqil"])
def test_a_learner_of_demonstrations_without_a_file_fails_before_training(tmp_path, monkeypatch, algo):
    """Every learner of demonstrations needs demos.path; the trainer says so before it builds an env
    or a learner (a config without it still builds a learner, for tests of a loss)."""
    from marlrepro import train as train_module

    def nothing_yet(*args, **kwargs):
        raise AssertionError("the trainer built something before checking the demonstrations")

    monkeypatch.setattr(train_module, "make", nothing_yet)
    monkeypatch.setattr(train_module, "build_learner", nothing_yet)
    config = load_config([f"config/algos/{algo}.yaml"], [*SETTINGS, "env.name=matrix:monotonic"])
    with pytest.raises(ConfigError, match=f"demos.path: algo '{algo}' learns from demonstrations; set it"):
        Trainer.solo(config, tmp_path)


def test_a_pack_may_differ_in_the_demo_count_but_not_in_the_demo_file(mpe_demos, tmp_path):
    with pytest.raises(ConfigError, match="differs from .* in demos.path"):
        Trainer([PackMember(_bc(mpe_demos, 8, 0), tmp_path / "a"),
                 PackMember(_bc(mpe_demos, 8, 1, f"demos.path={tmp_path / 'other.zip'}"), tmp_path / "b")])


def test_the_memory_check_counts_one_copy_of_the_packs_demonstrations(mpe_demos):
    """A pack's demonstrations are one copy on the device, of its largest demos.count."""
    from marlrepro.memory import episode_bytes, pack_bytes

    spec = validate_env("mpe:simple_spread", {})[0]
    configs = [_bc(mpe_demos, count, seed) for count, seed in ((4, 0), (32, 1))]
    without = [load_config(["config/algos/bc.yaml"], [*SETTINGS, *MPE, "algo=qmix", "demos.path="])] * 2
    assert pack_bytes(spec, configs) - pack_bytes(spec, without) == 32 * episode_bytes(spec, configs[0].learner)
