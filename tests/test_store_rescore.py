"""A re-score that leaves the conversation as it was (a rulebook change) keeps the call's utterance
rows and their search index — same ids, same hits — and replaces only the scoring rows; a call whose
conversation changed (other audio or settings, or a redacting store) still has its utterances and
index rewritten.  Either way the store reads back what the call's last save was given."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text

import qa_rules
from pipelines.results.search import search
from pipelines.results.store import Store
from pipelines.stages.scoring import score_and_report
from qa_rules.records import Conversation, Measures
from store_fixtures import build_store
from tests.review_support import copy_store

CALL = "zh_good_stereo"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("rescore"))


def _analysis(built, call_id: str = CALL) -> tuple[Conversation, Measures]:
    return (Conversation.read(built.out_dir / f"{call_id}.conversation.json"),
            Measures.read(built.out_dir / f"{call_id}.measures.json"))


def _utterances(store: Store, call_id: str = CALL) -> list[tuple]:
    with store.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            'SELECT id, idx, speaker, role, start, "end", text FROM utterances WHERE call_id = :c ORDER BY idx'),
            {"c": call_id})]


def _index(store: Store, call_id: str = CALL) -> list[tuple]:
    with store.engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(text(
            "SELECT utterance_id, terms, pinyin FROM utterance_search WHERE call_id = :c"), {"c": call_id}))


def _stricter_rulebook(tmp_path: Path) -> Path:
    book = tmp_path / "stricter.yaml"
    book.write_text(qa_rules.default_rulebook_path("zh").read_text(encoding="utf-8").replace("pass_mark: 80", "pass_mark: 99"),
                    encoding="utf-8")
    return book


def _rule_results(store: Store, call_id: str = CALL) -> int:
    return store.count("rule_results", call_id)


def test_a_rulebook_change_keeps_utterance_ids_and_search_hits(built, tmp_path):
    store = copy_store(built, tmp_path).store
    before, index_before = _utterances(store), _index(store)
    hits_before = search(store.engine, "久等")
    conversation, measures = _analysis(built)
    card = score_and_report(conversation, measures, tmp_path / "out", rulebook_path=_stricter_rulebook(tmp_path))

    store.save(CALL, "w2", "same-input", "stricter", conversation, measures, card)

    assert _utterances(store) == before and before  # same rows, same ids
    assert _index(store) == index_before and index_before
    assert search(store.engine, "久等") == hits_before
    assert _rule_results(store) == len(card.rules)
    row = next(r for r in store.calls() if r.call_id == CALL)
    assert (row.status, row.rulebook_key, row.percent) == ("done", "stricter", card.percent)


def test_a_changed_conversation_rewrites_utterances_and_index(built, tmp_path):
    store = copy_store(built, tmp_path).store
    before = _utterances(store)
    conversation, measures = _analysis(built)
    changed = conversation.model_copy(update={"utterances": [
        u.model_copy(update={"text": u.text + "宠物医院"}) if u.role == "customer" else u for u in conversation.utterances
    ]})
    card = score_and_report(changed, measures, tmp_path / "out")

    store.save(CALL, "w2", "other-input", "k", changed, measures, card)

    after = _utterances(store)
    assert [u[1:] for u in after] == [(i, u.speaker, u.role, u.start, u.end, u.text) for i, u in enumerate(changed.utterances)]
    assert {u[0] for u in after}.isdisjoint({u[0] for u in before})  # rewritten: new rows
    assert sorted(u for u, *_ in _index(store)) == sorted(u[0] for u in after)  # the index follows them
    assert {h.call_id for h in search(store.engine, "宠物医院")} == {CALL}


def test_fewer_utterances_drop_the_extra_rows_and_their_index(built, tmp_path):
    store = copy_store(built, tmp_path).store
    conversation, measures = _analysis(built)
    shorter = conversation.model_copy(update={"utterances": conversation.utterances[:-1]})
    store.save(CALL, "w2", "other-input", "k", shorter, measures, score_and_report(shorter, measures, tmp_path / "out"))
    assert len(_utterances(store)) == len(shorter.utterances) == len(_index(store))


def test_a_redacting_store_rewrites_the_lines_it_redacts(built, tmp_path):
    store = copy_store(built, tmp_path).store
    conversation, measures = _analysis(built)
    with_phone = conversation.model_copy(update={"utterances": [
        u.model_copy(update={"text": u.text + "我的电话是13812345678"}) if i == 1 else u
        for i, u in enumerate(conversation.utterances)
    ]})
    card = score_and_report(with_phone, measures, tmp_path / "out")
    store.save(CALL, "w2", "plain", "k", with_phone, measures, card)
    assert "13812345678" in _utterances(store)[1][-1]
    assert {h.call_id for h in search(store.engine, "13812345678")} == {CALL}

    store.save(CALL, "w3", "redacting", "k", with_phone, measures, card, redact=True)

    redacted = _utterances(store)
    assert "13812345678" not in redacted[1][-1]
    assert search(store.engine, "13812345678") == []  # the index follows the redacted line


def test_stored_evidence_text_is_what_asdict_gave():
    """The store's evidence JSON is what :func:`result_key` fingerprints: built field by field, it
    must stay byte-for-byte what ``dataclasses.asdict`` gave, for every kind of value."""
    import json
    from dataclasses import asdict

    from pipelines.results.store import evidence_json
    from qa_rules.records import EvidenceItem

    items = [EvidenceItem(0, 1.5), EvidenceItem(2.25, 3, "spk1", "您好，请问有什么可以帮您", 12, "greeting"),
             EvidenceItem(4.0, 5.0, None, 'he said "no"\n', "-46.1 dBFS", None), EvidenceItem(6, 7, "A", "", 0.5, "")]
    assert evidence_json(items) == json.dumps([asdict(item) for item in items], ensure_ascii=False)
    assert evidence_json([]) == "[]"


def _scoring_rows(store: Store, call_id: str = CALL) -> dict[str, list[tuple]]:
    queries = {"rule_results": "SELECT id, rule_id, category, verdict, points, max_points, fatal, evidence, title_zh, title_en",
               "category_results": "SELECT id, category, verdict", "situation_results": "SELECT id, situation_id, occurred",
               "flags": "SELECT id, reason, rule_id"}
    with store.engine.connect() as conn:
        return {table: [tuple(r) for r in conn.execute(text(f"{columns} FROM {table} WHERE call_id = :c ORDER BY id"), {"c": call_id})]
                for table, columns in queries.items()}


def test_unchanged_scoring_rows_are_kept_and_changed_ones_rewritten(built, tmp_path):
    """A rulebook edit that changes one rule's result rewrites that table's rows and keeps the tables
    whose rows are the same (same ids); either way the store reads back exactly the new card."""
    store = copy_store(built, tmp_path).store
    before = _scoring_rows(store)
    conversation, measures = _analysis(built)
    card = score_and_report(conversation, measures, tmp_path / "out", rulebook_path=_stricter_rulebook(tmp_path))
    store.save(CALL, "w2", "same-input", "stricter", conversation, measures, card)
    after = _scoring_rows(store)
    # pass mark 80 → 99 changes the call's percent row, not one rule's result
    assert after["rule_results"] == before["rule_results"] and before["rule_results"]
    assert after["category_results"] == before["category_results"]

    # one rule now fails with other evidence: the rule results are rewritten (new ids) and read back as given
    first = card.rules[0]
    edited = card.model_copy(update={"rules": [first.model_copy(update={"verdict": "fail", "points": 0.0, "note": "edited"}),
                                               *card.rules[1:]]})
    store.save(CALL, "w3", "same-input", "edited", conversation, measures, edited)
    rewritten = _scoring_rows(store)["rule_results"]
    assert {r[0] for r in rewritten}.isdisjoint({r[0] for r in before["rule_results"]})
    assert [(r[1], r[3], r[4]) for r in rewritten] == [(r.id, r.verdict, r.points) for r in edited.rules]
    assert [r[1:] for r in rewritten[1:]] == [r[1:] for r in before["rule_results"][1:]]

    # fewer flags than stored: the flag rows follow the card
    store.save(CALL, "w4", "same-input", "edited", conversation, measures, edited.model_copy(update={"flags": []}))
    assert _scoring_rows(store)["flags"] == []


def _digest(store: Store, call_id: str = CALL) -> str | None:
    with store.engine.connect() as conn:
        return conn.execute(text("SELECT rows_digest FROM calls WHERE call_id = :c"), {"c": call_id}).scalar()


def _set_digest(store: Store, value: str | None, call_id: str = CALL) -> None:
    with store.engine.begin() as conn:
        conn.execute(text("UPDATE calls SET rows_digest = :d WHERE call_id = :c"), {"d": value, "c": call_id})


def test_the_rows_digest_says_which_tables_to_rewrite_and_without_one_the_rows_are_compared(built, tmp_path):
    """Each save keeps a digest per table of the rows it wrote (``calls.rows_digest``); the next
    save rewrites exactly the tables whose digest changed and keeps the others (same ids).  A call
    with no digest (saved before the store kept one) or one of another format has its rows compared
    instead — and is given a digest."""
    from qa_rules.records import Flag

    store = copy_store(built, tmp_path).store
    conversation, measures = _analysis(built)
    card = score_and_report(conversation, measures, tmp_path / "out")
    store.save(CALL, "w1", "same-input", "rk", conversation, measures, card)
    before, utterances, digest = _scoring_rows(store), _utterances(store), _digest(store)
    assert digest and digest.startswith("r1:")

    flagged = card.model_copy(update={"flags": [*card.flags, Flag(reason="checked by hand")]})
    store.save(CALL, "w2", "same-input", "rk", conversation, measures, flagged)
    after = _scoring_rows(store)
    assert [row[1:] for row in after["flags"]] == [(f.reason, f.rule_id) for f in flagged.flags]
    assert after["rule_results"] == before["rule_results"] and _utterances(store) == utterances
    assert _digest(store) != digest

    for unknown in (None, "r0:" + ":".join(["0" * 16] * 5)):  # before digests; a format this code does not read
        _set_digest(store, unknown)
        store.save(CALL, "w3", "same-input", "rk", conversation, measures, card)  # the extra flag goes again
        assert _scoring_rows(store) == before | {"flags": _scoring_rows(store)["flags"]}
        assert [row[1:] for row in _scoring_rows(store)["flags"]] == [(f.reason, f.rule_id) for f in card.flags]
        assert _utterances(store) == utterances and _digest(store) == digest
        store.save(CALL, "w4", "same-input", "rk", conversation, measures, flagged)
        assert [row[1:] for row in _scoring_rows(store)["flags"]] == [(f.reason, f.rule_id) for f in flagged.flags]
