"""Atomic file writes: a reader never sees a half-written output.

Every output of a run goes through :func:`atomic_write`: the content is written to a hidden
temporary file beside the target, flushed to disk, then renamed over the target (a single atomic
step on POSIX file systems). A job killed at any moment, even by SIGKILL or a node crash, leaves
the previous file or the new one, never a truncated file under the real name; at worst a
``.<name>.*.tmp`` file remains, which no rule reads.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

_SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(text: str) -> Any:
    """``yaml.safe_load`` through libyaml where PyYAML has it (the same safe loading, about ten
    times faster: config files are read thousands of times when the workflow plans a scale)."""
    return yaml.load(text, Loader=_SAFE_LOADER)


def atomic_write(path: str | Path, write: Callable[[Path], None]) -> None:
    """Call ``write(tmp)`` on a temporary file beside ``path``, flush it to disk, then rename it
    into place. If ``write`` raises, ``path`` is left as it was and the temporary file removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        _fsync(tmp, os.O_RDONLY)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync(path.parent, os.O_RDONLY | os.O_DIRECTORY)  # the rename itself


def _fsync(path: str | Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json(path: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON with sorted keys, atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n"))


def write_yaml(path: str | Path, data: Any) -> None:
    """Write ``data`` as YAML in its own key order, atomically."""
    atomic_write(path, lambda tmp: tmp.write_text(yaml.safe_dump(data, sort_keys=False)))
