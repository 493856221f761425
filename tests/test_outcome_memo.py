"""Reusing an earlier scoring's outcomes rule by rule (qa_rules.memo) gives the very card that
judging every rule afresh gives — after a pass-mark change, an edited rule, an edited situation —
and a damaged or foreign record is never trusted."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import qa_rules
from qa_rules.memo import Fingerprints, KnownOutcomes, content_key
from qa_rules.records import Conversation, Measures
from pipelines.shell.cli import app
from pipelines.stages.scoring import OUTCOMES_FOLDER, OutcomeRecords, score_and_report
from typer.testing import CliRunner

FIXTURES = Path(__file__).parent / "fixtures"
SAVED = sorted([*(FIXTURES / "calls").glob("*.conversation.json"), *(FIXTURES / "calls2").glob("*.conversation.json")])


def _call(path: Path) -> tuple[Conversation, Measures]:
    return Conversation.read(path), Measures.read(path.with_name(path.name.replace(".conversation.", ".measures.")))


def _book(tmp_path: Path, name: str, edit=None) -> qa_rules.Rulebook:
    text = qa_rules.default_rulebook_path("zh").read_text(encoding="utf-8")
    if edit:
        edited = edit(text)
        assert edited != text, "the edit must change the rulebook"
        text = edited
    path = tmp_path / f"{name}.yaml"
    path.write_text(text, encoding="utf-8")
    return qa_rules.load_rulebook(path)


EDITS = {
    "pass mark": lambda t: t.replace("pass_mark: 80", "pass_mark: 91"),
    # the greeting must now come in its first 3 s with three elements: a rule whose verdicts change
    "greeting rule": lambda t: t.replace("match: {at_least: 2}\n          window: {first_turns: 1, first_s: 15}",
                                         "match: {at_least: 3}\n          window: {first_turns: 1, first_s: 3}"),
    # a silent caller is now any customer with under a minute of voice and 500 words: the calls are no
    # longer conversations (closing rules N/A), and every rule may see it differently
    "situation": lambda t: t.replace("max_voiced_s: 1.0\n          max_words: 1\n",
                                     "max_voiced_s: 60.0\n          max_words: 500\n", 1),
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_reused_outcomes_give_the_card_judging_every_rule_gives(tmp_path, edit):
    before, after = _book(tmp_path, "before"), _book(tmp_path, "after", EDITS[edit])
    changed_rules = [a.id for (_, a), fb, fa in zip(after.rules, before.fingerprints.rules, after.fingerprints.rules)
                     if fb != fa]
    verdicts_moved = 0
    for path in SAVED:
        conversation, measures = _call(path)
        known = KnownOutcomes()
        first = qa_rules.score(conversation, measures, before, known)
        assert first == qa_rules.score(conversation, measures, before)
        # the record goes through its JSON, as between two runs
        kept = KnownOutcomes.from_json(known.to_json())
        reused = qa_rules.score(conversation, measures, after, kept)
        fresh = qa_rules.score(conversation, measures, after)
        assert reused.to_json() == fresh.to_json(), f"{path.name}: reused outcomes changed the card ({edit})"
        if edit == "pass mark":
            assert kept.found == 0, "a pass-mark change judges no rule again"
        elif edit == "greeting rule":
            assert kept.found == 1 and changed_rules == ["greeting.standard"]
        verdicts_moved += [r.verdict for r in first.rules] != [r.verdict for r in fresh.rules] or first.passed != fresh.passed
    if edit == "situation":
        assert changed_rules == [r.id for _, r in after.rules], "an edited situation re-judges every rule"
    assert verdicts_moved, f"the edit '{edit}' changes no card of the fixtures: the test would prove nothing"


def test_a_record_is_kept_per_content_and_rewritten_only_when_something_was_judged(tmp_path):
    conversation, measures = _call(SAVED[0])
    out = tmp_path / "out"
    book = _book(tmp_path, "book")
    key = content_key(conversation.to_json(), measures.model_dump_json(indent=2))
    card = score_and_report(conversation, measures, out, rulebook=book, content=key)
    record = out / OUTCOMES_FOLDER / key[:2] / f"{key}.json"
    assert record.is_file() and oct(record.stat().st_mode & 0o777) == "0o600"
    stamp = record.stat().st_mtime_ns
    assert score_and_report(conversation, measures, out, rulebook=_book(tmp_path, "mark", EDITS["pass mark"]),
                            content=key).rules == card.rules
    assert record.stat().st_mtime_ns == stamp, "nothing judged afresh: the record is not written again"
    # another content (one word changed) has its own record
    other = conversation.model_copy(update={"utterances": [
        conversation.utterances[0].model_copy(update={"text": conversation.utterances[0].text + "。"}),
        *conversation.utterances[1:]]})
    assert content_key(other.to_json(), measures.model_dump_json(indent=2)) != key


@pytest.mark.parametrize("damage", [
    "not json", '{"format": 99, "rules": {}, "situations": {}}', '{"format": 1, "rules": []}',
    '{"format": 1, "rules": {"FP": ["maybe", null, []]}, "situations": {}}',
    '{"format": 1, "rules": {"FP": ["pass", null, [["0", 1, null, null, null, null]]]}, "situations": {}}',
    '{"format": 1, "rules": {}, "situations": {"FP": [[0, 1, 2, null, "x", null]]}}',
    b"\xff\xfe\x00garbage",
])
def test_a_damaged_record_is_not_trusted(tmp_path, damage):
    conversation, measures = _call(SAVED[0])
    book = _book(tmp_path, "book")
    out = tmp_path / "out"
    key = content_key(conversation.to_json(), measures.model_dump_json(indent=2))
    records = OutcomeRecords(out)
    fresh = qa_rules.score(conversation, measures, book)
    # a record that says every rule passed, under the right fingerprints, would be believed: a damaged
    # one must not be read at all
    path = records._path(key)
    path.parent.mkdir(parents=True)
    text = damage.replace("FP", book.fingerprints.rules[0]) if isinstance(damage, str) else damage
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    known = records.known(key)
    assert qa_rules.score(conversation, measures, book, known).to_json() == fresh.to_json()
    assert known.found > 0
    records.keep(key, known)
    assert KnownOutcomes.from_json(path.read_text(encoding="utf-8"))  # written anew, readable


def test_fingerprints_follow_the_engine_code(monkeypatch, tmp_path):
    import qa_rules.memo as memo

    book = _book(tmp_path, "book")
    ours = Fingerprints(book)
    monkeypatch.setattr(memo, "engine_code_hash", lambda: "another version of the operators")
    other = Fingerprints(book)
    assert not set(ours.rules) & set(other.rules)
    assert not set(ours.situations.values()) & set(other.situations.values())
    monkeypatch.undo()
    assert Fingerprints(book).rules == ours.rules
    assert re.fullmatch(r"[0-9a-f]{64}", memo.engine_code_hash())


def test_callqa_score_after_a_rule_edit_writes_what_a_fresh_scoring_writes(tmp_path):
    edited = tmp_path / "edited.yaml"
    edited.write_text(EDITS["greeting rule"](qa_rules.default_rulebook_path("zh").read_text(encoding="utf-8")),
                      encoding="utf-8")
    runner = CliRunner()
    calls = [str(p) for p in SAVED if p.name.startswith("zh_")]
    assert len(calls) >= 4
    again, fresh = tmp_path / "again", tmp_path / "fresh"
    for args in (["score", *calls, "--out", str(again), "--workers", "1"],
                 ["score", *calls, "--out", str(again), "--workers", "1", "--rulebook", str(edited)],
                 ["score", *calls, "--out", str(fresh), "--workers", "1", "--rulebook", str(edited)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
    cards = sorted(p.name for p in fresh.glob("*.scorecard.*"))
    assert len(cards) == 2 * len(calls)
    for name in cards:
        assert (again / name).read_bytes() == (fresh / name).read_bytes(), name
    assert len(list((again / OUTCOMES_FOLDER).rglob("*.json"))) == len(calls)
