"""Comparison of two run directories' declared outputs, for the resume and fault-injection tests."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import yaml

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
