"""A killed ``marlrepro train`` resumes from its checkpoint when re-run with the same command."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from marlrepro.config import load_config
from marlrepro.errors import ConfigError
from marlrepro.train import Trainer

ARGS = [
    "--set", "env.name=matrix:me_igm", "--set", "run.device=cpu", "--set", "run.t_max=6000",
    "--set", "run.checkpoint_interval=20", "--set", "run.eval_interval=500",
    "--set", "run.eval_episodes=8", "--set", "learner.batch_size=16", "--set", "run.progress=false",
]


def _command(out):
    return [sys.executable, "-m", "marlrepro.cli", "train", *ARGS, "--out", str(out)]


@pytest.mark.slow
def test_killed_run_resumes(tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(_command(out), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    checkpoint = out / "checkpoint" / "state.pt"
    deadline = time.time() + 120
    while time.time() < deadline and not checkpoint.exists():
        time.sleep(0.2)
    time.sleep(1.0)  # let it get a few checkpoints further
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert checkpoint.exists(), proc.stdout.read().decode()
    assert not (out / "final.json").exists()

    second = subprocess.run(_command(out), env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr
    assert "resumed" in second.stderr
    resumed_at = int(second.stderr.split("at t_env=")[1].split(",")[0])
    assert 0 < resumed_at < 6000

    metrics = pd.read_parquet(out / "metrics.parquet")
    assert metrics["t_env"].is_monotonic_increasing
    assert metrics["t_env"].iloc[0] == 0 and metrics["t_env"].iloc[-1] >= 6000
    assert (out / "final.json").exists()


def test_resume_refuses_a_different_config(tmp_path):
    base = ["env.name=matrix:me_igm", "run.device=cpu", "run.t_max=64", "learner.batch_size=8",
            "run.progress=false", "run.eval_episodes=8"]
    Trainer(load_config(overrides=base), tmp_path).run()
    with pytest.raises(ConfigError, match="learner.lr"):
        Trainer(load_config(overrides=base + ["learner.lr=0.5"]), tmp_path)
