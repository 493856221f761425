"""A results store whose file is damaged (a disk fault, a copy cut short) or is not SQLite at all:
one line naming the store and what to do, from any command, and the file is left as it was."""

from __future__ import annotations

from pathlib import Path

import pytest

from cli_support import callqa_stopped
from pipelines.results.store import Store, StoreDamagedError, default_store_url
from pipelines.shell.cli import machine_problem



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
    line = callqa_stopped("run", str(calls), "--out", str(tmp_path / "out"))
    assert "is damaged or not a callqa store (file is not a database)" in line, line
    assert path.read_bytes() == before
