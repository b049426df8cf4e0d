"""A run killed at the wrong moment still finishes (issue 11), and the faults around it are clear.

Unit tests: the previous checkpoint kept and used when the last one is damaged, a clear error when
none can be read; MLflow logging retried for a bounded time, its failure recorded in the run
directory instead of failing the run, and logged later by ``marlrepro track --pending``.

Workflow tests: the real workflow on one ME-IGM matrix run at smoke scale, on CPU. The fault hook
(:mod:`marlrepro.faults`, ``MARLREPRO_FAULT``) SIGKILLs the job's process group, Snakemake
included, at a phase boundary, deterministically; then ``snakemake --unlock`` and ``snakemake
--rerun-incomplete``, as a user would. The rerun must finish with every declared output equal to
an uninterrupted run's (except the wall clock), and MLflow must hold the run once. The killed
(and unlocked) workflows and the uninterrupted runs are made ahead, in a background thread, while
the tests before rerun theirs (:class:`Ahead`).
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from run_outputs import WALL_CLOCK, assert_same_outputs

from marlrepro import tracking
from marlrepro.checkpoint import (
    CHECKPOINT_FILE,
    PREVIOUS_FILE,
    REQUIRED_KEYS,
    UNREADABLE_FILE,
    load_checkpoint,
    save_checkpoint,
)
from marlrepro.cli import main
from marlrepro.config import load_config
from marlrepro.errors import CheckpointError
from marlrepro.faults import FAULT_ENV
from marlrepro.train import Trainer

REPO = Path(__file__).resolve().parents[1]
RUN_DIR = "results/runs/me_igm/table1_qmix/matrix-me_igm/qmix/seed0"
PACK_RUN_DIRS = [RUN_DIR, RUN_DIR.replace("seed0", "seed1")]
T_MAX = 2000  # config/me_igm.yaml, table1_qmix at smoke scale; 50 updates between checkpoints
TINY = ["env.name=matrix:me_igm", "run.device=cpu", "run.t_max=64", "learner.batch_size=8",
        "run.progress=false", "run.eval_episodes=8", "run.checkpoint_interval=2"]


def closed_port_uri() -> str:
    """An http:// tracking URI on 127.0.0.1 where nothing listens: every connection is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"


def fake_state(marker: int) -> dict:
    """A checkpoint with every key that load_checkpoint requires."""
    return {**dict.fromkeys(REQUIRED_KEYS), "config": {}, "progress": {"t_env": marker},
            "torch_rng": torch.get_rng_state()}


