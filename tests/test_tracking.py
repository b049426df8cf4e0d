"""MLflow tracking: complete runs, tags, idempotent re-logging, and 8 jobs finishing at once.

The concurrency test starts 8 OS processes that each log a finished run with a paper-sized curve
(201 evaluations) at the same moment, once into the SQLite default (under its file lock) and once
into a real MLflow server on 127.0.0.1 (the cluster design). That server is the one
``docs/tracking.md`` tells users to browse with, ``mlflow ui --backend-store-uri
sqlite:///<results>/mlflow.db``; a ``marlrepro train`` job started as the workflow starts it logs
into that SQLite file and its run is read back through the UI.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from marlrepro import tracking
from marlrepro.cli import main
from marlrepro.config import flatten, load_config, to_dict
from marlrepro.experiments import Run
from marlrepro.io_utils import write_json, write_yaml

REPO = Path(__file__).resolve().parents[1]
JOBS = 4  # concurrent logging processes: more than the 2 cores of CI, so their writes contend
CURVE_COLUMNS = ["episode", "update", "epsilon", "loss", "train_return_mean", "train_won_mean",
                 "test_return_mean", "test_won_mean", "wall_time_s"]
ARTIFACTS = {"config.yaml", "final.json", "metrics.parquet"}


def subprocess_env(**extra: str) -> dict[str, str]:
    """This process's environment with this checkout first on the path, one thread per job."""
    path = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", **extra}


def fake_run(run_dir: Path, seed: int, experiment: str, rows: int = 201, step: int = 10_000) -> Path:
    """A finished run directory with a paper-sized curve (2M steps, an evaluation every 10k)."""
    config = load_config(overrides=[
        "env.name=matrix:me_igm", f"run.seed={seed}", f"tracking.experiment={experiment}",
        f"tracking.run_name={experiment}/seed{seed}", "tracking.tags.paper=me_igm",
        "tracking.tags.experiment=table1_qmix", "tracking.tags.target=me_igm/table1_qmix",
        "tracking.tags.scale=paper",
    ])
    rng = np.random.default_rng(seed)
    curve = pd.DataFrame({"t_env": np.arange(rows) * step, **{c: rng.random(rows) for c in CURVE_COLUMNS}})
    write_yaml(run_dir / "config.yaml", to_dict(config))
    curve.to_parquet(run_dir / "metrics.parquet", index=False)
    write_json(run_dir / "final.json", {
        "algo": "qmix", "env": "matrix:me_igm", "seed": seed, "backend": "matrix",
        "t_env": int(curve["t_env"].iloc[-1]), "test_won_mean": float(curve["test_won_mean"].iloc[-1]),
        "test_return_mean": 1.5, "device": "cpu", "tags": {}, "git_commit": "0" * 40,
    })
    return run_dir


