"""Reading the run directories that ``marlrepro train --out RUN_DIR`` writes.

A run directory holds ``final.json`` (summary, written last), ``metrics.parquet`` (one row per
evaluation) and ``config.yaml`` (the resolved train config). Missing files or fields raise
:class:`RunDataError` naming the run directory and what is missing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from marlrepro.io_utils import load_yaml

FINAL_KEYS = (
    "algo", "env", "seed", "t_env", "updates", "test_return_mean", "test_won_mean",
    "wall_time_s", "env_steps_per_s", "backend", "tags",
)  # fmt: skip
MATRIX_KEYS = ("payoff", "joint_q", "greedy_joint_action", "greedy_payoff", "optimal_payoff")


class RunDataError(ValueError):
    """A run directory lacks a file or a field the aggregation needs."""


def read_final(run_dir: str | Path, extra_keys: Iterable[str] = ()) -> dict[str, Any]:
    """Load ``final.json`` of ``run_dir``; it must hold :data:`FINAL_KEYS` and ``extra_keys``."""
    path = Path(run_dir) / "final.json"
    try:
        final = json.loads(path.read_text())
    except FileNotFoundError:
        raise RunDataError(f"{path}: missing (the run has not finished)") from None
    except json.JSONDecodeError as err:
        raise RunDataError(f"{path}: not valid JSON: {err}") from None
    missing = [key for key in (*FINAL_KEYS, *extra_keys) if key not in final]
    if missing:
        raise RunDataError(f"{path}: missing keys {missing}")
    return final


def _metrics_path(run_dir: str | Path) -> Path:
    path = Path(run_dir) / "metrics.parquet"
    if not path.is_file():
        raise RunDataError(f"{path}: missing")
    return path


def metric_columns(run_dir: str | Path) -> list[str]:
    """The columns of ``metrics.parquet`` in ``run_dir``, from its schema alone (no rows read)."""
    import pyarrow.parquet as pq

    return [name for name in pq.read_schema(_metrics_path(run_dir)).names if not name.startswith("__")]


def read_metrics(run_dir: str | Path, columns: Sequence[str]) -> pd.DataFrame:
    """Load ``columns`` of ``metrics.parquet`` in ``run_dir`` (one row per evaluation)."""
    path = _metrics_path(run_dir)
    metrics = pd.read_parquet(path)
    missing = [column for column in columns if column not in metrics.columns]
    if missing:
        raise RunDataError(f"{path}: missing columns {missing}; has {list(metrics.columns)}")
    return metrics[list(columns)]


def read_run_config(run_dir: str | Path) -> dict[str, Any]:
    """Load the resolved train config (``config.yaml``) of ``run_dir`` as nested mappings."""
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise RunDataError(f"{path}: missing")
    config = load_yaml(path.read_text())
    if not isinstance(config, Mapping):
        raise RunDataError(f"{path}: expected a mapping at the top level")
    return dict(config)


def single_value(finals: Sequence[Mapping[str, Any]], key: str) -> Any:
    """The one value of ``key`` shared by all ``finals`` (e.g. the backend of a table's runs)."""
    values = {json.dumps(final[key], sort_keys=True) for final in finals}
    if len(values) != 1:
        raise RunDataError(f"runs disagree on {key!r}: {sorted(values)}; aggregate like with like")
    return finals[0][key]
