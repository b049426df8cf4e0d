"""Tampered copies of the project's checksummed zip archives (exported policies, demonstration
files: ``marlrepro.archive``), for the tests of the checks that must refuse them."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from marlrepro.archive import MANIFEST_MEMBER


def rewrite(source: Path, target: Path, manifest: dict | None = None, members: dict[str, bytes] | None = None) -> Path:
    """A copy of archive ``source`` at ``target`` with its manifest and/or other ``members``
    (name -> bytes) replaced."""
    with zipfile.ZipFile(source) as archive:
        contents = {name: archive.read(name) for name in archive.namelist()}
    if manifest is not None:
        contents[MANIFEST_MEMBER] = json.dumps(manifest).encode()
    contents.update(members or {})
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in contents.items():
            archive.writestr(name, data)
    return target


def manifest_of(path: Path) -> dict:
    """The manifest of archive ``path``."""
    with zipfile.ZipFile(path) as archive:
        return json.loads(archive.read(MANIFEST_MEMBER))


def flip_byte(path: Path, target: Path, member: str) -> Path:
    """A copy of archive ``path`` at ``target`` with one byte in the middle of ``member`` inverted
    in place (the zip's own structure intact)."""
    data = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        stored = archive.read(member)
    data[data.find(stored) + len(stored) // 2] ^= 0xFF
    target.write_bytes(bytes(data))
    return target
