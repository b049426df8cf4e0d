"""Comparison of two run directories' declared outputs, for the resume and fault-injection tests."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import torch
import yaml

from marlrepro.config import TrainConfig
from marlrepro.train import PackMember, train_pack

# Fields that measure the wall clock: the only ones a resumed run may not share with an uninterrupted one.
WALL_CLOCK = ("wall_time_s", "env_steps_per_s")


def assert_same_outputs(resumed: Path, uninterrupted: Path) -> None:
    """Every output of ``resumed`` equals that of ``uninterrupted`` (config.yaml, metrics.parquet,
    final.json with the matrix game's fields, and action_values.parquet where IGM-DA wrote one),
    except the wall-clock fields; exactly, with no tolerance."""
    configs = [yaml.safe_load((run / "config.yaml").read_text()) for run in (resumed, uninterrupted)]
    assert configs[0] == configs[1]
    metrics = [pd.read_parquet(run / "metrics.parquet").drop(columns="wall_time_s") for run in (resumed, uninterrupted)]
    pd.testing.assert_frame_equal(*metrics, check_exact=True)
    finals = [json.loads((run / "final.json").read_text()) for run in (resumed, uninterrupted)]
    for final in finals:
        for key in WALL_CLOCK:
            final.pop(key)
    assert finals[0] == finals[1]
    values = [run / "action_values.parquet" for run in (resumed, uninterrupted)]
    assert values[0].is_file() == values[1].is_file()
    if values[1].is_file():
        pd.testing.assert_frame_equal(*map(pd.read_parquet, values), check_exact=True)


def assert_packed_run_equals_alone(packed: Path, alone: Path, exact_weights: bool = True) -> dict[str, torch.Tensor]:
    """A run trained in a pack and the same run trained alone have equal metrics.parquet and
    final.json (but the wall-clock fields and the pack size), exactly, and equal final weights and
    buffers: exactly, or to float rounding without ``exact_weights`` (and so the matrix game's
    policies in final.json); returns those weights."""
    metrics = [pd.read_parquet(run / "metrics.parquet").drop(columns="wall_time_s") for run in (packed, alone)]
    pd.testing.assert_frame_equal(*metrics, check_exact=True)
    finals = [{key: value for key, value in json.loads((run / "final.json").read_text()).items()
               if key not in (*WALL_CLOCK, "pack_size")} for run in (packed, alone)]
    if not exact_weights:  # what the summary computes from the weights (the matrix game's policies), as they
        policies = [torch.tensor(final.pop("policy", [])) for final in finals]
        torch.testing.assert_close(*policies, rtol=1e-5, atol=1e-6)
    assert finals[0] == finals[1]
    assert finals[0]["updates"] > 0
    weights = [torch.load(run / "checkpoint/state.pt", weights_only=False)["learner"] for run in (packed, alone)]
    assert weights[0].keys() == weights[1].keys()
    for name, value in weights[1].items():
        if exact_weights:
            assert torch.equal(weights[0][name], value), name
        else:
            torch.testing.assert_close(weights[0][name], value, rtol=1e-5, atol=1e-6, msg=name)
    return weights[0]


def assert_crashed_pack_resumes_exactly(pack: Callable[[str], list], monkeypatch, root: Path,
                                        crash_after: int = 13) -> None:
    """Train ``pack("uninterrupted")``; train ``pack("resumed")`` until an exception after its
    ``crash_after``-th training step (a crash between checkpoints), then again from its
    checkpoints; every member's outputs equal the uninterrupted member's, bit for bit.
    ``pack(name)`` gives the members, with run directories under ``root / name``."""
    import pytest

    from marlrepro.train import Trainer, train_pack

    members = pack("uninterrupted")
    train_pack(members)
    train_step, calls = Trainer._train_step, []

    def train_step_then_crash(self, *args):
        train_step(self, *args)
        calls.append(1)
        if len(calls) == crash_after:
            raise RuntimeError("killed")

    monkeypatch.setattr(Trainer, "_train_step", train_step_then_crash)
    with pytest.raises(RuntimeError, match="killed"):
        train_pack(pack("resumed"))
    monkeypatch.undo()
    resumed = Trainer(pack("resumed"))
    assert all(0 < run.progress.t_env < run.config.run.t_max for run in resumed.runs)
    resumed.run()
    for member in members:
        assert_same_outputs(root / "resumed" / member.run_dir.name, member.run_dir)


def assert_pack_equals_runs_alone(configs: list[TrainConfig], root: Path) -> None:
    """Train ``configs`` in one pack (under ``root/pack``), then each alone (``root/alone``), and
    assert that each packed run equals its run alone (:func:`assert_packed_run_equals_alone`)."""
    train_pack([PackMember(config, root / "pack" / str(i)) for i, config in enumerate(configs)])
    for i, config in enumerate(configs):
        train_pack([PackMember(config, root / "alone" / str(i))])
        assert_packed_run_equals_alone(root / "pack" / str(i), root / "alone" / str(i))
