"""Shared test settings: small CPU-only runs."""

from __future__ import annotations

import os
import tempfile
from collections import Counter
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
torch.set_num_threads(1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The smoke DAG's file first, then the other files by their number of tests, most first.

    ``make test`` runs ``--dist loadfile --no-loadscope-reorder``, so xdist hands out the files
    in this order: one worker starts the DAG (its module fixture, the suite's longest piece) at
    once while the others take the rest. xdist's own reordering (by number of tests, kept here
    for the rest) sent the DAG's few tests last, and the suite then waited for the DAG alone. A
    stable sort: each file's tests keep their order."""
    per_file = Counter(item.path for item in items)
    items.sort(key=lambda item: (item.path.name != "test_dag_smoke.py", -per_file[item.path]))


@pytest.fixture(autouse=True)
def _no_ambient_tracking(monkeypatch):
    """Tests never log to a user's MLflow store unless they set one up themselves."""
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
