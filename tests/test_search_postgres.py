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
