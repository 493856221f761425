"""A full disk (or quota) is the machine's fault, not a call's: it is recognised wherever it comes
from, a file is never left half-written, and a command stops with one line instead of a traceback.
(The batch's side — stop, keep what was stored, hold no call — is in ``test_batch_cache_only.py``.)"""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError

from cli_support import ROOT, callqa_stopped
from pipelines.shell.cli import machine_problem
from qa_rules import files
from qa_rules.files import OutOfSpaceError, disk_full, write_text_atomically, write_text_privately



class _PgDiskFull(Exception):
    """What psycopg raises for PostgreSQL's disk_full (SQLSTATE 53100), without needing a server."""

    sqlstate = "53100"


def _caused_by(cause: BaseException) -> Exception:
    try:
        raise RuntimeError("writing the summary failed") from cause
    except RuntimeError as exc:
        return exc


@pytest.mark.parametrize("exc", [
    OSError(errno.ENOSPC, "No space left on device"),
    OSError(errno.EDQUOT, "Disk quota exceeded"),
    OperationalError("COMMIT", {}, sqlite3.OperationalError("database or disk is full")),
    OperationalError("INSERT …", {}, _PgDiskFull("could not extend file: No space left on device")),
    _caused_by(OSError(errno.ENOSPC, "No space left on device")),
    OutOfSpaceError("the batch stopped"),
], ids=["ENOSPC", "EDQUOT", "sqlite", "postgresql", "cause", "batch"])
def test_a_full_disk_is_recognised_wherever_it_comes_from(exc):
    assert disk_full(exc)


@pytest.mark.parametrize("exc", [
    OSError(errno.EACCES, "Permission denied"),
    ValueError("database or disk is full"),  # the words alone, from anything but SQLite, are not the disk
    sqlite3.OperationalError("database is locked"),
    OperationalError("SELECT", {}, sqlite3.OperationalError("no such table: calls")),
    KeyError("ENOSPC"),
], ids=["EACCES", "text", "locked", "no-table", "key"])
def test_other_errors_are_not_taken_for_a_full_disk(exc):
    assert not disk_full(exc)
    assert machine_problem(exc) is None


def test_an_exception_chain_with_a_loop_ends():
    exc = ValueError("a")
    other = ValueError("b")
    exc.__context__, other.__context__ = other, exc
    assert not disk_full(exc)


def _filling(monkeypatch, after: int) -> None:
    """``os.write`` in the writer takes ``after`` bytes, then the disk is full."""
    real = os.write

    def write(fd, data):
        if len(data) > after:
            real(fd, bytes(data[:after]))
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(files.os, "write", write)


def test_a_write_stopped_by_a_full_disk_leaves_no_mixed_file(tmp_path, monkeypatch):
    """Written in place (the summary), the new text's start over the old text's end would read as a
    real file: it is removed instead."""
    path = tmp_path / "summary.csv"
    path.write_text("old,old,old,old,old,old\n" * 100, encoding="utf-8")
    _filling(monkeypatch, after=10)
    with pytest.raises(OSError) as raised:
        write_text_privately(path, "new,new\n" * 100)
    assert raised.value.errno == errno.ENOSPC
    assert not path.exists()


def test_an_atomic_write_stopped_by_a_full_disk_keeps_the_old_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "c1.scorecard.json"
    path.write_text('{"old": true}', encoding="utf-8")
    _filling(monkeypatch, after=5)
    with pytest.raises(OSError):
        write_text_atomically(path, '{"new": true, "padding": "' + "x" * 100 + '"}')
    assert path.read_text(encoding="utf-8") == '{"old": true}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c1.scorecard.json"]  # no .tmp left taking space


def test_the_message_is_one_line_with_what_to_do():
    message = machine_problem(_caused_by(OSError(errno.ENOSPC, "No space left on device", "/out/a.json")))
    assert message == "no space left on the disk (writing the summary failed) — free space there and run the command again"
    assert machine_problem(OutOfSpaceError("no space left on the disk (x) — the batch stopped: …")).startswith("no space")


_FULL_DISK = """
import errno
from pipelines.shell import rescore
def full(path, out, rulebook_path=None):
    raise OSError(errno.ENOSPC, "No space left on device", str(out / path.name))
rescore.rescore_file = full
"""


def test_callqa_stopped_by_a_full_disk_prints_one_line_not_a_traceback(tmp_path):
    saved = tmp_path / "saved"
    saved.mkdir()
    fixture = ROOT / "tests" / "fixtures" / "calls" / "zh_good_stereo"
    for kind in ("conversation", "measures"):
        (saved / f"a.{kind}.json").write_text(Path(f"{fixture}.{kind}.json").read_text(encoding="utf-8").replace(
            '"call_id": "zh_good_stereo"', '"call_id": "a"'), encoding="utf-8")
    line = callqa_stopped("score", str(saved), "--out", str(tmp_path / "out"), setup=_FULL_DISK)
    assert line == (f"error: no space left on the disk ([Errno 28] No space left on device: "
                    f"'{tmp_path / 'out' / 'a.conversation.json'}') — free space there and run the command again")
