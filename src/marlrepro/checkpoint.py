"""Resumable training state, written atomically every K updates."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from marlrepro.io_utils import atomic_write

log = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint/state.pt"


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> None:
    """Write ``state`` to ``run_dir/checkpoint/state.pt`` so that a crash mid-write loses nothing."""
    atomic_write(run_dir / CHECKPOINT_FILE, lambda tmp: torch.save(state, tmp))


def load_checkpoint(run_dir: Path) -> dict[str, Any] | None:
    """The last checkpoint in ``run_dir``, or None if the run starts fresh."""
    path = run_dir / CHECKPOINT_FILE
    if not path.exists():
        return None
    return torch.load(path, map_location="cpu", weights_only=False)
