"""Writing into the output folder: a rewrite leaves exactly the new text, owner-only, and no
temporary file — whichever way the old file is replaced (see ``qa_rules/files.py``)."""

from __future__ import annotations

import os
import signal
import stat

import pytest

from qa_rules.files import write_text_atomically, write_text_privately


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_a_shorter_rewrite_leaves_no_tail_of_the_old_text(tmp_path):
    page = tmp_path / "call.scorecard.html"
    write_text_privately(page, "<p>" + "长" * 5000 + "</p>")
    write_text_privately(page, "<p>短</p>")
    assert page.read_text(encoding="utf-8") == "<p>短</p>"
    assert _mode(page) == 0o600


def test_an_existing_readable_file_becomes_owner_only(tmp_path):
    old = tmp_path / "summary.csv"
    old.write_text("old,text\n" * 100)
    os.chmod(old, 0o644)
    write_text_privately(old, "new\n")
    assert old.read_text() == "new\n" and _mode(old) == 0o600


def test_atomic_rewrite_replaces_the_file_and_leaves_no_temporary(tmp_path):
    card = tmp_path / "c1.scorecard.json"
    write_text_atomically(card, '{"score": 1}' + " " * 20000)
    inode = os.stat(card).st_ino
    write_text_atomically(card, '{"score": 2}')
    assert card.read_text() == '{"score": 2}'
    assert os.stat(card).st_ino != inode  # a new file renamed into place, not the old one written over
    assert _mode(card) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c1.scorecard.json"]


def test_atomic_rewrite_replaces_a_link_not_its_target(tmp_path):
    target = tmp_path / "elsewhere.json"
    target.write_text("keep me")
    link = tmp_path / "c2.scorecard.json"
    link.symlink_to(target)
    write_text_atomically(link, '{"score": 3}')
    assert not link.is_symlink() and link.read_text() == '{"score": 3}'
    assert target.read_text() == "keep me"


def test_atomic_write_after_a_killed_run_reuses_its_leftover_temporary(tmp_path):
    card = tmp_path / "c3.scorecard.json"
    (tmp_path / "c3.scorecard.json.tmp").write_text("half a JSON" * 1000)
    write_text_atomically(card, "{}")
    assert card.read_text() == "{}"
    assert not (tmp_path / "c3.scorecard.json.tmp").exists()


def test_an_unchanged_text_is_not_written_again_but_anything_else_about_the_file_is_mended(tmp_path):
    """A re-score writes every call's conversation and measures again, unchanged: the file is left
    alone (same inode, no temporary).  The same text in a file readable by others, or behind a link,
    or a same-length different text, is still written as a new private file."""
    card = tmp_path / "c4.conversation.json"
    write_text_atomically(card, '{"text": "您好"}')
    inode = os.stat(card).st_ino
    write_text_atomically(card, '{"text": "您好"}')
    assert os.stat(card).st_ino == inode
    write_text_atomically(card, '{"text": "你好"}')  # same length in bytes, other text
    assert card.read_text(encoding="utf-8") == '{"text": "你好"}' and os.stat(card).st_ino != inode

    inode = os.stat(card).st_ino
    os.chmod(card, 0o644)
    write_text_atomically(card, '{"text": "你好"}')
    assert _mode(card) == 0o600 and os.stat(card).st_ino != inode

    target = tmp_path / "elsewhere.json"
    target.write_text('{"text": "x"}')
    os.chmod(target, 0o600)
    link = tmp_path / "c5.conversation.json"
    link.symlink_to(target)
    write_text_atomically(link, '{"text": "x"}')
    assert not link.is_symlink() and link.read_text() == '{"text": "x"}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c4.conversation.json", "c5.conversation.json", "elsewhere.json"]


def test_a_file_written_in_place_never_writes_through_what_was_planted_at_its_name(tmp_path):
    """Pages, the summary and the outcome records are written over in place: whatever stands at the
    name — a link to a file elsewhere, a second hard link, another program's named pipe — loses its
    name to a new private file, and what it pointed at is untouched."""
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("keep me")
    out = tmp_path / "out"
    out.mkdir()

    linked = out / "summary.csv"
    linked.symlink_to(elsewhere)
    write_text_privately(linked, "new\n")
    assert not linked.is_symlink() and linked.read_text() == "new\n" and _mode(linked) == 0o600

    hard = out / "c1.scorecard.html"
    os.link(elsewhere, hard)
    write_text_privately(hard, "<p>page</p>")
    assert hard.read_text() == "<p>page</p>" and os.stat(hard).st_nlink == 1

    pipe = out / "summary.html"
    os.mkfifo(pipe)
    signal.signal(signal.SIGALRM, lambda *_: pytest.fail("writing hung on a named pipe"))
    signal.alarm(10)
    try:
        write_text_privately(pipe, "<p>summary</p>")
    finally:
        signal.alarm(0)
    assert stat.S_ISREG(os.lstat(pipe).st_mode) and pipe.read_text() == "<p>summary</p>"

    assert elsewhere.read_text() == "keep me"

    folder = out / "c2.scorecard.html"
    (folder / "inside").mkdir(parents=True)
    with pytest.raises(OSError):  # an error for this write; the folder and what it holds stay
        write_text_privately(folder, "<p>page</p>")
    assert (folder / "inside").is_dir()


def test_an_atomic_write_never_writes_through_a_link_planted_at_its_temporary_name(tmp_path):
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("keep me")
    (tmp_path / "c6.scorecard.json.tmp").symlink_to(elsewhere)
    write_text_atomically(tmp_path / "c6.scorecard.json", '{"score": 6}')
    assert (tmp_path / "c6.scorecard.json").read_text() == '{"score": 6}'
    assert elsewhere.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c6.scorecard.json", "elsewhere.txt"]


def test_an_outcome_record_never_writes_through_a_planted_link(tmp_path):
    from pipelines.stages.scoring import OutcomeRecords
    from qa_rules.memo import KnownOutcomes

    records = OutcomeRecords(tmp_path)
    content = "ab" + "0" * 30
    record = records._path(content)
    record.parent.mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere.txt"
    elsewhere.write_text("keep me")
    record.symlink_to(elsewhere)

    known = KnownOutcomes()
    known.rule("fp", lambda: _an_outcome())
    records.keep(content, known)
    assert elsewhere.read_text() == "keep me"
    assert not record.is_symlink()
    assert records.known(content).rule("fp", lambda: pytest.fail("the record was not kept")).note == "ok"


def _an_outcome():
    from qa_rules.context import Outcome

    return Outcome("pass", note="ok")
