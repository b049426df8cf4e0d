"""``learner.updates_per_env_step``: the updates after each rollout follow its environment steps.

A run that can train credits each rollout's steps ``S`` and has then taken ``floor(ρ × S)``
updates in all, the fraction carried over (``Trainer._updates_due``); the runs of a pack, which
collect different step counts, each keep their own schedule, equal to the run alone, and resume
exactly. QMIX on SMAX 3m, whose episodes end at different steps, with hard target copies every
few episodes of each run. Not HASAC, whose config sets the ratio: its loss draws random numbers
for the whole pack, so its packed runs are not bitwise equal to the runs alone anyway
(docs/architecture.md); its pack resumes exactly with the ratio in ``test_hasac.py``.
"""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from run_outputs import (
    assert_crashed_pack_resumes_exactly,
    assert_packed_run_equals_alone,
)

from marlrepro.checkpoint import load_checkpoint
from marlrepro.config import load_config
from marlrepro.errors import ConfigError
from marlrepro.train import PackMember, Trainer, train_pack

RATIO = 0.05
SEEDS = (0, 1)


def _config(seed: int, *extra: str):
    """QMIX on SMAX 3m at ``RATIO`` updates per env step; ``batch_size`` 8 over 4 environments,
    so that the first rollout cannot train (its steps earn nothing)."""
    return load_config(["config/algos/qmix.yaml"], [
        "env.name=smax:3m", "env.num_envs=4", "learner.batch_size=8", f"learner.updates_per_env_step={RATIO}",
        "learner.target_update_interval=12", "agent.hidden_dim=32", "mixer.embed_dim=16", "mixer.hypernet_embed=32",
        "run.t_max=600", "run.eval_interval=300", "run.eval_episodes=4", "run.checkpoint_interval=3",
        "run.device=cpu", "run.progress=false", "tracking.uri=", f"run.seed={seed}", *extra])


def _pack(root: Path) -> list[PackMember]:
    return [PackMember(_config(seed), root / f"seed{seed}") for seed in SEEDS]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, list[tuple[list[bool], list[float], list[int]]]]:
    """The pack of ``SEEDS`` (``root/pack``) and each run alone (``root/alone``), trained once;
    returns ``root`` and the pack's schedule: per rollout, which runs could train, the steps each
    collected and the updates each was given."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("update_schedule")
    due, schedule = Trainer._updates_due, []

    def recorded(self, trainable, steps):
        counts = due(self, trainable, steps)
        schedule.append((list(trainable), list(steps), list(counts)))
        return counts

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Trainer, "_updates_due", recorded)
        train_pack(_pack(root / "pack"))
    for member in _pack(root / "alone"):
        train_pack([member])
    return root, schedule


def test_each_run_takes_floor_of_the_ratio_times_its_credited_steps(trained):
    """Per run, after every rollout: ``floor(ρ × S) − updates so far`` updates, ``S`` the steps
    of the rollouts after which it could train; in all ``floor(ρ × S)``, the credit
    ``ρ × S − updates`` in [0, 1) checkpointed with its progress."""
    root, schedule = trained
    assert not any(schedule[0][0]) and all(all(trainable) for trainable, _, _ in schedule[1:])
    # the runs collected different step counts and were given different numbers of updates
    assert any(len(set(steps)) > 1 for _, steps, _ in schedule)
    assert any(len(set(counts)) > 1 for _, _, counts in schedule)
    assert len({counts[0] for _, _, counts in schedule[1:]}) > 1  # the fraction carries over
    for r, seed in enumerate(SEEDS):
        credited, updates = 0, 0
        for trainable, steps, counts in schedule:
            if trainable[r]:
                credited += int(steps[r])
            expected = math.floor(RATIO * credited) - updates if trainable[r] else 0
            assert counts[r] == expected
            updates += expected
        progress = load_checkpoint(root / "pack" / f"seed{seed}")["progress"]
        assert progress["t_env"] == sum(int(steps[r]) for _, steps, _ in schedule)
        assert progress["credited_steps"] == credited == progress["t_env"] - int(schedule[0][1][r])
        assert progress["updates"] == updates == math.floor(RATIO * credited) > 0
        assert 0 <= RATIO * credited - updates < 1


def test_a_packed_run_equals_the_same_run_alone(trained):
    """The runs of a pack take different numbers of updates after a rollout (the others masked
    out): each equals the run alone, bit for bit."""
    root, _ = trained
    for seed in SEEDS:
        assert_packed_run_equals_alone(root / "pack" / f"seed{seed}", root / "alone" / f"seed{seed}")


def test_a_pack_resumed_after_a_crash_keeps_its_credit(trained, tmp_path, monkeypatch):
    """A crash after the third rollout that trains, then a resume from the checkpoint before it:
    every output equals the uninterrupted pack's (the fixture's, whose finished runs ``train_pack``
    only rewrites), credited steps included."""
    root, _ = trained
    assert_crashed_pack_resumes_exactly(lambda name: _pack(root / "pack" if name == "uninterrupted" else tmp_path / name),
                                        monkeypatch, tmp_path, crash_after=3)
    for seed in SEEDS:
        resumed, uninterrupted = (load_checkpoint(where / f"seed{seed}")["progress"]
                                  for where in (tmp_path / "resumed", root / "pack"))
        assert resumed["credited_steps"] == uninterrupted["credited_steps"]


@pytest.mark.parametrize(("settings", "fields"), [
    (["learner.updates_per_env_step=0"], ["learner.updates_per_env_step"]),
    (["learner.updates_per_env_step=-0.5"], ["learner.updates_per_env_step"]),
    (["learner.updates_per_env_step=.inf"], ["learner.updates_per_env_step"]),
    (["learner.updates_per_rollout=2"], ["learner.updates_per_env_step", "learner.updates_per_rollout"]),
])
def test_a_bad_ratio_or_two_schedules_are_refused_with_the_fields_named(settings, fields):
    with pytest.raises(ConfigError) as refused:
        _config(0, *settings)
    assert all(field in str(refused.value) for field in fields)


def test_a_fixed_count_replaces_the_ratio_when_it_is_unset():
    config = _config(0, "learner.updates_per_env_step=null", "learner.updates_per_rollout=2")
    assert config.learner.updates_per_env_step is None and config.learner.updates_per_rollout == 2
