"""The results store's schema is owned by the packaged Alembic migrations: a store written by the
version before them (``fixtures/store_v0.sql``, dumped from a store that version wrote) or by an
even earlier one upgrades in place with its data kept, and workers opening a fresh store together
(SQLite and a real PostgreSQL) all succeed."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from pipelines.results.store import (
    CategoryResultRow, ReviewRow, RuleResultRow, SituationResultRow, Store, result_key, upgrade_schema,
)
from qa_rules.records import Conversation, Measures, category_verdict
from store_fixtures import FIXTURES
from tests.pg_server import postgres_server

ROOT = Path(__file__).resolve().parents[1]
OLD_STORE_SQL = Path(__file__).parent / "fixtures" / "store_v0.sql"
CALL = "zh_unannounced_hold"


def _old_store(path: Path) -> str:
    with sqlite3.connect(path) as connection:
        connection.executescript(OLD_STORE_SQL.read_text(encoding="utf-8"))
    return f"sqlite:///{path}"


def _fixture_call() -> tuple[Conversation, Measures]:
    """The call of ``store_v0.sql`` exactly as it was scored there (its first six utterances)."""
    conversation = Conversation.read(FIXTURES / f"{CALL}.conversation.json")
    measures = Measures.read(FIXTURES / f"{CALL}.measures.json")
    return conversation.model_copy(update={"utterances": conversation.utterances[:6]}), measures


def _schema(url: str) -> dict:
    inspector = sa.inspect(sa.create_engine(url))
    return {
        table: {
            "columns": [(c["name"], str(c["type"]), c["nullable"]) for c in inspector.get_columns(table)],
            "indexes": sorted((i["name"], tuple(i["column_names"])) for i in inspector.get_indexes(table)),
            "foreign_keys": [(tuple(f["constrained_columns"]), f["referred_table"]) for f in inspector.get_foreign_keys(table)],
        }
        for table in inspector.get_table_names() if table != "alembic_version"
    }


def test_the_baseline_revision_is_the_schema_the_previous_version_wrote(tmp_path):
    fresh = f"sqlite:///{tmp_path / 'baseline.db'}"
    upgrade_schema(sa.create_engine(fresh), "0001")
    assert _schema(fresh) == _schema(_old_store(tmp_path / "old.db"))


def test_a_store_written_by_the_previous_version_upgrades_in_place(tmp_path):
    from pipelines.reports.summary import SummaryRow, rows_from_store
    from pipelines.results.search import search
    from pipelines.review.queries import call_view
    from pipelines.stages.scoring import score_and_report

    conversation, measures = _fixture_call()
    card = score_and_report(conversation, measures, tmp_path / "out")  # the scorecard file beside the old store
    url = _old_store(tmp_path / "callqa.db")
    with sqlite3.connect(tmp_path / "callqa.db") as connection:
        connection.execute("UPDATE calls SET scorecard_path = ?", (str(tmp_path / "out" / f"{CALL}.scorecard.json"),))
        before = {t: connection.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                  for t in ("calls", "utterances", "rule_results", "flags", "reviews")}

    store = Store(url)

    with sqlite3.connect(tmp_path / "callqa.db") as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [("0003",)]
        after = {t: connection.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall() for t in before}
    for table in ("utterances", "flags", "reviews"):
        assert after[table] == before[table], table
    assert [row[:len(before["calls"][0])] for row in after["calls"]] == before["calls"]  # + rows_digest, empty
    assert all(row[-1] is None for row in after["calls"])
    assert [row[:9] for row in after["rule_results"]] == [row[:9] for row in before["rule_results"]]  # + titles
    with Session(store.engine) as session:
        rules = list(session.scalars(sa.select(RuleResultRow).order_by(RuleResultRow.id)))
        categories = dict(session.execute(sa.select(CategoryResultRow.category, CategoryResultRow.verdict)).all())
        situations = dict(session.execute(sa.select(SituationResultRow.situation_id, SituationResultRow.occurred)).all())
        review = session.scalars(sa.select(ReviewRow)).one()
    # titles and situations from the scorecard file, category verdicts from the stored rule results
    assert {r.rule_id: (r.title_zh, r.title_en) for r in rules} == {r.id: (r.title["zh"], r.title["en"]) for r in card.rules}
    assert categories == {c: v for c, v in card.categories.items() if c in {r.category for r in card.rules}}
    assert categories["hold"] == category_verdict(r.verdict for r in rules if r.category == "hold") == "fail"
    assert situations == {s.id: s.occurred for s in card.situations}
    # the readers: the console shows titles, the summary reads the store, search finds the transcript
    view = call_view(store, CALL)
    assert {r.rule_id: r.title for r in view.rules}["hold.announce_10s"] == "等待超过10秒需提示 / Waits over 10 s are announced"
    assert view.categories == categories
    assert rows_from_store(store, {CALL}) == [SummaryRow.from_scorecard(card)]
    assert [h.call_id for h in search(store.engine, "套餐")] == [CALL, CALL]

    # re-scoring the same call leaves the old review current: the evidence is stored byte for byte as before
    store.save(CALL, "w", "ik", "rk", conversation, measures, card)
    with Session(store.engine) as session:
        review_now = session.get(ReviewRow, review.id)
        result = session.scalars(sa.select(RuleResultRow).where(RuleResultRow.rule_id == review.rule_id)).one()
        assert not review_now.stale and review_now.result_key == result_key(result.verdict, result.evidence)
    assert Store(url).count("category_results", CALL) == len(categories)  # opening again changes nothing


def test_a_store_older_than_the_column_migrations_still_upgrades(tmp_path):
    """Columns added to earlier versions one by one (the review's result fingerprint and staleness,
    the call's recording folder and claim count) are added, empty, to a store that lacks them."""
    url = _old_store(tmp_path / "older.db")
    with sqlite3.connect(tmp_path / "older.db") as connection:
        for table, column in (("reviews", "result_key"), ("reviews", "stale"), ("reviews", "stale_reason"),
                              ("calls", "source_root"), ("calls", "claims")):
            connection.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        connection.execute("DROP TABLE assignments")
    store = Store(url)
    call = store.calls()[0]
    assert call.call_id == CALL and call.claims == 0 and call.source_root is None and call.percent == 68.63
    with Session(store.engine) as session:
        review = session.scalars(sa.select(ReviewRow)).one()
    assert (review.human_verdict, review.result_key, review.stale) == ("pass", None, None)
    assert "assignments" in sa.inspect(store.engine).get_table_names()
    assert store.count("category_results", CALL) > 0


def _open_at_once(url: str, workers: int) -> None:
    """``workers`` processes open the same fresh store at the same moment; every one must succeed."""
    code = "import sys; from pipelines.results.store import Store; Store(sys.argv[1]); print('opened')"
    procs = [subprocess.Popen([sys.executable, "-c", code, url], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(workers)]
    outcomes = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * workers, [err[-2000:] for _, err in outcomes]


def test_workers_opening_a_fresh_sqlite_store_together_all_succeed(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    _open_at_once(url, 3)
    with sqlite3.connect(tmp_path / "shared.db") as connection:
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [("0003",)]


def test_postgres_store_upgrades_in_place_and_fresh_stores_open_concurrently():
    import importlib

    baseline = importlib.import_module("pipelines.results.migrations.versions.0001_baseline").baseline
    with postgres_server() as server:
        old = sa.create_engine(server)
        with old.begin() as connection:  # the previous version's schema, without Alembic's version table
            baseline.create_all(connection)
            connection.execute(sa.text("INSERT INTO calls (call_id, source, status, claims) VALUES ('c1', '/c1.wav', 'done', 0)"))
            connection.execute(sa.text(
                "INSERT INTO rule_results (call_id, rule_id, category, verdict, points, max_points, fatal, evidence) "
                "VALUES ('c1', 'greeting.standard', 'greeting', 'fail', 0, 10, false, '[]')"
            ))
        old.dispose()
        store = Store(server)
        assert [c.call_id for c in store.calls()] == ["c1"]
        with Session(store.engine) as session:
            assert session.execute(sa.select(CategoryResultRow.category, CategoryResultRow.verdict)).all() == [("greeting", "fail")]
        store.engine.dispose()

        with sa.create_engine(server, isolation_level="AUTOCOMMIT").connect() as admin:
            admin.execute(sa.text("CREATE DATABASE fresh"))
        fresh = server.rsplit("/", 1)[0] + "/fresh"
        _open_at_once(fresh, 3)
        engine = sa.create_engine(fresh)
        with engine.connect() as connection:
            assert connection.execute(sa.text("SELECT version_num FROM alembic_version")).all() == [("0003",)]
        engine.dispose()


def test_the_models_match_the_migrated_schema(tmp_path):
    """The ORM models and the migrations never drift apart: Alembic's autogenerate finds nothing to
    change between a store upgraded to head and the models."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from pipelines.results.store import Base

    store = Store(f"sqlite:///{tmp_path / 'head.db'}")
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={
            "include_name": lambda name, kind, parent: not (kind == "table" and name.startswith("utterance_search")),
        })
        assert compare_metadata(context, Base.metadata) == []


def test_a_claim_held_by_a_killed_unreaped_process_is_dead():
    """A flow run killed together with its worker is an orphan nobody may reap (a container's first
    process often does not): it still answers kill(pid, 0), yet its calls must be taken over."""
    import signal
    import socket
    import subprocess
    import sys
    import time

    from pipelines.results.store import CallRow, _claim_is_dead

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        row = CallRow(call_id="c1", claimed_by=f"{socket.gethostname()}:{child.pid}:abc", claimed_at=time.time())
        assert not _claim_is_dead(row)  # alive: held
        child.send_signal(signal.SIGKILL)
        deadline = time.time() + 10
        while not _claim_is_dead(row) and time.time() < deadline:  # killed, not reaped: a zombie
            time.sleep(0.05)
        assert _claim_is_dead(row)
    finally:
        child.wait()


def test_the_newest_migration_file_is_alembics_head():
    """Opening a store skips Alembic when the store is at the newest migration file's revision
    (``head_revision``); that shortcut holds only while the files are numbered as Alembic chains them."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from pipelines.results.store import MIGRATIONS, head_revision

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    assert ScriptDirectory.from_config(config).get_heads() == [head_revision()]


def test_an_up_to_date_store_opens_without_alembic_and_an_older_one_is_still_upgraded(tmp_path):
    from pipelines.results.store import schema_is_current

    current = f"sqlite:///{tmp_path / 'current.db'}"
    Store(current)  # created and upgraded: Alembic runs
    assert schema_is_current(sa.create_engine(current))
    code = ("import sys; from pipelines.results.store import Store; Store(sys.argv[1]); "
            "print('ALEMBIC=' + str('alembic' in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code, current], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "ALEMBIC=False" in proc.stdout, proc.stdout + proc.stderr

    older = f"sqlite:///{tmp_path / 'older.db'}"
    upgrade_schema(sa.create_engine(older), "0001")
    assert not schema_is_current(sa.create_engine(older))
    Store(older)
    assert schema_is_current(sa.create_engine(older))
    with sqlite3.connect(tmp_path / "older.db") as connection:
        connection.execute("DROP TABLE utterance_search")  # at head, but its search index gone: rebuilt
    assert not schema_is_current(sa.create_engine(older))
    Store(older)
    assert schema_is_current(sa.create_engine(older))