def truncate(path: Path) -> None:
    """Cut ``path`` to half its size, as a copy interrupted midway leaves it."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


# ------------------------------------------------------------------------------- checkpoints
def test_saving_keeps_the_previous_checkpoint(tmp_path):
    for marker in (1, 2, 3):
        save_checkpoint(tmp_path, fake_state(marker))
    assert load_checkpoint(tmp_path)["progress"] == {"t_env": 3}
    assert torch.load(tmp_path / PREVIOUS_FILE, weights_only=False)["progress"] == {"t_env": 2}


DAMAGES = {
    "truncated": truncate,
    "not a torch file": lambda path: path.write_text("config: {}\n"),
    "missing keys": lambda path: torch.save({"config": {}, "progress": {}}, path),
    "missing": lambda path: path.unlink(),  # killed between the rotation and the new write
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog, damage):
    save_checkpoint(tmp_path, fake_state(1))
    save_checkpoint(tmp_path, fake_state(2))
    DAMAGES[damage](tmp_path / CHECKPOINT_FILE)
    with caplog.at_level(logging.WARNING, logger="marlrepro.checkpoint"):
        assert load_checkpoint(tmp_path)["progress"] == {"t_env": 1}
    assert str(tmp_path / CHECKPOINT_FILE) in caplog.text and "previous checkpoint" in caplog.text
    # the damaged file is set aside, so the next rotation keeps the good one as the fallback
    assert (tmp_path / UNREADABLE_FILE).exists() == (damage != "missing")
    save_checkpoint(tmp_path, fake_state(3))
    assert torch.load(tmp_path / PREVIOUS_FILE, weights_only=False)["progress"] == {"t_env": 1}


def test_no_readable_checkpoint_is_a_clear_error_with_what_to_do(tmp_path, capsys):
    out = tmp_path / "run"
    Trainer.solo(load_config(overrides=TINY), out).run()
    assert (out / PREVIOUS_FILE).exists()
    truncate(out / CHECKPOINT_FILE)
    truncate(out / PREVIOUS_FILE)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(out)
    message = str(error.value)
    assert f"{out / CHECKPOINT_FILE}: unreadable (" in message and f"{out / PREVIOUS_FILE}: unreadable (" in message
    assert f"delete {out / 'checkpoint'} to restart the run from scratch" in message

    argv = ["train", *(arg for key in TINY for arg in ("--set", key)), "--out", str(out)]
    assert main(argv) == 2  # a user error, reported without a traceback
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == f"marlrepro: error: {message}" and "Traceback" not in err


def test_a_checkpoint_of_a_learner_that_logged_other_metrics_is_a_clear_error(tmp_path, capsys):
    """A checkpoint written by a version of the learner that logged a different number of metrics
    per update (DAgger before its per-agent losses) cannot resume this one: the error names the
    file, both counts, this version's metrics and what to do, instead of a shape mismatch."""
    out = tmp_path / "run"
    Trainer.solo(load_config(overrides=TINY), out).run()
    state = load_checkpoint(out)
    state["update_sums"] = torch.zeros(state["update_sums"].numel() + 2)
    save_checkpoint(out, state)
    with pytest.raises(CheckpointError) as error:
        Trainer.solo(load_config(overrides=TINY), out)
    message = str(error.value)
    assert str(out / "checkpoint") in message and "delete the checkpoint to restart the run" in message
    logged = state["update_sums"].numel() - 1
    assert f"logged {logged} metrics per update; this one logs {logged - 2} " in message

    argv = ["train", *(arg for key in TINY for arg in ("--set", key)), "--out", str(out)]
    assert main(argv) == 2  # a user error, reported without a traceback
    err = capsys.readouterr().err
    assert err.strip().splitlines()[-1] == f"marlrepro: error: {message}" and "Traceback" not in err


# ---------------------------------------------------------------------------------- tracking
def test_logging_retries_within_the_budget_under_bounded_mlflow_http(tmp_path, monkeypatch):
    """Failed attempts are retried after 2, 4, ... s until RETRY_S is spent; MLflow's own HTTP
    retries are off during the call (unless the user set them) and restored after."""
    run_dir = tmp_path / "run"
    Trainer.solo(load_config(overrides=TINY), run_dir).run()
    monkeypatch.setenv(tracking.RETRY_ENV, "7")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "33")  # the user's own: kept
    monkeypatch.delenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", raising=False)
    seen, sleeps = [], []

    def failing(uri, run):
        seen.append((os.environ.get("MLFLOW_HTTP_REQUEST_MAX_RETRIES"), os.environ["MLFLOW_HTTP_REQUEST_TIMEOUT"]))
        raise ConnectionError("refused")

    monkeypatch.setattr(tracking, "_log_once", failing)
    monkeypatch.setattr(tracking.time, "sleep", sleeps.append)
    with pytest.raises(tracking.TrackingError, match=r"http://x failed 4 times .*refused"):
        tracking.log_run("http://x", run_dir)
    assert sleeps == [2.0, 4.0, pytest.approx(1.0, abs=0.1)]  # 7 s in all, less the attempts' own time
    assert seen == [("0", "33")] * 4
    assert "MLFLOW_HTTP_REQUEST_MAX_RETRIES" not in os.environ
    monkeypatch.setenv(tracking.RETRY_ENV, "soon")
    with pytest.raises(tracking.TrackingError, match=f"{tracking.RETRY_ENV}: 'soon' is not a number of seconds"):
        tracking.log_run("http://x", run_dir)