def assert_complete(client, run_dir: Path, experiment: str, tags: dict[str, str]) -> None:
    """The one active MLflow run of ``run_dir`` holds everything its files hold."""
    run_dir = run_dir.resolve()
    found = client.search_runs(
        [client.get_experiment_by_name(experiment).experiment_id],
        filter_string=f"tags.`{tracking.RUN_DIR_TAG}` = '{run_dir}'",
    )
    assert len(found) == 1, f"{run_dir}: {len(found)} runs"
    run = found[0]
    assert run.info.status == "FINISHED"
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    assert run.data.params == {k: str(v) for k, v in flatten(config).items()}
    curve = pd.read_parquet(run_dir / "metrics.parquet")
    for column in curve.columns.drop("t_env"):
        logged = curve[["t_env", column]].dropna()  # NaN: no value yet (the loss before any update)
        history = client.get_metric_history(run.info.run_id, column)
        assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == list(
            zip(logged["t_env"].tolist(), logged[column].astype(float).tolist(), strict=True)
        ), column
    final = json.loads((run_dir / "final.json").read_text())
    numbers = {k: float(v) for k, v in final.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    assert {k.removeprefix("final."): v for k, v in run.data.metrics.items() if k.startswith("final.")} == numbers
    assert {a.path for a in client.list_artifacts(run.info.run_id)} == ARTIFACTS
    for key, value in tags.items():
        assert run.data.tags.get(key) == value, key


# ------------------------------------------------------------------------------ single process
def test_a_run_is_logged_complete_with_its_tags(tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run_dir = fake_run(tmp_path / "run", seed=3, experiment="me_igm")
    tracking.log_run(uri, run_dir)
    from mlflow.tracking import MlflowClient

    assert_complete(MlflowClient(uri), run_dir, "me_igm", {
        "paper": "me_igm", "target": "me_igm/table1_qmix", "experiment": "table1_qmix", "scale": "paper",
        "env": "matrix:me_igm", "algo": "qmix", "seed": "3", "backend": "matrix", "git_commit": "0" * 40,
        "mlflow.runName": "me_igm/seed3",
    })


def test_relogging_replaces_instead_of_duplicating(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    client = MlflowClient(uri)
    run_dir = fake_run(tmp_path / "run", seed=0, experiment="me_igm")
    first = tracking.log_run(uri, run_dir)
    assert tracking.log_run(uri, run_dir) == first  # unchanged files: nothing to do

    final = json.loads((run_dir / "final.json").read_text())
    write_json(run_dir / "final.json", {**final, "test_won_mean": 0.25})  # a rebuilt result
    second = tracking.log_run(uri, run_dir)
    assert second != first
    assert client.get_run(first).info.lifecycle_stage == "deleted"
    assert_complete(client, run_dir, "me_igm", {})

    # A run cut off mid-logging (left RUNNING, in another experiment) is replaced too.
    stale = client.create_run(client.create_experiment("elsewhere"),
                              tags={tracking.RUN_DIR_TAG: str(run_dir.resolve())})
    third = tracking.log_run(uri, run_dir)
    assert third != second
    assert client.get_run(stale.info.run_id).info.lifecycle_stage == "deleted"
    assert_complete(client, run_dir, "me_igm", {})


def test_a_run_trained_by_hand_is_tagged_manual(tmp_path):
    run_dir = fake_run(tmp_path / "run", seed=0, experiment="marlrepro")
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    config["tracking"]["tags"] = {"note": "ablation"}
    write_yaml(run_dir / "config.yaml", config)
    tags = tracking.run_tags(tracking.FinishedRun.read(run_dir))
    assert {k: tags[k] for k in ("paper", "experiment", "target", "scale", "note")} == {
        "paper": "manual", "experiment": "manual", "target": "manual", "scale": "manual", "note": "ablation"}


def test_git_commit_of_this_checkout_or_unknown(tmp_path, monkeypatch):
    commit = tracking.git_commit()
    assert len(commit.removesuffix("-dirty")) == 40 and int(commit[:40], 16) >= 0
    assert tracking.git_commit(tmp_path) == "unknown"  # not a checkout
    monkeypatch.setenv("PATH", str(tmp_path))  # no git at all
    assert tracking.git_commit() == "unknown"


def test_track_imports_run_directories_once(tmp_path):
    from mlflow.tracking import MlflowClient

    runs = [fake_run(tmp_path / "results" / f"seed{k}", seed=k, experiment="me_igm") for k in range(3)]
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert main(["track", "--uri", uri, str(tmp_path / "results")]) == 0
    client = MlflowClient(uri)
    ids = {r.info.run_id for r in client.search_runs([client.get_experiment_by_name("me_igm").experiment_id])}
    assert len(ids) == 3
    assert main(["track", "--uri", uri, str(tmp_path / "results"), str(runs[0])]) == 0
    assert {r.info.run_id for r in client.search_runs([client.get_experiment_by_name("me_igm").experiment_id])} == ids
    assert main(["track", "--uri", uri, str(tmp_path / "empty_or_missing")]) == 2


def test_an_unfinished_directory_is_refused(tmp_path):
    (tmp_path / "run").mkdir()
    with pytest.raises(tracking.TrackingError, match="missing config.yaml, final.json, metrics.parquet"):
        tracking.log_run(f"sqlite:///{tmp_path}/mlflow.db", tmp_path / "run")


# -------------------------------------------------------------------------- 8 jobs at once
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_ui(tmp_path_factory):
    """``mlflow ui --backend-store-uri sqlite:///<results>/mlflow.db`` on a free port of 127.0.0.1,
    as docs/tracking.md runs it; yields (results dir, http URI). Always shut down."""
    results = tmp_path_factory.mktemp("ui") / "results"
    results.mkdir()
    port = free_port()
    log = open(results.parent / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", f"sqlite:///{results}/mlflow.db",
         "--artifacts-destination", str(results / "mlartifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        cwd=results.parent, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            try:
                urllib.request.urlopen(f"{uri}/health", timeout=2)
                break
            except OSError:
                assert server.poll() is None and time.time() < deadline, (
                    "mlflow ui did not start:\n" + (results.parent / "server.log").read_text()[-3000:])
                time.sleep(0.5)
        yield results, uri
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


BARRIER = """
import sys, time
from pathlib import Path
from marlrepro import tracking
import mlflow.tracking  # imported before the barrier: the JOBS processes then log at the same moment
uri, run_dir, ready, go = sys.argv[1:]
Path(ready).touch()
while not Path(go).exists():
    time.sleep(0.02)
tracking.log_run(uri, run_dir)
"""


@pytest.mark.slow
@pytest.mark.parametrize("store", ["sqlite", "server"])
def test_concurrent_processes_log_complete_runs_at_once(tmp_path, mlflow_ui, store):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/results/mlflow.db" if store == "sqlite" else mlflow_ui[1]
    experiment = f"parallel_{store}"
    runs = [fake_run(tmp_path / f"seed{k}", seed=k, experiment=experiment) for k in range(JOBS)]
    ready = [tmp_path / f"ready{k}" for k in range(JOBS)]
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", BARRIER, uri, str(run_dir), str(flag), str(go)],
                              env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
             for run_dir, flag in zip(runs, ready)]
    deadline = time.time() + 120
    while not all(flag.exists() for flag in ready):
        assert time.time() < deadline and all(p.poll() is None for p in procs), "a logging process died early"
        time.sleep(0.1)
    go.touch()
    for proc in procs:
        out, _ = proc.communicate(timeout=180)
        assert proc.returncode == 0, out[-3000:]
    client = MlflowClient(uri)
    assert len(client.search_runs([client.get_experiment_by_name(experiment).experiment_id])) == JOBS
    for k, run_dir in enumerate(runs):
        assert_complete(client, run_dir, experiment, {
            "paper": "me_igm", "target": "me_igm/table1_qmix", "experiment": "table1_qmix", "scale": "paper",
            "env": "matrix:me_igm", "algo": "qmix", "seed": str(k), "backend": "matrix", "git_commit": "0" * 40,
        })


@pytest.mark.slow
def test_a_train_job_logs_its_run_and_mlflow_ui_shows_it(mlflow_ui):
    """``marlrepro train`` started as the workflow starts it logs into the SQLite store that
    ``mlflow ui`` serves; the run is complete when read back directly and through the UI."""
    from mlflow.tracking import MlflowClient

    results, ui_uri = mlflow_ui
    settings = {"run.t_max": 200, "run.eval_interval": 50, "run.eval_episodes": 8, "learner.batch_size": 16}
    run = Run("me_igm", "table1_qmix", "matrix:me_igm", "qmix", 4, "smoke", "cpu", settings)
    env = subprocess_env(MLFLOW_TRACKING_URI=f"sqlite:///{results}/mlflow.db")
    train = subprocess.run(
        [sys.executable, "-m", "marlrepro.cli", "train", "--config", str(REPO / "config/algos/qmix.yaml"),
         *shlex.split(run.set_arguments()), "--out", str(results.parent / run.run_dir)],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert train.returncode == 0, train.stderr[-3000:]
    for client in (MlflowClient(f"sqlite:///{results}/mlflow.db"), MlflowClient(ui_uri)):
        assert_complete(client, results.parent / run.run_dir, "me_igm", {
            "paper": "me_igm", "target": "me_igm/table1_qmix", "experiment": "table1_qmix",
            "scale": "smoke", "env": "matrix:me_igm", "algo": "qmix", "seed": "4",
            "backend": "matrix", "git_commit": tracking.git_commit(), "mlflow.runName": run.run_dir.removeprefix("results/runs/"),
        })
