"""Shared test settings: small CPU-only runs."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import torch

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
# Tests check values, not speed: XLA's lowest backend optimisation level compiles the SMAX
# programs several times faster on CPU (also inherited by the workflow's subprocesses).
os.environ.setdefault("XLA_FLAGS", "--xla_backend_optimization_level=0")
# One persistent JAX compilation cache for the whole session: every test worker and every
# `marlrepro train` a test starts reads the programs the others compiled (same envs, widths and
# agents), as the workflow's jobs share `jax_cache`. JAX keys each entry by the program, its
# version and flags, so a stale entry is never used.
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(Path(tempfile.gettempdir()) / "marlrepro-tests-jax-cache"))
# Cache every program, not only those whose compilation took JAX's default threshold of 1 s: the
# suite compiles thousands of small ones (a train job's start-up ops, evaluation), the same in
# every worker and subprocess.
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _no_ambient_tracking(monkeypatch):
    """Tests never log to a user's MLflow store unless they set one up themselves."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