def test_mlflow_down_leaves_the_run_finished_and_pending_then_track_logs_it(tmp_path, monkeypatch, capsys):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv(tracking.RETRY_ENV, "2")
    down = closed_port_uri()
    run_dir = tmp_path / "results" / "run"
    started = time.monotonic()
    Trainer.solo(load_config(overrides=[*TINY, f"tracking.uri={down}"]), run_dir).run()  # returns: the files are the result
    assert time.monotonic() - started < 30  # MLflow's default HTTP retries alone take minutes
    marker = json.loads((run_dir / tracking.PENDING_FILE).read_text())
    assert marker["uri"] == down and "Connection refused" in marker["error"] and marker["time"]

    assert main(["track", "--pending", str(tmp_path / "results")]) == 1  # the marker's URI: still down
    assert "failed" in capsys.readouterr().err and (run_dir / tracking.PENDING_FILE).exists()
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert main(["track", "--pending", "--uri", uri, str(tmp_path / "results")]) == 0
    assert not (run_dir / tracking.PENDING_FILE).exists()
    client = MlflowClient(uri)
    runs = client.search_runs([client.get_experiment_by_name("marlrepro").experiment_id])
    assert [run.info.status for run in runs] == ["FINISHED"]
    assert main(["track", "--pending", "--uri", uri, str(tmp_path / "results")]) == 0  # nothing pending: no-op
    assert len(client.search_runs([client.get_experiment_by_name("marlrepro").experiment_id])) == 1


# ---------------------------------------------------------------------- through Snakemake
def snakemake(workdir: Path, *args: str, uri: str = "", fault: str = "", timeout: int = 300, pack: bool = False,
              environ: dict[str, str] | None = None, **extra_env: str):
    """``snakemake RUN_DIR/final.json`` at smoke scale, one seed, in ``workdir``, with this
    checkout's marlrepro; its own process group, so that a fault kills it and not pytest. With
    ``pack``: the two seeds of :data:`PACK_RUN_DIRS` as one pack job (``pack_size=2``). The job's
    environment is ``environ`` (default: this process's), with MLflow only where ``uri`` says."""
    environ = os.environ if environ is None else environ
    path = os.pathsep.join(filter(None, [str(REPO / "src"), environ.get("PYTHONPATH")]))
    env = {**environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "JAX_PLATFORMS": "cpu",
           "PATH": os.pathsep.join([str(Path(sys.executable).parent), environ.get("PATH", "")]), **extra_env}
    env.pop(FAULT_ENV, None)
    env.pop("MLFLOW_TRACKING_URI", None)
    if fault:
        env[FAULT_ENV] = fault
    targets = [f"{run}/final.json" for run in (PACK_RUN_DIRS if pack else [RUN_DIR])]
    command = [sys.executable, "-m", "snakemake", *targets, "--cores", "1", "--config", "scale=smoke",
               f"seeds={len(targets)}", f"pack_size={len(targets)}", f"tracking_uri={uri}", *args]
    return subprocess.run(command, check=False, cwd=workdir, env=env, capture_output=True, text=True,
                          timeout=timeout, start_new_session=True)


def workflow_copy(root: Path) -> Path:
    """A fresh copy of the workflow under ``root``."""
    for name in ("Snakefile", "workflow", "config", "envs"):
        source = REPO / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, root / name)
    return root


def unlock(workdir: Path, uri: str = "", pack: bool = False, environ: dict[str, str] | None = None) -> None:
    """``--unlock``, the first thing a user does after a crash."""
    unlocked = snakemake(workdir, "--unlock", uri=uri, pack=pack, environ=environ)
    assert unlocked.returncode == 0, unlocked.stderr[-3000:]


