"""A killed ``marlrepro train`` resumes from its checkpoint and ends exactly where an uninterrupted
run with the same seed ends.

Tolerance: none. On CPU, with the same thread count, the resumed run's ``metrics.parquet`` and
``final.json`` equal the uninterrupted run's bit for bit, except the wall-clock fields
(``wall_time_s``, ``env_steps_per_s``). ``updates_per_rollout=2`` makes the test sensitive to where
checkpoints are taken: one written between the two updates of a rollout would resume without the
second. The uninterrupted reference runs beside the first interrupted run (2 cores).

Through the workflow (Snakemake killed together with its job, then ``--unlock`` and
``--rerun-incomplete``): tests/test_faults.py, at each phase boundary of a run.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from run_outputs import assert_same_outputs

from marlrepro.config import load_config
from marlrepro.errors import ConfigError
from marlrepro.train import Interrupted, Trainer

REPO = Path(__file__).resolve().parents[1]
T_MAX = 1600
ARGS = [
    "--set", "env.name=matrix:me_igm", "--set", "run.device=cpu", "--set", f"run.t_max={T_MAX}",
    "--set", "run.checkpoint_interval=20", "--set", "run.eval_interval=500", "--set", "run.eval_episodes=8",
    "--set", "learner.batch_size=16", "--set", "learner.updates_per_rollout=2", "--set", "run.progress=false",
]


def subprocess_env() -> dict[str, str]:
    """This checkout first on the path, one thread (the same arithmetic in every process), no MLflow."""
    path = os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.pop("MLFLOW_TRACKING_URI", None)
    return env


def start(out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "marlrepro.cli", "train", *ARGS, "--out", str(out)],
                            env=subprocess_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def wait_for(path: Path, proc: subprocess.Popen, timeout: float = 180) -> None:
    deadline = time.time() + timeout
    while not path.exists():
        assert proc.poll() is None, f"ended before {path} appeared:\n{proc.communicate()[0][-3000:]}"
        assert time.time() < deadline, f"{path} did not appear in {timeout} s"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """Started at once, awaited by the first test that needs its outputs."""
    out = tmp_path_factory.mktemp("uninterrupted") / "run"
    proc = start(out)

    def result() -> Path:
        text, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, text[-3000:]
        return out

    yield result
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def resume(out: Path) -> int:
    """Re-run the same command; returns the t_env it says it resumed at."""
    second = subprocess.run([sys.executable, "-m", "marlrepro.cli", "train", *ARGS, "--out", str(out)],
                            check=False, env=subprocess_env(), capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "will not match" not in second.stderr
    return int(re.search(r"resumed .* at t_env=(\d+)", second.stderr).group(1))


@pytest.mark.slow
def test_sigterm_checkpoints_and_the_rerun_matches_an_uninterrupted_run(tmp_path, uninterrupted):
    out = tmp_path / "run"
    proc = start(out)
    wait_for(out / "checkpoint" / "state.pt", proc)
    proc.send_signal(signal.SIGTERM)
    text, _ = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, text[-3000:]
    stopped_at = int(re.search(r"stopped by SIGTERM at t_env=(\d+); checkpoint written", text).group(1))
    assert 0 < stopped_at < T_MAX
    assert not (out / "final.json").exists()

    assert resume(out) == stopped_at  # the checkpoint was taken when the signal was handled
    assert_same_outputs(out, uninterrupted())


@pytest.mark.slow
def test_sigkill_resumes_from_the_last_checkpoint_and_matches(tmp_path, uninterrupted):
    out = tmp_path / "run"
    proc = start(out)
    wait_for(out / "checkpoint" / "state.pt", proc)
    time.sleep(1.0)  # a few periodic checkpoints further
    proc.kill()
    proc.communicate()
    assert not (out / "final.json").exists()

    assert 0 < resume(out) < T_MAX
    assert_same_outputs(out, uninterrupted())


# Runs whose final outputs evaluate the networks: the matrix game's Q table (DMIX's from sampled
# quantiles, which draw on the torch random state) and IGM-DA's action values (greedy episodes).
FINISHING = {
    "qmix_matrix": ("qmix", ["env.name=matrix:me_igm", "learner.batch_size=16"]),
    "dmix_matrix": ("dmix", ["env.name=matrix:monotonic", "learner.batch_size=16"]),
    "qmix_da_smax": ("qmix", ["env.name=smax:3m", "env.options.sight_range=0", "env.options.full_sight_obs=true",
                              "imitation.mode=dagger", "learner.batch_size=4", "env.num_envs=4",
                              "env.options.episode_limit=30", "run.t_max=300", "run.eval_interval=150"]),
}


@pytest.mark.parametrize("name", FINISHING)
def test_a_run_killed_after_its_last_checkpoint_rewrites_every_output(tmp_path, name):
    """A job killed while writing its outputs or logging them (issue 11) loses its outputs to
    Snakemake; its checkpoint holds the final state. The rerun resumes at the end, trains no more,
    and must write every output again, equal to what the run wrote: config.yaml, metrics.parquet
    from the checkpoint's rows, and the outputs that evaluate the networks, drawn from the random
    state checkpointed after the last evaluation."""
    algo, overrides = FINISHING[name]
    config = load_config([f"config/algos/{algo}.yaml"], [
        "run.t_max=160", "run.eval_interval=80", "run.eval_episodes=4", "run.checkpoint_interval=5",
        "run.device=cpu", "run.progress=false", "tracking.uri=", *overrides,
    ])
    Trainer.solo(config, tmp_path / "finished").run()
    shutil.copytree(tmp_path / "finished" / "checkpoint", tmp_path / "resumed" / "checkpoint")
    resumed = Trainer.solo(config, tmp_path / "resumed")
    assert resumed.runs[0].progress.t_env >= config.run.t_max
    resumed.run()
    assert_same_outputs(tmp_path / "resumed", tmp_path / "finished")


def test_resume_refuses_a_different_config(tmp_path):
    base = ["env.name=matrix:me_igm", "run.device=cpu", "run.t_max=64", "learner.batch_size=8",
            "run.progress=false", "run.eval_episodes=8"]
    Trainer.solo(load_config(overrides=base), tmp_path).run()
    with pytest.raises(ConfigError, match="learner.lr"):
        Trainer.solo(load_config(overrides=base + ["learner.lr=0.5"]), tmp_path)


def test_a_checkpoint_from_another_device_type_resumes_with_its_generator_reseeded(tmp_path, caplog):
    """``run.device`` is resume-free (a GPU run may finish on a CPU), but torch's generator states
    differ by device type: the run's own generator is reseeded, with a warning that the resume is
    inexact, and the run finishes."""
    import torch

    from marlrepro.checkpoint import load_checkpoint, save_checkpoint

    base = ["env.name=matrix:me_igm", "run.device=cpu", "run.t_max=64", "learner.batch_size=8",
            "run.progress=false", "run.eval_episodes=8", "run.checkpoint_interval=1"]
    trainer = Trainer.solo(load_config(overrides=base), tmp_path)
    trainer.run()
    state = load_checkpoint(tmp_path)
    state["generator"] = torch.zeros(16, dtype=torch.uint8)  # a CUDA generator's state
    state["progress"]["t_env"] = 40  # as if stopped before the end
    save_checkpoint(tmp_path, state)
    (tmp_path / "final.json").unlink()
    resumed = Trainer.solo(load_config(overrides=base), tmp_path)
    assert "written on another device type" in caplog.text
    assert resumed.run()[0]["t_env"] >= 64


@pytest.mark.slow
def test_a_smax_run_resumed_after_sigterm_matches_an_uninterrupted_run(tmp_path, monkeypatch):
    """SMAX draws its battles and the fused rollouts' exploration from the env's PRNG key: the
    checkpoint carries it, so the resumed run sees the same battles. (In process: the SIGTERM is
    sent by the run to itself after its 6th training step.)"""
    config = load_config(["config/algos/qmix.yaml"], [
        "env.name=smax_stock:3m", "env.options.episode_limit=20", "env.num_envs=2", "run.t_max=300",
        "run.eval_interval=100", "run.eval_episodes=2", "learner.batch_size=2", "run.checkpoint_interval=4",
        "learner.updates_per_rollout=2", "run.device=cpu", "run.progress=false", "tracking.uri=",
    ])
    Trainer.solo(config, tmp_path / "uninterrupted").run()

    train_step, steps = Trainer._train_step, []

    def train_step_then_sigterm(self, *args):
        train_step(self, *args)
        steps.append(self.runs[0].progress.t_env)
        if len(steps) == 6:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(Trainer, "_train_step", train_step_then_sigterm)
    with pytest.raises(Interrupted) as stopped:
        Trainer.solo(config, tmp_path / "resumed").run()
    assert f"stopped by SIGTERM at t_env={steps[5]};" in str(stopped.value)
    monkeypatch.undo()
    assert not (tmp_path / "resumed" / "final.json").exists()
    resumed = Trainer.solo(config, tmp_path / "resumed")
    assert resumed.runs[0].progress.t_env == steps[5] < 300
    resumed.run()
    assert_same_outputs(tmp_path / "resumed", tmp_path / "uninterrupted")
