"""MLflow tracking of finished runs, safe when many jobs finish at once.

The run directory (``metrics.parquet``, ``final.json``, ``config.yaml``) is the source of truth;
MLflow is the browsing layer. A run is logged once, when it ends, in one batch: with a SQLite
store the write happens under a file lock beside the database (so parallel jobs on one machine
never hit "database is locked" or the first-schema-creation race), and transient errors are
retried. A tracking server (``http://…``) needs no lock. Re-logging a run directory replaces its
earlier MLflow run, so a rebuilt result never appears twice.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock

log = logging.getLogger(__name__)

RUN_DIR_TAG = "marlrepro.run_dir"
ATTEMPTS = 5


def resolve_uri(uri: str) -> str:
    """The configured URI, else ``MLFLOW_TRACKING_URI``, else empty (tracking off)."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI", "")


def _sqlite_path(uri: str) -> Path | None:
    prefix = "sqlite:///"
    return Path(uri[len(prefix):]) if uri.startswith(prefix) else None


def _lock_for(uri: str):
    db = _sqlite_path(uri)
    if db is None:
        return nullcontext()
    db.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(db) + ".lock", timeout=600)


def _experiment_id(client, name: str, uri: str) -> str:
    experiment = client.get_experiment_by_name(name)
    if experiment is not None:
        return experiment.experiment_id
    db = _sqlite_path(uri)
    artifacts = (db.parent / "mlartifacts").resolve().as_uri() if db is not None else None
    return client.create_experiment(name, artifact_location=artifacts)


def log_run(
    uri: str,
    experiment: str,
    run_name: str,
    run_dir: Path,
    params: Mapping[str, Any],
    metrics: pd.DataFrame,
    final: Mapping[str, Any],
    tags: Mapping[str, str],
) -> str | None:
    """Log a finished run to MLflow; returns its run id, or None when tracking is off."""
    uri = resolve_uri(uri)
    if not uri:
        return None
    for attempt in range(1, ATTEMPTS + 1):
        try:
            with _lock_for(uri):
                return _log_once(uri, experiment, run_name, run_dir, params, metrics, final, tags)
        except Exception as err:  # MLflow raises many types for a busy store
            if attempt == ATTEMPTS:
                raise
            delay = 2.0**attempt
            log.warning("MLflow logging failed (%s); retrying in %.0f s", err, delay)
            time.sleep(delay)
    return None


def _log_once(uri, experiment, run_name, run_dir, params, metrics, final, tags) -> str:
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment_id = _experiment_id(client, experiment, uri)
    run_dir = Path(run_dir).resolve()
    previous = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_DIR_TAG}` = '{run_dir}'")
    for old in previous:
        client.delete_run(old.info.run_id)
    all_tags = {RUN_DIR_TAG: str(run_dir), **{k: str(v) for k, v in tags.items()}}
    run = client.create_run(experiment_id, run_name=run_name or None, tags=all_tags)
    run_id = run.info.run_id
    now = int(time.time() * 1000)
    metric_rows = [
        Metric(column, float(value), now, int(row["t_env"]))
        for _, row in metrics.iterrows()
        for column, value in row.items()
        if column != "t_env" and pd.notna(value)
    ]
    metric_rows += [
        Metric(f"final.{k}", float(v), now, int(final.get("t_env", 0)))
        for k, v in final.items()
        if isinstance(v, (int, float)) and not isinstance(v, bool)
    ]
    param_rows = [Param(k, str(v)[:6000]) for k, v in params.items()]
    for start in range(0, len(param_rows), 100):  # MLflow's per-batch limits
        client.log_batch(run_id, params=param_rows[start : start + 100])
    for start in range(0, len(metric_rows), 1000):
        client.log_batch(run_id, metrics=metric_rows[start : start + 1000])
    for name in ("config.yaml", "final.json", "metrics.parquet"):
        if (run_dir / name).exists():
            client.log_artifact(run_id, str(run_dir / name))
    client.set_terminated(run_id)
    return run_id
