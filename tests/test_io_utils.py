"""Outputs are written atomically: a job that dies while writing never leaves a truncated file
under the real name, and no code path writes an output any other way."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from marlrepro.io_utils import atomic_write

SRC = Path(__file__).resolve().parents[1] / "src" / "marlrepro"
# Calls that write a file when given a path (method names, whatever the receiver).
WRITE_METHODS = {"write_text", "write_bytes", "to_parquet", "to_csv", "to_json", "to_pickle", "savefig", "save",
                 "savez", "savez_compressed"}
DUMPS = {"dump", "safe_dump"}  # json.dump / yaml.dump: write when given a stream


def _name(func: ast.expr) -> str:
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def _writes(call: ast.Call) -> bool:
    name = _name(call.func)
    if name in WRITE_METHODS:
        return True
    if name in DUMPS:
        return len(call.args) >= 2 or any(k.arg == "stream" for k in call.keywords)
    if name == "open":
        modes = [a.value for a in call.args if isinstance(a, ast.Constant) and isinstance(a.value, str)]
        modes += [k.value.value for k in call.keywords if k.arg == "mode" and isinstance(k.value, ast.Constant)]
        return any(set(mode) & set("wax+") for mode in modes)
    return False


def _in_memory_buffers(tree: ast.AST) -> set[str]:
    """Names assigned an in-memory stream (``x = io.BytesIO()`` or ``io.StringIO()``): writing
    into one writes no file."""
    return {target.id for node in ast.walk(tree) if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Call) and _name(node.value.func) in ("BytesIO", "StringIO")
            for target in node.targets if isinstance(target, ast.Name)}


def unsafe_writes(source: str) -> list[int]:
    """Lines of calls that write a file outside a callback handed to ``atomic_write`` (writes
    into an in-memory buffer are no file)."""
    tree = ast.parse(source)
    memory = _in_memory_buffers(tree)
    callbacks = {arg for node in ast.walk(tree)
                 if isinstance(node, ast.Call) and _name(node.func) == "atomic_write" for arg in node.args[1:]}
    by_name = {_name(cb) for cb in callbacks if isinstance(cb, ast.Name)}
    inside = {id(n) for cb in callbacks for n in ast.walk(cb)}
    inside |= {id(n) for node in ast.walk(tree)
               if isinstance(node, ast.FunctionDef) and node.name in by_name for n in ast.walk(node)}
    return sorted(node.lineno for node in ast.walk(tree)
                  if isinstance(node, ast.Call) and _writes(node) and id(node) not in inside
                  and not any(isinstance(arg, ast.Name) and arg.id in memory for arg in node.args))


def test_the_audit_finds_direct_writes():
    assert unsafe_writes("frame.to_parquet(path)\nopen(p, 'w').write(x)\njson.dump(d, f)\ntorch.save(s, p)") == [
        1, 2, 3, 4]
    assert unsafe_writes("atomic_write(p, lambda tmp: frame.to_parquet(tmp))\nopen(p).read()\njson.dumps(d)") == []
    assert unsafe_writes("def w(tmp):\n    tmp.write_text('x')\natomic_write(p, w)") == []
    assert unsafe_writes("b = io.BytesIO()\ntorch.save(s, b)\ntorch.save(s, p)") == [3]


def test_every_output_of_the_package_is_written_atomically():
    found = {str(path.relative_to(SRC)): lines for path in sorted(SRC.rglob("*.py"))
             if (lines := unsafe_writes(path.read_text()))}
    assert found == {}, f"non-atomic writes (use marlrepro.io_utils.atomic_write): {found}"


def test_a_failing_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "final.json"
    target.write_text('{"complete": true}\n')

    def half_then_fail(tmp: Path) -> None:
        tmp.write_text('{"compl')
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(target, half_then_fail)
    assert target.read_text() == '{"complete": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["final.json"]
    with pytest.raises(OSError):
        atomic_write(tmp_path / "new.parquet", half_then_fail)
    assert not (tmp_path / "new.parquet").exists()


KILLED_WRITER = """
import sys, time
from pathlib import Path
from marlrepro.io_utils import atomic_write

def slow(tmp):
    tmp.write_text('{"compl')
    Path(sys.argv[2]).touch()
    time.sleep(60)

atomic_write(sys.argv[1], slow)
"""


def test_a_process_killed_mid_write_leaves_no_truncated_file(tmp_path):
    target, writing = tmp_path / "metrics.parquet", tmp_path / "writing"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(SRC.parent), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(target), str(writing)], env=env)
    deadline = time.time() + 60
    while not writing.exists():
        assert proc.poll() is None and time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not target.exists()
    leftovers = [p.name for p in tmp_path.iterdir() if p != writing]
    assert len(leftovers) == 1 and leftovers[0].startswith(".metrics.parquet.") and leftovers[0].endswith(".tmp")
