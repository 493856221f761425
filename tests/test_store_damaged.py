"""A results store whose file is damaged (a disk fault, a copy cut short) or is not SQLite at all:
one line naming the store and what to do, from any command, and the file is left as it was."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.results.store import Store, StoreDamagedError, default_store_url
from pipelines.shell.cli import machine_problem

ROOT = Path(__file__).resolve().parent.parent


def _garbage_store(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "callqa.db"
    path.write_bytes(b"this was a store once\n" + bytes(range(256)) * 40)
    return path


def test_a_file_that_is_not_a_database_is_named_with_the_fix(tmp_path):
    path = _garbage_store(tmp_path / "out")
    before = path.read_bytes()
    with pytest.raises(StoreDamagedError) as refused:
        Store(default_store_url(tmp_path / "out"))
    message = str(refused.value)
    assert message.startswith(f"the results store sqlite:///{path} is damaged or not a callqa store (file is not a database)")
    assert "move that file aside" in message and "analysis cache" in message
    assert machine_problem(refused.value) == message
    assert path.read_bytes() == before  # nothing written over it


def test_a_store_damaged_inside_is_one_line_too(tmp_path):
    """Pages overwritten in the middle of a real store: SQLite finds it "malformed" when it reads them."""
    import sqlite3

    from qa_rules.records import CallSource

    out = tmp_path / "out"
    out.mkdir()
    store = Store(default_store_url(out))
    store.register([CallSource(call_id=f"call_{k:04d}", path=tmp_path / f"call_{k:04d}_{'x' * 100}.wav") for k in range(300)])
    store.engine.dispose()
    db = sqlite3.connect(out / "callqa.db")
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    data = bytearray((out / "callqa.db").read_bytes())
    page = 4096
    for start in range(2 * page, len(data) - page, page):  # every page but the first (the header) and the last
        data[start + 8:start + page] = b"\xa5" * (page - 8)
    (out / "callqa.db").write_bytes(bytes(data))
    with pytest.raises(Exception) as raised:
        reopened = Store(default_store_url(out))
        reopened.calls()
    message = machine_problem(raised.value)
    assert message is not None and "database disk image is malformed" in message, raised.value
    assert "move that file aside" in message


def test_callqa_on_a_damaged_store_prints_one_line_and_leaves_the_file(tmp_path):
    calls = tmp_path / "calls"
    calls.mkdir()
    (calls / "a.wav").write_bytes(b"RIFF")  # never reached: the store is opened first
    path = _garbage_store(tmp_path / "out")
    before = path.read_bytes()
    proc = subprocess.run([sys.executable, "-m", "pipelines.shell.cli", "run", str(calls), "--out", str(tmp_path / "out")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "400"})
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "Traceback" not in output and "╭" not in output, output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "is damaged or not a callqa store (file is not a database)" in errors[0], output
    assert path.read_bytes() == before
