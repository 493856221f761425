"""Reviews that stay true: re-scoring a call with another rulebook marks a human review stale when
its rule's verdict or evidence changed (nothing deleted), keeps it current when the result is the
same, and calibration leaves stale reviews out until a reviewer confirms again."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

import qa_rules
from qa_rules.records import Conversation, Measures
from pipelines.review import calibration, queries
from pipelines.stages.scoring import score_and_report
from pipelines.results.store import ReviewRow
from store_fixtures import build_store


def _rescore(built, tmp_path, call_id: str, rulebook_text: str):
    book = tmp_path / "changed.yaml"
    book.write_text(rulebook_text, encoding="utf-8")
    conversation = Conversation.read(built.out_dir / f"{call_id}.conversation.json")
    measures = Measures.read(built.out_dir / f"{call_id}.measures.json")
    card = score_and_report(conversation, measures, tmp_path / "rescored", rulebook_path=book)
    built.store.save(call_id, "w", "k", "changed", conversation, measures, card)


def _reviews(store, call_id):
    with Session(store.engine) as session:
        rows = list(session.scalars(select(ReviewRow).where(ReviewRow.call_id == call_id).order_by(ReviewRow.id)))
        session.expunge_all()
    return rows


def test_rescore_marks_changed_reviews_stale_and_calibration_skips_them(tmp_path):
    built = build_store(tmp_path)
    call_id = "zh_no_greeting"
    queries.save_review(built.store, call_id, "greeting.standard", "pass", "qa1", "greeting was fine")
    queries.save_review(built.store, call_id, "closing.anything_else", "pass", "qa1")
    assert {p.rule_id for p in calibration.current_pairs(built.store)} >= {"greeting.standard", "closing.anything_else"}

    original = qa_rules.default_rulebook_path("zh").read_text(encoding="utf-8")
    # The greeting rule inverted: the machine verdict on this call changes.
    _rescore(built, tmp_path, call_id, original.replace("match: {at_least: 2}\n", "match: {at_least: 2}\n          negate: true\n", 1))
    reviews = {r.rule_id: r for r in _reviews(built.store, call_id)}
    assert reviews["greeting.standard"].stale is True
    assert "machine verdict fail → pass" in reviews["greeting.standard"].stale_reason
    assert not reviews["closing.anything_else"].stale  # same result: still current
    pairs = {(p.rule_id) for p in calibration.current_pairs(built.store)}
    assert "greeting.standard" not in pairs and "closing.anything_else" in pairs

    # A reviewer confirms the new result: current again, the stale row kept beside it.
    queries.save_review(built.store, call_id, "greeting.standard", "pass", "qa2", "re-checked")
    rows = [r for r in _reviews(built.store, call_id) if r.rule_id == "greeting.standard"]
    assert [r.stale for r in rows] == [True, False]
    assert "greeting.standard" in {p.rule_id for p in calibration.current_pairs(built.store)}
