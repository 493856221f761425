"""Transcript search on a PostgreSQL results store (a real server started by the test): the
jieba terms in a tsvector with a GIN index, the same answers as on SQLite."""

from __future__ import annotations

import pytest

from qa_rules.records import Conversation, Measures
from pipelines.stages.scoring import score_and_report
from pipelines.results.search import search
from pipelines.results.store import Store
from qa_rules.records import CallSource
from store_fixtures import FIXTURES, SAMPLE_CALLS, build_store
from tests.pg_server import postgres_server


@pytest.fixture(scope="module")
def stores(tmp_path_factory):
    sqlite = build_store(tmp_path_factory.mktemp("sqlite"))
    out = tmp_path_factory.mktemp("pg_out")
    with postgres_server() as url:
        store = Store(url)
        for path in sorted(FIXTURES.glob("*.conversation.json")):
            conversation = Conversation.read(path)
            measures = Measures.read(path.with_name(path.name.replace(".conversation.", ".measures.")))
            meta = {k: v for k, v in conversation.metadata.items() if k in ("agent_id", "team", "started_at")}
            store.register([CallSource(call_id=conversation.call_id, path=SAMPLE_CALLS / path.name, **meta)])
            store.save(conversation.call_id, "t", "t", "t", conversation, measures, score_and_report(conversation, measures, out))
        yield sqlite.store, store
        store.engine.dispose()


@pytest.mark.parametrize("query, options", [
    ("久等", {}), ("谢谢", {"role": "customer"}), ("thank you", {}), ("就等", {"by_sound": True}),
    ("您好", {"rule": "greeting.standard", "verdict": "pass"}),
])
def test_postgres_answers_like_sqlite(stores, query, options):
    sqlite, postgres = stores
    assert postgres.engine.dialect.name == "postgresql"
    expected = {(h.call_id, h.idx) for h in search(sqlite.engine, query, **options)}
    got = {(h.call_id, h.idx) for h in search(postgres.engine, query, **options)}
    assert expected and got == expected


def test_a_rescore_keeps_utterance_rows_and_a_changed_call_rewrites_them_on_postgres(stores, tmp_path):
    """Stored floats and texts read back equal on PostgreSQL too, so a rulebook change keeps the rows."""
    from sqlalchemy import text

    _, postgres = stores
    path = FIXTURES / "zh_good_stereo.conversation.json"
    conversation = Conversation.read(path)
    measures = Measures.read(path.with_name(path.name.replace(".conversation.", ".measures.")))
    call_id = conversation.call_id

    def rows():
        with postgres.engine.connect() as conn:
            utterances = conn.execute(text("SELECT id, text FROM utterances WHERE call_id = :c ORDER BY idx"), {"c": call_id}).all()
            indexed = conn.execute(text("SELECT utterance_id FROM utterance_search WHERE call_id = :c ORDER BY 1"), {"c": call_id}).all()
        return [tuple(r) for r in utterances], [r[0] for r in indexed]

    before = rows()
    postgres.save(call_id, "t", "t", "other rulebook", conversation, measures, score_and_report(conversation, measures, tmp_path))
    assert rows() == before and before[0]
    changed = conversation.model_copy(update={"utterances": [
        u.model_copy(update={"text": u.text + "宠物医院"}) for u in conversation.utterances]})
    postgres.save(call_id, "t", "t2", "t", changed, measures, score_and_report(changed, measures, tmp_path))
    utterances, indexed = rows()
    assert {u[0] for u in utterances}.isdisjoint({u[0] for u in before[0]}) and indexed == sorted(u[0] for u in utterances)
    assert {h.call_id for h in search(postgres.engine, "宠物医院")} == {call_id}
    postgres.save(call_id, "t", "t", "t", conversation, measures, score_and_report(conversation, measures, tmp_path))
    assert search(postgres.engine, "宠物医院") == []
