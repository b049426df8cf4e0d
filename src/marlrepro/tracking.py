"""MLflow tracking of finished run directories, safe when many jobs finish at once.

The run directory (``config.yaml``, ``metrics.parquet``, ``final.json``) is the source of truth;
MLflow is the browsing layer. :func:`log_run` reads everything it logs from those files, so the end
of ``marlrepro train`` and ``marlrepro track`` (which imports finished run directories from one
process) log the same run:

* params: the resolved config, flattened (``learner.lr``, ...); ``config.yaml`` as an artifact;
* metrics: every column of ``metrics.parquet`` at ``step = t_env`` (the learning curve), and the
  numbers of ``final.json`` as ``final.<key>`` at the last step;
* artifacts: ``config.yaml``, ``final.json``, ``metrics.parquet`` (and ``action_values.parquet``
  where IGM-DA wrote one);
* tags (:func:`run_tags`): paper, experiment, target, scale, env, algo, seed, backend, git_commit.

The MLflow experiment is the config's ``tracking.experiment``: the paper, for workflow runs.

Idempotent: a run directory is keyed by its absolute path (:data:`RUN_DIR_TAG`). Logging it again
does nothing when an identical finished run exists (same files, :data:`FINGERPRINT_TAG`); otherwise
its earlier runs, in any experiment, are deleted and it is logged anew, so a rebuilt result never
appears twice and a run cut off mid-logging is replaced.

Concurrency (``docs/tracking.md``): with a SQLite store every access happens under a file lock
beside the database, so parallel jobs on one machine never meet "database is locked" nor race to
create the schema or an experiment. A tracking server (``http://...``) serialises writes itself; the
one race left, two jobs creating the same experiment, ends with both using the winner's. Transient
failures are retried; a run that still cannot be logged raises :class:`TrackingError`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from filelock import FileLock

from marlrepro.config import flatten

log = logging.getLogger(__name__)

RUN_DIR_TAG = "marlrepro.run_dir"
FINGERPRINT_TAG = "marlrepro.fingerprint"
# Tags of a run trained by hand, outside the workflow (which sets them through tracking.tags).
WORKFLOW_TAGS = ("paper", "experiment", "target", "scale")
MANUAL = "manual"
ARTIFACTS = ("config.yaml", "final.json", "metrics.parquet", "action_values.parquet")
ATTEMPTS = 5
GIT_TIMEOUT_S = 30


class TrackingError(Exception):
    """A finished run could not be logged to MLflow."""


def resolve_uri(uri: str) -> str:
    """The configured URI, else ``MLFLOW_TRACKING_URI``, else empty (tracking off)."""
    return uri or os.environ.get("MLFLOW_TRACKING_URI", "")


PACKAGE_DIR = Path(__file__).resolve().parent


def git_commit(where: Path = PACKAGE_DIR) -> str:
    """The commit of the git checkout holding ``where`` (by default this package's source, the code
    that trains), suffixed ``-dirty`` when tracked files differ from it; ``unknown`` when git is
    missing or ``where`` is not inside a checkout (an installed wheel)."""
    command = ["git", "-C", str(where), "describe", "--always", "--dirty", "--abbrev=40", "--exclude=*"]
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=True)
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return out.stdout.strip() or "unknown"


@dataclass(frozen=True)
class FinishedRun:
    """The files of a finished run directory, as :func:`log_run` logs them."""

    run_dir: Path  # absolute
    config: dict[str, Any]
    final: dict[str, Any]
    metrics: pd.DataFrame
    fingerprint: str  # sha256 of the artifacts' bytes

    @classmethod
    def read(cls, run_dir: str | Path) -> FinishedRun:
        run_dir = Path(run_dir).resolve()
        missing = [name for name in ARTIFACTS[:3] if not (run_dir / name).is_file()]
        if missing:
            raise TrackingError(f"{run_dir}: not a finished run directory (missing {', '.join(missing)})")
        digest = hashlib.sha256()
        for name in ARTIFACTS:
            if (run_dir / name).is_file():
                digest.update(name.encode() + b"\0" + (run_dir / name).read_bytes())
        return cls(
            run_dir=run_dir,
            config=yaml.safe_load((run_dir / "config.yaml").read_text()),
            final=json.loads((run_dir / "final.json").read_text()),
            metrics=pd.read_parquet(run_dir / "metrics.parquet"),
            fingerprint=digest.hexdigest(),
        )

    @property
    def experiment(self) -> str:
        return self.config["tracking"]["experiment"]

    @property
    def run_name(self) -> str:
        final = self.final
        return self.config["tracking"]["run_name"] or f"{final['algo']}-{final['env']}-seed{final['seed']}"


def run_tags(run: FinishedRun) -> dict[str, str]:
    """Every tag of ``run``: its ``tracking.tags`` (the workflow sets paper, experiment, target and
    scale; a run trained by hand gets ``manual`` for those), what it trained (env, algo, seed,
    backend), the git commit of the code that trained it, and the keys :func:`log_run` finds it by."""
    final = run.final
    tags = {key: MANUAL for key in WORKFLOW_TAGS}
    tags.update({key: str(value) for key, value in run.config["tracking"]["tags"].items()})
    commit = final.get("git_commit", "unknown")
    tags.update({
        "env": final["env"], "algo": final["algo"], "seed": str(final["seed"]), "backend": final["backend"],
        "git_commit": commit, RUN_DIR_TAG: str(run.run_dir), FINGERPRINT_TAG: run.fingerprint,
    })
    if commit != "unknown":
        tags["mlflow.source.git.commit"] = commit.removesuffix("-dirty")  # shown by the MLflow UI
    return tags


def _lock_for(uri: str):
    db = _sqlite_path(uri)
    if db is None:
        return nullcontext()
    db.parent.mkdir(parents=True, exist_ok=True)
    return FileLock(str(db) + ".lock", timeout=600)


def _sqlite_path(uri: str) -> Path | None:
    prefix = "sqlite:///"
    return Path(uri[len(prefix):]) if uri.startswith(prefix) else None


def log_run(uri: str, run_dir: str | Path) -> str | None:
    """Log the finished run in ``run_dir`` to MLflow at ``uri`` (see :func:`resolve_uri`).

    Returns its MLflow run id, or None when tracking is off. Raises :class:`TrackingError` when
    ``run_dir`` is not a finished run or MLflow keeps failing.
    """
    uri = resolve_uri(uri)
    if not uri:
        return None
    run = FinishedRun.read(run_dir)
    if "'" in str(run.run_dir):
        raise TrackingError(f"{run.run_dir}: MLflow filters cannot match a path containing a quote; rename it")
    attempt = 0
    while True:
        attempt += 1
        try:
            with _lock_for(uri):
                return _log_once(uri, run)
        except Exception as err:  # MLflow raises many types for a busy or unreachable store
            if attempt == ATTEMPTS:
                raise TrackingError(
                    f"logging {run.run_dir} to MLflow at {uri} failed {ATTEMPTS} times ({err}); log "
                    f"the finished run directory with `marlrepro track {run.run_dir}`, or re-run the "
                    f"training command (it resumes at the end and logs again)"
                ) from err
            delay = 2.0**attempt
            log.warning("MLflow logging failed (%s); retrying in %.0f s", err, delay)
            time.sleep(delay)


def _log_once(uri: str, run: FinishedRun) -> str:
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    experiment_id = _experiment_id(client, run.experiment, uri)
    every_experiment = [e.experiment_id for e in client.search_experiments()]
    previous = client.search_runs(every_experiment, filter_string=f"tags.`{RUN_DIR_TAG}` = '{run.run_dir}'")
    tags = run_tags(run)
    if [(old.info.status, old.data.tags.get(FINGERPRINT_TAG), old.info.experiment_id) for old in previous] == [
        ("FINISHED", run.fingerprint, experiment_id)
    ]:
        log.info("MLflow already holds %s as run %s", run.run_dir, previous[0].info.run_id)
        return previous[0].info.run_id
    for old in previous:
        client.delete_run(old.info.run_id)
    run_id = client.create_run(experiment_id, run_name=run.run_name, tags=tags).info.run_id
    now = int(time.time() * 1000)
    metrics = [
        Metric(column, float(value), now, int(row["t_env"]))
        for _, row in run.metrics.iterrows()
        for column, value in row.items()
        if column != "t_env" and pd.notna(value)
    ]
    metrics += [
        Metric(f"final.{key}", float(value), now, int(run.final["t_env"]))
        for key, value in run.final.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool)
    ]
    params = [Param(key, str(value)[:6000]) for key, value in flatten(run.config).items()]
    for start in range(0, len(params), 100):  # MLflow's per-batch limits
        client.log_batch(run_id, params=params[start : start + 100])
    for start in range(0, len(metrics), 1000):
        client.log_batch(run_id, metrics=metrics[start : start + 1000])
    for name in ARTIFACTS:
        if (run.run_dir / name).is_file():
            client.log_artifact(run_id, str(run.run_dir / name))
    client.set_terminated(run_id)
    log.info("logged %s to MLflow as run %s", run.run_dir, run_id)
    return run_id


def _experiment_id(client: Any, name: str, uri: str) -> str:
    """The id of experiment ``name``, created (or restored from deletion) when needed."""
    from mlflow.exceptions import MlflowException

    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        db = _sqlite_path(uri)
        artifacts = (db.parent / "mlartifacts").resolve().as_uri() if db is not None else None
        try:
            return client.create_experiment(name, artifact_location=artifacts)
        except MlflowException as err:  # another job created it first (tracking server)
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise err from None
    if experiment.lifecycle_stage == "deleted":
        client.restore_experiment(experiment.experiment_id)
    return experiment.experiment_id
