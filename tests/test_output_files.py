"""Writing into the output folder: a rewrite leaves exactly the new text, owner-only, and no
temporary file — whichever way the old file is replaced (see ``qa_rules/files.py``)."""

from __future__ import annotations

import os
import stat

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
