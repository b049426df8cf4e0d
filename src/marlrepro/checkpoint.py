"""Resumable training state, written atomically every K updates, with the previous one kept.

``checkpoint/state.pt`` holds the latest state. Before a new one is written, the old one is renamed
to ``checkpoint/state.prev.pt`` (one atomic rename), so that a checkpoint damaged after it was
written (a truncated copy, a full disk during a file transfer, a file from elsewhere) costs one
checkpoint interval instead of the run. :func:`load_checkpoint` falls back to it, and names the file
and what to do when neither can be read.

A run with ``run.keep_best`` also keeps ``checkpoint/best.pt``: its config, counters and learner at
its best evaluation so far (:data:`BEST_KEYS`, and the evaluation itself under ``evaluation``), the
weights that ``marlrepro export-policy --checkpoint best`` exports (MIFQ's experts). It is never
resumed from.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import torch

from marlrepro.errors import CheckpointError
from marlrepro.io_utils import atomic_write

log = logging.getLogger(__name__)

CHECKPOINT_DIR = "checkpoint"
CHECKPOINT_FILE = f"{CHECKPOINT_DIR}/state.pt"
PREVIOUS_FILE = f"{CHECKPOINT_DIR}/state.prev.pt"
BEST_FILE = f"{CHECKPOINT_DIR}/best.pt"
# Where an unreadable state.pt is moved once the previous checkpoint is used instead, so that the
# next rotation does not make it the fallback (and so that it can still be inspected).
UNREADABLE_FILE = f"{CHECKPOINT_DIR}/state.unreadable.pt"
# The keys that marlrepro.train.Trainer reads from every checkpoint without a default.
REQUIRED_KEYS = ("config", "progress", "learner", "optimizer", "last_target_update_episode", "buffer",
                 "train_means", "last_loss", "generator", "python_rng", "numpy_rng", "torch_rng", "cuda_rng",
                 "env_rng")
# The keys of checkpoint/best.pt (and what a policy export reads from any checkpoint).
BEST_KEYS = ("config", "progress", "learner", "evaluation")


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``run_dir/checkpoint/state.pt``, the checkpoint it replaces renamed to
    ``state.prev.pt`` first. A crash at any moment leaves at least one complete checkpoint."""
    current = run_dir / CHECKPOINT_FILE
    if current.exists():
        os.replace(current, run_dir / PREVIOUS_FILE)
    atomic_write(current, lambda tmp: torch.save(state, tmp))


def save_best(run_dir: Path, state: dict[str, Any]) -> None:
    """Write ``state`` (:data:`BEST_KEYS`) to ``run_dir/checkpoint/best.pt``, atomically."""
    atomic_write(run_dir / BEST_FILE, lambda tmp: torch.save(state, tmp))


def load_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """The last readable checkpoint in ``run_dir``, or None if the run starts fresh.

    ``state.pt`` is read first; when it is missing or unreadable (truncated, not a torch file,
    lacking :data:`REQUIRED_KEYS`), a warning names it and ``state.prev.pt`` is read instead (the
    unreadable file is moved to ``state.unreadable.pt``). Raises :class:`CheckpointError` when
    neither can be read."""
    current, previous = run_dir / CHECKPOINT_FILE, run_dir / PREVIOUS_FILE
    if not current.exists() and not previous.exists():
        return None
    problems = []
    for path in (current, previous):
        try:
            state = read_checkpoint(path)
        except CheckpointError as err:
            problems.append(f"{path}: {err}")
            continue
        if problems:
            log.warning("%s; resuming from the previous checkpoint %s instead", "; ".join(problems), path)
            if current.exists():
                os.replace(current, run_dir / UNREADABLE_FILE)
        return state
    raise CheckpointError(
        f"{run_dir / CHECKPOINT_DIR}: no readable checkpoint ({'; '.join(problems)}); delete "
        f"{run_dir / CHECKPOINT_DIR} to restart the run from scratch"
    )


def read_checkpoint(path: Path, required: tuple[str, ...] = REQUIRED_KEYS) -> dict[str, Any]:
    """The checkpoint in ``path`` holding the keys ``required`` (a resumable state's, by default);
    raises :class:`CheckpointError` saying why it cannot be used."""
    if not path.exists():
        raise CheckpointError("missing")
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises RuntimeError, EOFError, UnpicklingError, ... on a damaged file
        first_line = (str(err).strip().splitlines() or [""])[0]
        raise CheckpointError(f"unreadable ({type(err).__name__}: {first_line})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"not a marlrepro checkpoint (holds a {type(state).__name__}, not a dict)")
    missing = [key for key in required if key not in state]
    if missing:
        raise CheckpointError(f"not a marlrepro checkpoint (missing keys: {', '.join(missing)})")
    return state