def rerun(workdir: Path, uri: str = "", pack: bool = False) -> str:
    """``--rerun-incomplete`` (after :func:`unlock`), as after a crash; returns the job's log."""
    second = snakemake(workdir, "--rerun-incomplete", uri=uri, pack=pack)
    assert second.returncode == 0, second.stderr[-3000:]
    return job_log(workdir, pack)


def job_log(workdir: Path, pack: bool = False) -> str:
    name = "seeds0to1" if pack else "seed0"
    return (workdir / f"results/logs/train/me_igm/table1_qmix/matrix-me_igm/qmix/{name}.log").read_text()


def resumed_at(log: str) -> int:
    return int(re.search(r"resumed .* at t_env=(\d+)", log).group(1))


def store(workdir: Path, phase: str) -> str:
    """The tracking URI of a run killed at ``phase``: the workflow's SQLite store where the kill
    falls in MLflow logging, else none."""
    return f"sqlite:///{workdir}/results/mlflow.db" if phase == "during_tracking" else ""


def kill_at(workdir: Path, phase: str, uri: str = "", pack: bool = False,
            environ: dict[str, str] | None = None) -> None:
    """Run the workflow until the fault hook kills it (Snakemake and all) at ``phase``."""
    killed = snakemake(workdir, uri=uri, fault=phase, pack=pack, environ=environ)
    assert killed.returncode == -signal.SIGKILL, f"not killed at {phase}:\n{killed.stderr[-3000:]}"
    assert (workdir / RUN_DIR / CHECKPOINT_FILE).exists()


# Runs started ahead. A workflow run here is one busy process at a time (Snakemake waits on its
# job), so the runs the tests start from (a workflow killed at a phase, then unlocked) and compare
# with (the uninterrupted runs) are made in a background thread, one at a time, in the order the
# tests use them, beside the test running in the foreground: two processes on the 2 cores. The
# tests are the same as if each made its own; an assertion that fails in the background fails the
# test that takes the result.
def started_for(item: pytest.Item) -> list[tuple[str, ...]]:
    """The runs ahead that the test ``item`` of this module uses, in the order it uses them."""
    phase = item.callspec.params.get("phase") if hasattr(item, "callspec") else None
    return {
        "test_a_workflow_killed_at_a_phase_boundary_finishes_on_rerun": [("killed", phase), ("uninterrupted",)],
        "test_a_workflow_with_a_truncated_checkpoint_resumes_from_the_previous_one": [
            ("truncated",), ("uninterrupted",)],
        "test_a_pack_killed_at_a_phase_boundary_finishes_on_rerun": [
            ("killed_pack", phase), ("uninterrupted_pack",), ("uninterrupted",)],
    }.get(item.originalname, [])


class Ahead:
    """The runs ahead of the selected tests of this module, made by one background thread."""

    def __init__(self, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
        self.factory = tmp_path_factory
        self.environ = dict(os.environ)  # read here, in the main thread
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="workflow-ahead")
        self.futures: dict[tuple[str, ...], Future] = {}
        for item in request.session.items:
            if item.module is request.module:
                for key in started_for(item):
                    self._submit(key)

    def _submit(self, key: tuple[str, ...]) -> Future:
        if key not in self.futures:
            self.futures[key] = self.pool.submit(self._make, *key)
        return self.futures[key]

    def result(self, *key: str) -> Path:
        """The workflow directory of run ``key``, once made (a test not foreseen makes it now)."""
        return self._submit(key).result()

    def _make(self, kind: str, phase: str = "") -> Path:
        workdir = workflow_copy(self.factory.mktemp(f"{kind}_{phase}".rstrip("_")))
        if kind in ("uninterrupted", "uninterrupted_pack"):
            pack = kind == "uninterrupted_pack"
            run = snakemake(workdir, pack=pack, environ=self.environ)
            assert run.returncode == 0, run.stderr[-3000:]
            assert not pack or "train_pack_seeds0to1" in run.stderr  # one pack job, not two runs
        else:  # killed at a phase, then unlocked ("truncated": its own copy killed after the last checkpoint)
            phase = "after_last_checkpoint" if kind == "truncated" else phase
            pack, uri = kind == "killed_pack", store(workdir, phase)
            kill_at(workdir, phase, uri, pack=pack, environ=self.environ)
            unlock(workdir, uri, pack=pack, environ=self.environ)
        return workdir


