"""Versioned, checksummed zip archives of one JSON manifest and torch data: the common ground of
the project's file formats (exported policies, :mod:`marlrepro.policy_file`; demonstrations,
:mod:`marlrepro.demos`).

An archive holds ``manifest.json`` (sorted, indented JSON naming the format and its version, and the
SHA-256 of each data member) and data members written with ``torch.save`` of tensors only, read back
with ``weights_only=True``. Members are stored uncompressed with fixed timestamps, so the same
content always gives the same bytes. Each failure to read raises the format's own error class
(a :class:`~marlrepro.errors.ConfigError`), saying what is wrong and how to write the file again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import pickle
import typing
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch

from marlrepro import __version__
from marlrepro.errors import ConfigError

M = TypeVar("M")

MANIFEST_MEMBER = "manifest.json"
# every member's timestamp (the earliest a zip holds): a file's bytes do not depend on when it was written
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)


@dataclass(frozen=True)
class ArchiveFormat:
    """A file format: its ``name`` (the manifest's ``format``), the ``versions`` readers support,
    the ``error`` class its readers raise and ``redo``, what the user does to write a good file
    (``export the policy again``)."""

    name: str
    versions: tuple[int, ...]
    error: type[ConfigError]
    redo: str

    def fail(self, message: str) -> ConfigError:
        return self.error(message)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def tensor_bytes(data: Any) -> bytes:
    """``torch.save`` of ``data`` (tensors, in plain containers) as bytes."""
    buffer = io.BytesIO()
    torch.save(data, buffer)
    return buffer.getvalue()


def write_archive(path: Path, manifest: Any, members: Mapping[str, bytes]) -> None:
    """Write the archive ``path``: dataclass ``manifest`` as ``manifest.json``, then ``members``."""
    text = json.dumps(dataclasses.asdict(manifest), indent=2, sort_keys=True) + "\n"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(zipfile.ZipInfo(MANIFEST_MEMBER, ZIP_DATE_TIME), text)
        for name, data in members.items():
            archive.writestr(zipfile.ZipInfo(name, ZIP_DATE_TIME), data)


def open_archive(path: Path, fmt: ArchiveFormat) -> zipfile.ZipFile:
    """The zip archive ``path``; fails when there is no such file or it is not a zip archive."""
    if not path.is_file():
        raise fmt.fail("no such file")
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise fmt.fail(f"not a {fmt.name} file (not a zip archive: truncated, or another kind of file); "
                       f"{fmt.redo}") from None


def read_member(archive: zipfile.ZipFile, name: str, fmt: ArchiveFormat) -> bytes:
    """The bytes of member ``name``; fails when it is absent or damaged (its CRC, a truncation)."""
    try:
        return archive.read(name)
    except KeyError:
        raise fmt.fail(f"not a {fmt.name} file (no {name} in the archive)") from None
    except (zipfile.BadZipFile, EOFError, OSError) as err:  # a CRC mismatch, a truncated member
        raise fmt.fail(f"corrupt: {name} cannot be read ({err}); {fmt.redo}") from None


def parse_manifest(data: bytes, manifest_class: type[M], fmt: ArchiveFormat) -> M:
    """The ``manifest_class`` in ``data``; its format and version are checked before its fields,
    then every field's presence and type (fields the class does not know are ignored)."""
    try:
        fields = json.loads(data)
    except ValueError as err:
        raise fmt.fail(f"corrupt: {MANIFEST_MEMBER} is not JSON ({err})") from None
    if not isinstance(fields, dict) or fields.get("format") != fmt.name:
        raise fmt.fail(f"not a {fmt.name} file ({MANIFEST_MEMBER} names format "
                       f"{fields.get('format') if isinstance(fields, dict) else None!r})")
    if fields.get("version") not in fmt.versions:
        raise fmt.fail(
            f"{fmt.name} version {fields.get('version')!r} is not supported by marlrepro {__version__} (supported "
            f"versions: {', '.join(map(str, fmt.versions))}); {fmt.redo} with this marlrepro")
    hints = typing.get_type_hints(manifest_class)
    missing = [name for name in hints if name not in fields]
    if missing:
        raise fmt.fail(f"{MANIFEST_MEMBER} lacks the fields {', '.join(missing)}")
    wrong = [f"{name} ({type(fields[name]).__name__})" for name, hint in hints.items()
             if not isinstance(fields[name], typing.get_origin(hint) or hint)]
    if wrong:
        raise fmt.fail(f"{MANIFEST_MEMBER} has fields of the wrong type: {', '.join(wrong)}")
    return manifest_class(**{name: fields[name] for name in hints})


def load_tensors(data: bytes, name: str, checksum: str, checksum_field: str, fmt: ArchiveFormat,
                 what: str) -> dict[str, torch.Tensor]:
    """The dict of tensors in member ``name`` (bytes ``data``), after checking its SHA-256 against
    the manifest's ``checksum_field`` (``checksum``); ``what`` names the content (a torch state dict)."""
    if sha256(data) != checksum:
        raise fmt.fail(f"corrupt: the checksum of {name} does not match its manifest's {checksum_field}; {fmt.redo}")
    try:
        tensors = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, ValueError) as err:
        raise fmt.fail(f"corrupt: {name} is not {what} ({err})") from None
    if not isinstance(tensors, dict) or not all(isinstance(t, torch.Tensor) for t in tensors.values()):
        raise fmt.fail(f"corrupt: {name} holds a {type(tensors).__name__}, not {what}")
    return tensors
