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
one race left, two jobs creating the same experiment, ends with both using the winner's.

Failures: retried with back-off for at most :func:`retry_seconds` in all (MLflow's own HTTP retries
are bounded for the call, :data:`MLFLOW_HTTP_LIMITS`); a run that still cannot be logged raises
:class:`TrackingError`. The end of training calls :func:`log_run_or_defer` instead, which never
fails the job: it leaves the marker :data:`PENDING_FILE` in the run directory, and a later
``marlrepro track --pending`` logs the run and removes the marker.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
from filelock import FileLock, Timeout

from marlrepro.config import flatten
from marlrepro.faults import maybe_crash
from marlrepro.io_utils import load_yaml, write_json

log = logging.getLogger(__name__)

RUN_DIR_TAG = "marlrepro.run_dir"
FINGERPRINT_TAG = "marlrepro.fingerprint"
# Tags of a run trained by hand, outside the workflow (which sets them through tracking.tags).
WORKFLOW_TAGS = ("paper", "experiment", "target", "scale")
MANUAL = "manual"
ARTIFACTS = ("config.yaml", "final.json", "metrics.parquet", "action_values.parquet")
# In a run directory: the run finished but is not in MLflow yet (see log_run_or_defer).
PENDING_FILE = "tracking_pending.json"
# Seconds that failed logging attempts and their back-off may take in all, unless RETRY_ENV says.
RETRY_S = 20.0
RETRY_ENV = "MARLREPRO_TRACKING_RETRY_S"
# MLflow's own HTTP client retries a refused connection 7 times with exponential back-off and waits
# 120 s for an answer: minutes for a server that is down. For the duration of a logging call these
# apply instead, unless the user set them: one try per request (log_run retries whole attempts).
MLFLOW_HTTP_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": "10"}
# Waiting for the SQLite store's lock is queueing behind other jobs' logging, not a failure.
LOCK_TIMEOUT_S = 600
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
            config=load_yaml((run_dir / "config.yaml").read_text()),
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
    return FileLock(str(db) + ".lock", timeout=LOCK_TIMEOUT_S)


def _sqlite_path(uri: str) -> Path | None:
    prefix = "sqlite:///"
    return Path(uri[len(prefix):]) if uri.startswith(prefix) else None


def retry_seconds() -> float:
    """How long failed logging attempts may take in all: ``MARLREPRO_TRACKING_RETRY_S``, else
    :data:`RETRY_S`."""
    value = os.environ.get(RETRY_ENV, "")
    if not value:
        return RETRY_S
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also NaN
        raise TrackingError(f"{RETRY_ENV}: {value!r} is not a number of seconds >= 0; unset it for {RETRY_S:g}")
    return seconds


@contextmanager
def _bounded_mlflow_http() -> Iterator[None]:
    """Apply :data:`MLFLOW_HTTP_LIMITS` to MLflow's HTTP client inside the block, except those the
    user set; the environment is restored after."""
    added = {key: value for key, value in MLFLOW_HTTP_LIMITS.items() if key not in os.environ}
    os.environ.update(added)
    try:
        yield
    finally:
        for key in added:
            os.environ.pop(key, None)


def log_run(uri: str, run_dir: str | Path) -> str | None:
    """Log the finished run in ``run_dir`` to MLflow at ``uri`` (see :func:`resolve_uri`), then
    remove its :data:`PENDING_FILE`, if any.

    Returns its MLflow run id, or None when tracking is off. A failed attempt is retried after 2,
    4, 8, ... s until failed attempts and waits have taken :func:`retry_seconds`; raises
    :class:`TrackingError` when ``run_dir`` is not a finished run or logging still fails.
    """
    uri = resolve_uri(uri)
    if not uri:
        return None
    run = FinishedRun.read(run_dir)
    if "'" in str(run.run_dir):
        raise TrackingError(f"{run.run_dir}: MLflow filters cannot match a path containing a quote; rename it")
    budget, spent, attempt = retry_seconds(), 0.0, 0
    with _bounded_mlflow_http():
        while True:
            attempt += 1
            try:
                with _lock_for(uri):
                    began = time.monotonic()
                    try:
                        run_id = _log_once(uri, run)
                        break
                    finally:
                        spent += time.monotonic() - began
            except Timeout as err:
                raise TrackingError(f"logging {run.run_dir} to MLflow at {uri}: its lock {err.lock_file} stayed "
                                    f"held by other jobs for {LOCK_TIMEOUT_S} s") from err
            except Exception as err:  # MLflow raises many types for a busy or unreachable store
                delay = min(2.0**attempt, budget - spent)
                if delay <= 0:
                    raise TrackingError(
                        f"logging {run.run_dir} to MLflow at {uri} failed {attempt} times in {spent:.0f} s "
                        f"({err})"
                    ) from err
                log.warning("MLflow logging failed (%s); retrying in %.0f s", err, delay)
                time.sleep(delay)
                spent += delay
    (run.run_dir / PENDING_FILE).unlink(missing_ok=True)
    return run_id


def log_run_or_defer(uri: str, run_dir: str | Path) -> str | None:
    """:func:`log_run`, except that a failure does not raise: it is logged as a warning and recorded
    in ``run_dir/tracking_pending.json`` (uri, error, time), for ``marlrepro track --pending``. The
    end of training calls this: the files are the result, and MLflow being down must not fail (or,
    under Snakemake, delete) a finished run. Returns the MLflow run id, or None."""
    try:
        return log_run(uri, run_dir)
    except TrackingError as err:
        marker = Path(run_dir) / PENDING_FILE
        write_json(marker, {"uri": resolve_uri(uri), "error": str(err),
                            "time": datetime.now(UTC).isoformat(timespec="seconds")})
        log.warning("%s; the run's files are complete, its MLflow logging is pending (%s): log it "
                    "with `marlrepro track --pending %s` once MLflow is reachable", err, marker, run_dir)
        return None


def pending_uri(run_dir: str | Path) -> str:
    """The tracking URI recorded by the :data:`PENDING_FILE` of ``run_dir`` (where logging failed)."""
    marker = Path(run_dir) / PENDING_FILE
    try:
        return str(json.loads(marker.read_text())["uri"])
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise TrackingError(f"{marker}: cannot read the tracking URI it records ({err!r}); pass --uri") from None


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
    maybe_crash("during_tracking")
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