@pytest.fixture(scope="module")
def ahead(request, tmp_path_factory):
    """The runs ahead, started at once; at the end, the one still running is awaited, the rest dropped."""
    runs = Ahead(request, tmp_path_factory)
    yield runs
    runs.pool.shutdown(cancel_futures=True)


@pytest.fixture(scope="module")
def uninterrupted(ahead) -> Callable[[], Path]:
    """The run directory of the same run, never interrupted (awaited when called)."""
    return lambda: ahead.result("uninterrupted") / RUN_DIR


@pytest.fixture(scope="module")
def uninterrupted_pack(ahead) -> Callable[[], Path]:
    """The workflow directory of the two-seed pack, never interrupted (awaited when called)."""
    return lambda: ahead.result("uninterrupted_pack")


def mlflow_runs(uri: str, run_dir: Path) -> list:
    """Every MLflow run of ``run_dir``, deleted ones included."""
    from mlflow.entities import ViewType
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments(view_type=ViewType.ALL)]
    return client.search_runs(experiments, filter_string=f"tags.`{tracking.RUN_DIR_TAG}` = '{run_dir.resolve()}'",
                              run_view_type=ViewType.ALL)


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["mid_training", "after_last_checkpoint", "after_final", "during_tracking"])
def test_a_workflow_killed_at_a_phase_boundary_finishes_on_rerun(ahead, uninterrupted, phase):
    workdir = ahead.result("killed", phase)  # kill_at(workdir, phase, store(workdir, phase)), unlock(...)
    uri = store(workdir, phase)
    assert (workdir / RUN_DIR / "final.json").exists() == (phase in ("after_final", "during_tracking"))

    log = rerun(workdir, uri)
    assert (0 < resumed_at(log) < T_MAX) if phase == "mid_training" else resumed_at(log) >= T_MAX
    assert "will not match" not in log
    # the job's log is the rerun's alone; the run's own train.log keeps the killed attempt too
    assert log.count(" start: ") == 1
    assert (workdir / RUN_DIR / "train.log").read_text().count(" start: ") == 2
    assert_same_outputs(workdir / RUN_DIR, uninterrupted())
    if uri:  # the half-logged run was replaced by one complete run
        runs = mlflow_runs(uri, workdir / RUN_DIR)
        assert sorted((run.info.lifecycle_stage, run.info.status) for run in runs) == [
            ("active", "FINISHED"), ("deleted", "RUNNING")]


@pytest.mark.slow
def test_a_workflow_with_mlflow_down_succeeds_quickly_and_logs_later(tmp_path):
    """The job exits 0 after a bounded retry (5 s here, 20 s by default), where it used to hang for
    minutes in MLflow's HTTP retries, exit 1 and lose its outputs to Snakemake."""
    workdir = workflow_copy(tmp_path)
    started = time.monotonic()
    run = snakemake(workdir, uri=closed_port_uri(), **{tracking.RETRY_ENV: "5"})
    elapsed = time.monotonic() - started
    assert run.returncode == 0, run.stderr[-3000:]
    assert elapsed < 90, f"{elapsed:.0f} s"  # about 15 s idle (training ~10 s); MLflow's own retries: minutes
    assert 4 <= float(re.search(r"failed \d+ times in (\d+) s", job_log(workdir)).group(1)) <= 5
    run_dir = workdir / RUN_DIR
    outputs = {"config.yaml", "metrics.parquet", "final.json", tracking.PENDING_FILE}
    assert outputs <= {path.name for path in run_dir.iterdir()}

    uri = f"sqlite:///{workdir}/results/mlflow.db"
    track = subprocess.run(
        [sys.executable, "-m", "marlrepro.cli", "track", "--pending", "--uri", uri, "results/runs"],
        cwd=workdir, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert track.returncode == 0, track.stderr[-3000:]
    assert not (run_dir / tracking.PENDING_FILE).exists()
    assert [(run.info.lifecycle_stage, run.info.status) for run in mlflow_runs(uri, run_dir)] == [
        ("active", "FINISHED")]


@pytest.mark.slow
def test_a_workflow_with_a_truncated_checkpoint_resumes_from_the_previous_one(ahead, uninterrupted):
    workdir = ahead.result("truncated")  # kill_at(workdir, "after_last_checkpoint"), unlock(workdir)
    run_dir = workdir / RUN_DIR
    truncate(run_dir / CHECKPOINT_FILE)
    log = rerun(workdir)  # the job names its files as it was given them: relative to the workflow
    assert f"{RUN_DIR}/{CHECKPOINT_FILE}: unreadable" in log and "resuming from the previous checkpoint" in log
    assert 0 < resumed_at(log) < T_MAX  # the previous checkpoint is the last periodic one
    assert_same_outputs(run_dir, uninterrupted())

    truncate(run_dir / CHECKPOINT_FILE)
    truncate(run_dir / PREVIOUS_FILE)
    forced = snakemake(workdir, "--forcerun", f"{RUN_DIR}/final.json")
    assert forced.returncode != 0
    log = job_log(workdir)
    assert f"delete {RUN_DIR}/checkpoint to restart the run from scratch" in log
    assert f"{RUN_DIR}/{PREVIOUS_FILE}: unreadable" in log and "Traceback" not in log


@pytest.mark.slow
@pytest.mark.parametrize("phase", ["mid_training", "after_last_checkpoint"])
def test_a_pack_killed_at_a_phase_boundary_finishes_on_rerun(ahead, uninterrupted, uninterrupted_pack, phase):
    """The pack job is killed when its first run checkpoints (``mid_training``), or when its first
    run has written its final checkpoint and the other has not (``after_last_checkpoint``): on
    rerun each run resumes from its own checkpoint, and both finish as the uninterrupted pack."""
    workdir = ahead.result("killed_pack", phase)  # kill_at(workdir, phase, pack=True), unlock(...)
    log = rerun(workdir, pack=True)
    resumed = [int(t) for t in re.findall(r"resumed .* at t_env=(\d+)", log)]
    if phase == "mid_training":
        assert len(resumed) >= 1 and all(0 < t < T_MAX for t in resumed)
    else:
        assert resumed[0] >= T_MAX and all(0 < t < T_MAX for t in resumed[1:])
    for run in PACK_RUN_DIRS:
        assert_same_outputs(workdir / run, uninterrupted_pack() / run)
    # through the workflow too, a packed run is the run alone: the same steps, updates and greedy
    # joint action, and values within 1e-4 (on this game the BLAS reduces a batch of 32
    # episodes in another order for two stacked runs than for one: docs/deviations.md)
    alone, packed = (json.loads((d / "final.json").read_text()) for d in (uninterrupted(), workdir / RUN_DIR))
    assert packed.pop("pack_size") == 2 and alone.pop("pack_size") == 1
    for key in WALL_CLOCK:
        packed.pop(key)
        alone.pop(key)
    assert [k for k in alone if not nested_close(packed[k], alone[k])] == []


def nested_close(a, b) -> bool:
    """``a`` equals ``b`` (JSON values), floats within 1e-4."""
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(nested_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(nested_close(x, y) for x, y in zip(a, b))
    if isinstance(a, float):
        return math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-4)
    return a == b
