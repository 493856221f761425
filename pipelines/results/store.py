"""The results store: calls (with their metadata), utterances, rule results, flags and human
reviews, in SQLAlchemy — a SQLite file by default, PostgreSQL by URL.

Writes are transactional per call: a call's rows are replaced together or not at all.  Human
reviews are never touched by re-processing or re-scoring.  Claiming a call is an atomic
compare-and-swap on its row, so several workers sharing one store never process a call twice, and
a call left "processing" by a worker that died is taken over.

The scorecard is stored typed: rule results with their titles and categories, the category verdicts
(``category_results``), the situations (``situation_results``) and flags, so the console, the batch
summary and the reports read the store and never a ``scorecard.json`` file.  The schema is owned by
the Alembic migrations in ``pipelines/results/migrations``; opening a store upgrades it in place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass, replace
from operator import itemgetter
from pathlib import Path

from pydantic import TypeAdapter, ValidationError
from sqlalchemy import (
    Boolean, Float, ForeignKey, Integer, String, Text, bindparam, create_engine, delete, event, insert, or_, select, text, update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DatabaseError, OperationalError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from qa_rules.records import CallSource, Conversation, EvidenceItem, Measures, Scorecard, evidence_dicts, hold_seconds

log = logging.getLogger(__name__)

STALE_CLAIM_S = 6 * 3600.0
"""A claim by another host older than this is taken over (a crashed GPU worker)."""


class Base(DeclarativeBase):
    pass


class CallRow(Base):
    __tablename__ = "calls"
    call_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    source: Mapped[str] = mapped_column(Text)
    source_root: Mapped[str | None] = mapped_column(Text)
    """The recording folder the run was given for this call; the console serves audio only from
    inside it (a symlink in a calls folder pointing elsewhere is refused)."""
    agent_id: Mapped[str | None] = mapped_column(String(100), index=True)
    team: Mapped[str | None] = mapped_column(String(100), index=True)
    started_at: Mapped[str | None] = mapped_column(String(40), index=True)
    direction: Mapped[str | None] = mapped_column(String(20))
    channel_map: Mapped[str | None] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), default="pending", index=True)
    """pending → processing → done | failed."""
    error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[float | None] = mapped_column(Float)
    claims: Mapped[int] = mapped_column(Integer, default=0)
    """How many times a worker took the call: an audit that no call is processed twice."""
    processed_by: Mapped[str | None] = mapped_column(String(200))
    processed_at: Mapped[float | None] = mapped_column(Float)
    input_key: Mapped[str | None] = mapped_column(String(80))
    """The audio file and analysis settings the result was made from."""
    rulebook_key: Mapped[str | None] = mapped_column(String(80))
    """The content of the rulebook(s) the call was scored with."""
    duration_s: Mapped[float | None] = mapped_column(Float)
    language: Mapped[str | None] = mapped_column(String(10))
    rulebook_id: Mapped[str | None] = mapped_column(String(100))
    rulebook_version: Mapped[str | None] = mapped_column(String(40))
    score: Mapped[float | None] = mapped_column(Float)
    max_score: Mapped[float | None] = mapped_column(Float)
    percent: Mapped[float | None] = mapped_column(Float, index=True)
    passed: Mapped[bool | None] = mapped_column(Boolean)
    fatal: Mapped[bool | None] = mapped_column(Boolean)
    hold_s: Mapped[float | None] = mapped_column(Float)
    silence_share: Mapped[float | None] = mapped_column(Float)
    agent_talk_ratio: Mapped[float | None] = mapped_column(Float)
    conversation_path: Mapped[str | None] = mapped_column(Text)
    scorecard_path: Mapped[str | None] = mapped_column(Text)
    rows_digest: Mapped[str | None] = mapped_column(Text)
    """A digest per table of the result rows the call's last save wrote (:func:`rows_digest`);
    ``None`` for a call saved before the store kept one."""


class _OfACall:
    """A row that belongs to one call: its own id, and the call's id (indexed: every reader asks by call)."""

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.call_id"), index=True)


class UtteranceRow(_OfACall, Base):
    __tablename__ = "utterances"
    idx: Mapped[int] = mapped_column(Integer)
    speaker: Mapped[str] = mapped_column(String(50))
    role: Mapped[str] = mapped_column(String(20))
    start: Mapped[float] = mapped_column(Float)
    end: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)


class RuleResultRow(_OfACall, Base):
    __tablename__ = "rule_results"
    rule_id: Mapped[str] = mapped_column(String(100), index=True)
    category: Mapped[str] = mapped_column(String(40), index=True)
    verdict: Mapped[str] = mapped_column(String(10))
    points: Mapped[float] = mapped_column(Float)
    max_points: Mapped[float] = mapped_column(Float)
    fatal: Mapped[bool] = mapped_column(Boolean, default=False)
    evidence: Mapped[str] = mapped_column(Text, default="[]")
    """JSON list of {start, end, speaker, text, measured, expected}: :func:`evidence_json`,
    read back with :attr:`evidence_items`."""
    title_zh: Mapped[str | None] = mapped_column(Text)
    title_en: Mapped[str | None] = mapped_column(Text)
    """The rule's title as the rulebook gave it (empty for calls stored before titles were, whose
    scorecard file was gone when the store was upgraded)."""

    @property
    def title(self) -> str:
        return rule_title(self.title_zh, self.title_en)

    @property
    def evidence_items(self) -> list[EvidenceItem]:
        return decode_evidence(self.evidence, f"call {self.call_id} rule {self.rule_id}")


class CategoryResultRow(_OfACall, Base):
    """A category's verdict on a call, as the scorecard gave it (:func:`qa_rules.records.category_verdict`)."""

    __tablename__ = "category_results"
    category: Mapped[str] = mapped_column(String(40), index=True)
    verdict: Mapped[str] = mapped_column(String(10))


class SituationResultRow(_OfACall, Base):
    """A situation of the rulebook checked on a call (silent caller, transfer…) and whether it occurred."""

    __tablename__ = "situation_results"
    situation_id: Mapped[str] = mapped_column(String(100), index=True)
    occurred: Mapped[bool] = mapped_column(Boolean)


class FlagRow(_OfACall, Base):
    __tablename__ = "flags"
    reason: Mapped[str] = mapped_column(Text)
    rule_id: Mapped[str | None] = mapped_column(String(100))


class ReviewRow(_OfACall, Base):
    """A human verdict beside (never over) the machine verdict."""

    __tablename__ = "reviews"
    rule_id: Mapped[str] = mapped_column(String(100), index=True)
    machine_verdict: Mapped[str] = mapped_column(String(10))
    human_verdict: Mapped[str] = mapped_column(String(10))
    reviewer: Mapped[str] = mapped_column(String(100))
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[float] = mapped_column(Float)
    result_key: Mapped[str | None] = mapped_column(String(40))
    """The machine result (verdict and evidence) the reviewer saw: :func:`result_key`."""
    stale: Mapped[bool | None] = mapped_column(Boolean)
    """Set when the call was re-scored and the rule's verdict or evidence changed: the human ruling
    was about another result, so it is left out of calibration until a reviewer confirms again."""
    stale_reason: Mapped[str | None] = mapped_column(Text)


class AssignmentRow(_OfACall, Base):
    """One call drawn for human review by a sampling plan, why, and for whom."""

    __tablename__ = "assignments"
    plan_id: Mapped[str] = mapped_column(String(100))
    period: Mapped[str] = mapped_column(String(40), index=True)
    reason: Mapped[str] = mapped_column(String(20), index=True)
    """``random`` (the unbiased sample), ``flagged`` or ``fatal``."""
    stratum: Mapped[str | None] = mapped_column(String(100))
    assignee: Mapped[str | None] = mapped_column(String(100), index=True)
    created_at: Mapped[float] = mapped_column(Float)


def rule_title(zh: str | None, en: str | None) -> str:
    """A rule's two titles as the console and the reports show them: Chinese first."""
    return " / ".join(t for t in (zh, en) if isinstance(t, str) and t)


_EVIDENCE = TypeAdapter(list[EvidenceItem])


def evidence_json(items: list[EvidenceItem]) -> str:
    """Evidence as the store keeps it.  The text is what :func:`result_key` fingerprints, so it must
    stay byte-for-byte what earlier versions wrote for the same evidence (a review would otherwise
    turn stale on an upgrade): ``json.dumps(..., ensure_ascii=False)``, through one encoder with
    exactly those settings instead of a new one per rule (41 rules a call, half without evidence)."""
    return _EVIDENCE_ENCODER.encode(evidence_dicts(items)) if items else "[]"


_EVIDENCE_ENCODER = json.JSONEncoder(ensure_ascii=False)


def decode_evidence(value: str | None, where: str = "") -> list[EvidenceItem]:
    """The one reader of stored evidence JSON: typed items, or none (with a warning) when a row
    holds something else — a reader never fails on one bad row."""
    try:
        return _EVIDENCE.validate_json(value or "[]")
    except ValidationError:
        log.warning("%s: evidence in the store is unreadable (kept as no evidence): %.80s", where or "store", value)
        return []


def result_key(verdict: str, evidence_json: str) -> str:
    """A short fingerprint of a machine result, to tell whether a review still refers to it."""
    return hashlib.sha1(f"{verdict}\n{evidence_json}".encode("utf-8")).hexdigest()


TABLES = {
    "calls": CallRow, "utterances": UtteranceRow, "rule_results": RuleResultRow, "flags": FlagRow, "reviews": ReviewRow,
    "category_results": CategoryResultRow, "situation_results": SituationResultRow,
}
"""The tables :meth:`Store.export` writes and :meth:`Store.count` counts."""
CALL_RESULT_TABLES = (UtteranceRow, RuleResultRow, FlagRow, CategoryResultRow, SituationResultRow)
"""What scoring a call writes: replaced together by :meth:`Store.save`."""
MIGRATIONS = Path(__file__).resolve().with_name("migrations")
_UPGRADE_LOCK = threading.Lock()
PG_MIGRATION_LOCK = 0x63616C6C71  # "callq": the advisory lock PostgreSQL workers take to upgrade one at a time


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def default_store_url(out_dir: Path) -> str:
    return f"sqlite:///{(Path(out_dir) / 'callqa.db').resolve()}"


STORE_URL_ENV = "CALLQA_STORE_URL"
"""Where the readers of the store (console, reports, notebooks) look when no location is given."""


class StoreNotFoundError(FileNotFoundError):
    """No results store where the user pointed; the message says how to point at one."""


def resolve_store_url(store_url: str | None = None, store_dir: str | Path | None = None) -> str:
    """An existing store: ``--store`` URL, else ``--store-dir`` (a `callqa run` output folder), else
    ``$CALLQA_STORE_URL``, else ``./out``.  A SQLite file that is not there is an error, so a mistyped
    folder never silently opens an empty new store."""
    if store_url:
        url = store_url
    elif store_dir:
        url = default_store_url(Path(store_dir))
    else:
        url = os.environ.get(STORE_URL_ENV) or default_store_url(Path("out"))
    path = sqlite_file(url)
    if path is not None:
        if not path.is_file():
            raise StoreNotFoundError(
                f"no results store at {path} — run `callqa run` first, or give its output folder with "
                f"--store-dir, a URL with --store, or set {STORE_URL_ENV}"
            )
    return url


def open_existing_store(store_url: str | None = None, store_dir: str | Path | None = None) -> "Store":
    return Store(resolve_store_url(store_url, store_dir))


def upgrade_schema(engine: Engine, revision: str = "head") -> None:
    """Bring the store's schema to ``revision`` with the packaged Alembic migrations, and build the
    transcript search index — one transaction under a lock, so that workers opening a fresh store
    together take turns instead of racing to create the same tables (PostgreSQL: an advisory lock;
    SQLite: the database's write lock, taken up front with ``BEGIN IMMEDIATE``).  Whoever comes
    second finds the store upgraded and does nothing."""
    from alembic import command
    from alembic.config import Config

    from pipelines.results.search import ensure_index

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with _UPGRADE_LOCK, engine.connect() as connection:  # Alembic's op/context proxies are process-global
        _lock_for_upgrade(connection)
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        if revision == "head" and connection.dialect.name in ("sqlite", "postgresql"):
            ensure_index(connection)
        connection.commit()


def head_revision() -> str:
    """The newest packaged migration: they are numbered ``NNNN_name.py``, revision ``NNNN``, each
    following the one before (``tests/test_store_migrations.py`` holds Alembic to that)."""
    return max(path.name[:4] for path in (MIGRATIONS / "versions").glob("[0-9][0-9][0-9][0-9]_*.py"))


def schema_is_current(engine: Engine) -> bool:
    """Whether the store is at the newest migration and has its search index: opening it then
    needs neither Alembic (≈ 0.7 s to import and run, on every command that opens a store) nor the
    upgrade's lock.  Anything else — a new file, an older store, a store being upgraded right now
    by another worker (its transaction not yet committed) — takes :func:`upgrade_schema`."""
    from pipelines.results.search import index_exists

    try:
        with engine.connect() as connection:
            versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
            return versions == [head_revision()] and index_exists(connection)
    except (OperationalError, ProgrammingError):  # no alembic_version table: a store never upgraded
        return False


def _lock_for_upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": PG_MIGRATION_LOCK})
    elif connection.dialect.name == "sqlite":
        connection.exec_driver_sql("BEGIN IMMEDIATE")


SQLITE_DAMAGE = ("file is not a database", "database disk image is malformed")
"""SQLite's words for a store file that is damaged (a disk fault, a copy cut short) or not SQLite."""


class StoreDamagedError(RuntimeError):
    """The results store's file cannot be read as a database; the message says what to do."""


def damaged_sqlite(exc: BaseException) -> str | None:
    """SQLite's own words when ``exc`` (or what it wraps) says the store's file is damaged, else ``None``."""
    from qa_rules.files import exception_chain

    for item in exception_chain(exc):
        if type(item).__module__.startswith("sqlite3") and any(words in str(item) for words in SQLITE_DAMAGE):
            return str(item)
    return None


DAMAGED_STORE_FIX = ("move that file aside (keep it for a look) and run again: a new store is made, and calls "
                     "analysed before are scored again from the analysis cache, their audio not transcribed again")


class Store:
    def __init__(self, url: str):
        self.url = url
        self.engine: Engine = _make_engine(url)
        try:
            self._open()
        except DatabaseError as exc:
            damage = damaged_sqlite(exc)
            if damage is None:
                raise
            raise StoreDamagedError(f"the results store {display_url(url)} is damaged or not a callqa store "
                                    f"({damage}) — {DAMAGED_STORE_FIX}") from exc

    def _open(self) -> None:
        if schema_is_current(self.engine):
            return
        for attempt in range(3):  # a SQLite store busy past its 60 s timeout: try again
            try:
                upgrade_schema(self.engine)
                break
            except OperationalError:
                if attempt == 2:
                    raise
                time.sleep(0.5)

    # ------------------------------------------------------------------ calls
    def register(self, calls: list[CallSource]) -> None:
        """Add unknown calls as pending (insert-or-ignore: workers may register the same batch at
        once) and refresh the metadata of known ones — one statement per kind of row, executed for
        every call at once (two round trips per call were most of a big batch's start)."""
        if self.engine.dialect.name == "postgresql":
            from sqlalchemy.dialects.postgresql import insert
        else:
            from sqlalchemy.dialects.sqlite import insert
        new = [{"call_id": call.call_id, **_where_from(call), "status": "pending", "claims": 0, **call.metadata()}
               for call in calls]
        columns = dict.fromkeys(key for values in new for key in values)  # one INSERT: the same columns
        new = [{**dict.fromkeys(columns), **values} for values in new]  # for all (a NULL where one has none)
        refreshed: dict[tuple[str, ...], list[dict]] = {}  # only the metadata a call has: by its keys
        for call in calls:
            values = {**_where_from(call), **call.metadata()}
            refreshed.setdefault(tuple(values), []).append({"_call_id": call.call_id, **values})
        with self.engine.begin() as connection:
            if new:
                connection.execute(insert(CallRow).on_conflict_do_nothing(index_elements=["call_id"]), new)
            for group in refreshed.values():
                connection.execute(update(CallRow).where(CallRow.call_id == bindparam("_call_id")), group)

    def claim(self, call_id: str, worker: str, input_key: str, rulebook_key: str, force: bool = False) -> bool:
        """Take a call for processing; ``False`` when it is finished with the same inputs or another
        live worker holds it.

        One UPDATE whose WHERE says "wanted and not held" takes the usual call (pending, failed, or
        finished with other inputs) in one round trip.  Only a call some worker holds ("processing")
        needs a look at its row first: whether that worker is alive is a question for this host's
        process table (:func:`_claim_is_dead`), not for SQL."""
        claim = {"_call_id": call_id, "_worker": worker, "_at": time.time(), "_input_key": input_key,
                 "_rulebook_key": rulebook_key}
        with self.engine.begin() as connection:
            if connection.execute(_CLAIM.take_forced if force else _CLAIM.take_wanted, claim).rowcount:
                return True
            row = connection.execute(_CLAIM.held, claim).first()
            if row is None or not _wants_processing(row, input_key, rulebook_key, force):
                return False
            taken = connection.execute(_CLAIM.take_over if row.claimed_by is not None else _CLAIM.take_over_unnamed,
                                       {**claim, "_seen_claim": row.claimed_by})
            return taken.rowcount == 1

    def wants_processing(self, call_id: str, input_key: str, rulebook_key: str, force: bool = False) -> bool:
        """Whether :meth:`claim` would take the call now (it is known, not finished with these inputs,
        not held by a live worker) — without taking it."""
        with Session(self.engine) as session:
            row = session.get(CallRow, call_id)
            return row is not None and _wants_processing(row, input_key, rulebook_key, force)

    def wanted(self, inputs: dict[str, str], rulebook_key: str, force: bool = False) -> set[str]:
        """The calls of ``inputs`` (call id → input key) that :meth:`wants_processing` would say yes
        to, read in a few queries instead of one per call."""
        ids, found = list(inputs), set()
        with self.engine.connect() as connection:
            for start in range(0, len(ids), 500):  # bound the IN list (SQLite limits parameters)
                query = select(CallRow).where(CallRow.call_id.in_(ids[start:start + 500]))
                found |= {row.call_id for row in connection.execute(query)
                          if _wants_processing(row, inputs[row.call_id], rulebook_key, force)}
        return found

    def release(self, call_id: str) -> None:
        """Give a claimed call back (pending) when the worker, not the call, is at fault."""
        with Session(self.engine) as session, session.begin():
            session.execute(
                update(CallRow).where(CallRow.call_id == call_id, CallRow.status == "processing")
                .values(status="pending", claimed_by=None)
            )

    def mark_failed(self, call_id: str, worker: str, reason: str) -> None:
        with Session(self.engine) as session, session.begin():
            session.execute(
                update(CallRow).where(CallRow.call_id == call_id)
                .values(status="failed", error=reason, processed_by=worker, processed_at=time.time(), claimed_by=None)
            )

    def save(self, call_id: str, worker: str, input_key: str, rulebook_key: str, conversation: Conversation,
             measures: Measures, card: Scorecard, conversation_path: Path | None = None,
             scorecard_path: Path | None = None, redact: bool = False) -> None:
        """Replace the call's utterances, rule results, category verdicts, situations and flags and
        mark it done — one transaction.  With ``redact`` the stored texts carry placeholders
        instead of personal numbers."""
        self.save_rows(scored_rows(call_id, conversation, measures, card, conversation_path, scorecard_path, redact),
                       worker, input_key, rulebook_key)

    def save_rows(self, scored: "ScoredRows", worker: str, input_key: str, rulebook_key: str) -> None:
        """:meth:`save` of rows built beforehand (:func:`scored_rows`, e.g. in a scoring process).

        Utterances the store already holds exactly as given (a re-score after a rulebook change) are
        kept with their search-index rows: re-indexing them (jieba + pinyin) was most of a re-score's
        store time, and kept rows keep their ids.  What the store holds is known from the digest the
        call's last save left (``calls.rows_digest``), one value read instead of ~90 rows: 0.47 →
        0.18 ms a call re-scored; a call without one has its rows compared."""
        call_id = scored.call_id
        call_row = {"_call_id": call_id, **_done_values(worker, input_key, rulebook_key), **scored.call,
                    "rows_digest": scored.digest}
        with self.engine.begin() as connection:
            # the call's row first: its write takes SQLite's write lock or the row's lock in
            # PostgreSQL, so no other save of this call can change the rows compared below before
            # this transaction ends.  It is written only if its digest is still the one read: a
            # digest changed in between (or none) is no digest, and the rows are compared instead.
            seen = connection.execute(_SAVE.stored_digest, {"_call_id": call_id}).scalar()
            if seen is None or connection.execute(_SAVE.mark_done_if, {**call_row, "_seen": seen}).rowcount != 1:
                connection.execute(_SAVE.mark_done, call_row)
                seen = None
            stored = _digest_parts(seen)
            new = _digest_parts(scored.digest)

            def unchanged(table: type, rows: list[dict]) -> bool:
                if stored is not None and new is not None:
                    return stored[table] == new[table]
                return _stored_rows(connection, table, call_id) == _row_keys(table, rows)

            keep_utterances = unchanged(UtteranceRow, scored.utterances)
            kept: set[type] = set()
            for table, values in scored.tables():
                # on a re-score of the same conversation (a rulebook edit), a table whose rows are
                # already stored exactly so is left alone: rewriting 41 rule results touched ~280
                # index pages a call, and SQLite's commit of them cost more than scoring the call.
                # (A new or changed conversation is written whole, without comparing.)
                if keep_utterances and (table is UtteranceRow or unchanged(table, values)):
                    kept.add(table)
                    continue
                connection.execute(_SAVE.delete[table], {"_call_id": call_id})
                if values:  # plain multi-row INSERTs (no ORM unit of work: these rows are never read back here)
                    connection.execute(_SAVE.insert[table], values)
            if RuleResultRow not in kept:
                # rule results as stored were already checked against every review open at the
                # last save, and a review made since was made against them: only new results can
                # leave a review behind
                _mark_stale_reviews(connection, call_id, scored.results)
            if not keep_utterances:
                from pipelines.results.search import index_call

                index_call(connection, call_id)

    def calls(self, status: str | None = None) -> list[CallRow]:
        with Session(self.engine) as session:
            query = select(CallRow).order_by(CallRow.call_id)
            if status:
                query = query.where(CallRow.status == status)
            return list(session.scalars(query))

    def count(self, table: str, call_id: str | None = None) -> int:
        from sqlalchemy import func

        model = TABLES[table]
        with Session(self.engine) as session:
            query = select(func.count()).select_from(model)
            if call_id is not None:
                query = query.where(model.call_id == call_id)
            return int(session.scalar(query))

    # ------------------------------------------------------------------ export
    def export(self, out_dir: Path, formats: tuple[str, ...] = ("parquet", "csv"), redact: bool = True) -> list[Path]:
        """Every table as Parquet and/or CSV.  With ``redact`` (the default: what leaves the system
        carries no personal number) transcript lines, evidence quotes, flag reasons and review notes
        have phone, ID and card numbers and e-mail addresses replaced by placeholders."""
        import pandas as pd

        from qa_rules.files import make_private_dir
        from pipelines.reports.spreadsheet import safe_frame

        make_private_dir(out_dir)
        written = []
        with self.engine.connect() as connection:
            for name in TABLES:
                frame = pd.read_sql_table(name, connection)
                if redact:
                    frame = _redacted(name, frame, connection)
                if "parquet" in formats:
                    path = out_dir / f"{name}.parquet"
                    frame.to_parquet(path, index=False)
                    written.append(path)
                if "csv" in formats:
                    path = out_dir / f"{name}.csv"
                    safe_frame(frame).to_csv(path, index=False, encoding="utf-8-sig")
                    written.append(path)
        return written


REDACTED_COLUMNS = {"utterances": ("text",), "rule_results": ("evidence",), "flags": ("reason",), "reviews": ("note",)}


def _redacted_results(conversation: Conversation, card: Scorecard) -> tuple[Conversation, Scorecard]:
    """The call's texts as a redacting store keeps them: transcript lines, every string of the
    evidence and flag reasons with personal numbers replaced (the scorecard file keeps them)."""
    from pipelines.results.redaction import redact_json_text, redact_text

    language = conversation.language or "zh"
    conversation = conversation.model_copy(update={"utterances": [
        u.model_copy(update={"text": redact_text(u.text, language)}) for u in conversation.utterances
    ]})
    rules = [
        r.model_copy(update={"evidence": _EVIDENCE.validate_python(
            redact_json_text(evidence_dicts(r.evidence), language)
        )})
        for r in card.rules
    ]
    flags = [f.model_copy(update={"reason": redact_text(f.reason, language)}) for f in card.flags]
    return conversation, card.model_copy(update={"rules": rules, "flags": flags})


def _redacted(table: str, frame, connection):
    """The table's free-text columns with personal numbers replaced, in each call's language."""
    from pipelines.results.redaction import redact_json_text, redact_text

    def evidence(value: str, language: str) -> str:  # quotes only: times and speakers stay
        items = decode_evidence(value, "export")
        return evidence_json([
            replace(item, **{k: redact_json_text(v, language) for k in ("text", "measured", "expected")
                             if isinstance(v := getattr(item, k), str)})
            for item in items
        ])

    columns = [c for c in REDACTED_COLUMNS.get(table, ()) if c in frame.columns]
    if not columns or frame.empty:
        return frame
    languages = dict(connection.execute(select(CallRow.call_id, CallRow.language)).all())
    frame = frame.copy()
    for column in columns:
        redact = evidence if column == "evidence" else redact_text
        frame[column] = [
            redact(value, languages.get(call) or "zh") if isinstance(value, str) else value
            for value, call in zip(frame[column], frame["call_id"])
        ]
    return frame


class _SaveStatements:
    """The statements :meth:`Store.save` runs for every call, built once with their parameters
    bound at execution (``_call_id``; an UPDATE's SET is the columns it is given): building and
    coercing a fresh statement per call cost more than SQLite took to run it."""

    def __init__(self) -> None:
        call = bindparam("_call_id")
        self.mark_done = update(CallRow).where(CallRow.call_id == call)
        self.mark_done_if = update(CallRow).where(CallRow.call_id == call, CallRow.rows_digest == bindparam("_seen"))
        self.stored_digest = select(CallRow.rows_digest).where(CallRow.call_id == call)
        self.delete = {table: delete(table).where(table.call_id == call) for table in CALL_RESULT_TABLES}
        self.insert = {table: insert(table) for table in CALL_RESULT_TABLES}
        self.stored_rows = {table: select(*(getattr(table, c) for c in columns)).where(table.call_id == call).order_by(table.id)
                            for table, columns in _SAVED_COLUMNS.items()}
        self.open_reviews = (select(ReviewRow.id, ReviewRow.rule_id, ReviewRow.machine_verdict, ReviewRow.result_key)
                             .where(ReviewRow.call_id == call, ReviewRow.stale.isnot(True)))
        self.mark_stale = update(ReviewRow).where(ReviewRow.id == bindparam("_review_id"))


def _utterance_values(call_id: str, conversation: Conversation) -> list[dict]:
    """The call's utterance rows as :meth:`Store.save` inserts them."""
    return [dict(call_id=call_id, idx=i, speaker=u.speaker, role=u.role, start=u.start, end=u.end, text=u.text)
            for i, u in enumerate(conversation.utterances)]


_SAVED_COLUMNS = {
    UtteranceRow: ("idx", "speaker", "role", "start", "end", "text"),
    RuleResultRow: ("rule_id", "category", "verdict", "points", "max_points", "fatal", "evidence", "title_zh", "title_en"),
    CategoryResultRow: ("category", "verdict"),
    SituationResultRow: ("situation_id", "occurred"),
    FlagRow: ("reason", "rule_id"),
}
"""Per table of a call's results, the columns :meth:`Store.save` writes (every column but the row's
id and call), which it compares with what is stored before writing them again."""
_SAVE = _SaveStatements()
_ROW_KEY = {table: itemgetter(*columns) for table, columns in _SAVED_COLUMNS.items()}
"""Per table, the function from a row's values to its tuple of :data:`_SAVED_COLUMNS` (every table
has two columns or more, so ``itemgetter`` gives a tuple, as the stored rows are read)."""
assert all(len(columns) > 1 for columns in _SAVED_COLUMNS.values())


def _row_keys(table: type, values: list[dict]) -> list[tuple]:
    """Rows as :meth:`Store.save` would insert them, as tuples of :data:`_SAVED_COLUMNS`."""
    return list(map(_ROW_KEY[table], values))


def _stored_rows(connection: Connection, table: type, call_id: str) -> list[tuple]:
    """The call's stored rows of one table, in the order they were inserted, as :func:`_row_keys`."""
    # fetched at once (one fetchall, not a fetchone per row: ~90 rows a call on every re-score)
    return [tuple(row) for row in connection.execute(_SAVE.stored_rows[table], {"_call_id": call_id}).fetchall()]


def _rule_result_values(call_id: str, card: Scorecard) -> list[dict]:
    """The card's rule results as :meth:`Store.save` inserts them."""
    return [dict(call_id=call_id, rule_id=r.id, category=r.category, verdict=r.verdict, points=r.points,
                 max_points=r.max_points, fatal=r.fatal, evidence=evidence_json(r.evidence), title_zh=r.title.get("zh"),
                 title_en=r.title.get("en")) for r in card.rules]


def _done_values(worker: str, input_key: str, rulebook_key: str) -> dict:
    """The call row's values that say who finished it, when, and from what."""
    return dict(status="done", error=None, claimed_by=None, processed_by=worker, processed_at=time.time(),
                input_key=input_key, rulebook_key=rulebook_key)


_DIGESTED = (UtteranceRow, RuleResultRow, CategoryResultRow, SituationResultRow, FlagRow)
_DIGEST_FORMAT = "r1"


def rows_digest(tables: list[tuple[type, list[dict]]]) -> str:
    """A short digest (8 bytes, hex) of each result table's rows (in :data:`_DIGESTED` order) as
    :meth:`Store.save_rows` writes and compares them (:data:`_SAVED_COLUMNS`), joined after a format
    mark: equal digests say the stored rows are the ones given, without reading them back."""
    parts = [hashlib.blake2b(repr(_row_keys(table, rows)).encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()
             for table, rows in tables]
    return ":".join([_DIGEST_FORMAT, *parts])


def _digest_parts(digest: str | None) -> dict[type, str] | None:
    """Each table's part of a :func:`rows_digest`, or ``None`` for none or one of another format."""
    parts = digest.split(":") if isinstance(digest, str) else []
    if len(parts) != len(_DIGESTED) + 1 or parts[0] != _DIGEST_FORMAT:
        return None
    return dict(zip(_DIGESTED, parts[1:]))


@dataclass(frozen=True)
class ScoredRows:
    """A scored call as the store writes it: the call row's values from the scoring and each result
    table's rows, as plain values.  Built where the call was scored (:func:`scored_rows`; in a
    scoring process of a re-score), so that what crosses to the process that writes the store is a
    few lists of dicts — cheaper to send than the scorecard, and nothing left to build there."""

    call_id: str
    call: dict
    utterances: list[dict]
    results: list[dict]
    categories: list[dict]
    situations: list[dict]
    flags: list[dict]
    digest: str = ""
    """:func:`rows_digest` of :meth:`tables` (none: the store compares the rows instead)."""

    def tables(self) -> list[tuple[type, list[dict]]]:
        """Each result table with its rows, in :data:`_DIGESTED` order."""
        by_table = {UtteranceRow: self.utterances, RuleResultRow: self.results, CategoryResultRow: self.categories,
                    SituationResultRow: self.situations, FlagRow: self.flags}
        return [(table, by_table[table]) for table in _DIGESTED]


def scored_rows(call_id: str, conversation: Conversation, measures: Measures, card: Scorecard,
                conversation_path: Path | None = None, scorecard_path: Path | None = None,
                redact: bool = False) -> ScoredRows:
    """The rows :meth:`Store.save_rows` writes for a scored call; with ``redact`` the texts carry
    placeholders instead of personal numbers."""
    if redact:
        conversation, card = _redacted_results(conversation, card)
    hold_s = card.measures.get("hold_s")  # counted with the rulebook's hold threshold
    ruled = {r.category for r in card.rules}
    scored = ScoredRows(
        call_id=call_id,
        call=dict(
            duration_s=conversation.duration_s, language=conversation.language,
            rulebook_id=card.rulebook.id, rulebook_version=str(card.rulebook.version),
            score=card.score, max_score=card.max_score, percent=card.percent, passed=card.passed,
            fatal=bool(card.fatal_failures),
            hold_s=hold_s if hold_s is not None else hold_seconds(measures.silences),
            silence_share=measures.silence_share, agent_talk_ratio=measures.agent_talk_ratio,
            conversation_path=str(conversation_path) if conversation_path else None,
            scorecard_path=str(scorecard_path) if scorecard_path else None,
        ),
        utterances=_utterance_values(call_id, conversation),
        results=_rule_result_values(call_id, card),
        # a category the rulebook has no rule in is no result (and was never one in the reports)
        categories=[dict(call_id=call_id, category=c, verdict=v) for c, v in card.categories.items() if c in ruled],
        situations=[dict(call_id=call_id, situation_id=s.id, occurred=s.occurred) for s in card.situations],
        flags=[dict(call_id=call_id, reason=f.reason, rule_id=f.rule_id) for f in card.flags],
    )
    return replace(scored, digest=rows_digest(scored.tables()))


def _mark_stale_reviews(connection: Connection, call_id: str, results: list[dict]) -> None:
    """After a re-score: a review whose rule now has another verdict or other evidence is marked
    stale (never deleted); one whose result is unchanged stays current.  ``results`` are the rule
    result rows just written (a rule listed twice: the last one, as the store reads them back)."""
    by_rule = {r["rule_id"]: r for r in results}
    reviews = connection.execute(_SAVE.open_reviews, {"_call_id": call_id}).all()
    for review in reviews:
        reason = _stale_reason(review.machine_verdict, review.result_key, by_rule.get(review.rule_id))
        if reason is not None:
            connection.execute(_SAVE.mark_stale, {"_review_id": review.id, "stale": True, "stale_reason": reason})


def _stale_reason(machine_verdict: str, reviewed_key: str | None, result: dict | None) -> str | None:
    """Why a review no longer refers to the rule's ``result`` (``None``: it still does)."""
    if result is None:
        return "re-scored: the rule is no longer in the rulebook"
    if result["verdict"] != machine_verdict:
        return f"re-scored: machine verdict {machine_verdict} → {result['verdict']}"
    if reviewed_key is not None and reviewed_key != result_key(result["verdict"], result["evidence"]):
        return "re-scored: same verdict, other evidence"
    return None


def _where_from(call: CallSource) -> dict:
    """Where the call's recording is, as the calls table keeps it."""
    return {"source": str(call.path), "source_root": str(call.root) if call.root else None}


class _ClaimStatements:
    """The statements of :meth:`Store.claim`, built once (parameters bound at execution: a claim is
    made for every call of every run, a finished one included)."""

    def __init__(self) -> None:
        call, take = CallRow.call_id == bindparam("_call_id"), update(CallRow).values(
            status="processing", claimed_by=bindparam("_worker"), claimed_at=bindparam("_at"), claims=CallRow.claims + 1)
        # "not finished with these inputs" (_wants_processing without the claim part) ...
        wanted = or_(CallRow.status != "done", CallRow.input_key.is_distinct_from(bindparam("_input_key")),
                     CallRow.rulebook_key.is_distinct_from(bindparam("_rulebook_key")))
        # ... and "no worker holds it": a claim without a worker or a time is dead (_claim_is_dead)
        unheld = or_(CallRow.status != "processing", CallRow.claimed_by.is_(None), CallRow.claimed_at.is_(None))
        self.take_wanted = take.where(call, wanted, unheld)
        self.take_forced = take.where(call, unheld)
        self.held = select(CallRow.status, CallRow.claimed_by, CallRow.claimed_at, CallRow.input_key,
                           CallRow.rulebook_key).where(call, CallRow.status == "processing")
        """The row of a call some worker holds, to ask whether that worker is alive."""
        self.take_over = take.where(call, CallRow.status == "processing", CallRow.claimed_by == bindparam("_seen_claim"))
        self.take_over_unnamed = take.where(call, CallRow.status == "processing", CallRow.claimed_by.is_(None))
        """Compare-and-swap: taken only if the claim is still the one found dead."""


_CLAIM = _ClaimStatements()


def _wants_processing(row: "CallRow", input_key: str, rulebook_key: str, force: bool) -> bool:
    finished = row.status == "done" and row.input_key == input_key and row.rulebook_key == rulebook_key
    return not ((finished and not force) or (row.status == "processing" and not _claim_is_dead(row)))


def _claim_is_dead(row: CallRow) -> bool:
    """A claim whose worker process is gone (same host) or that is older than STALE_CLAIM_S."""
    if not row.claimed_by or not row.claimed_at:
        return True
    host, _, rest = row.claimed_by.partition(":")
    pid = rest.split(":")[0]
    if host == socket.gethostname() and pid.isdigit():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return _is_zombie(int(pid))
    return time.time() - row.claimed_at > STALE_CLAIM_S


def _is_zombie(pid: int) -> bool:
    """A killed process nobody has reaped yet (a flow run whose worker was killed too, in a
    container whose first process does not reap orphans): it still answers ``kill(pid, 0)``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[:1] == ["Z"]


def _create_private_sqlite(path: Path) -> None:
    """Create the SQLite file owner-only (0600) before SQLite does: it holds every transcript, and
    SQLite gives its -wal and -shm files the database file's permissions."""
    from qa_rules.files import PRIVATE_FILE, make_private_dir

    make_private_dir(path.parent)
    if not path.exists():
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE))


def sqlite_file(url: str) -> Path | None:
    """The database file of a SQLite store URL, parsed by SQLAlchemy (``sqlite:///rel.db``,
    ``sqlite:////abs/x.db?timeout=5`` → ``/abs/x.db``); ``None`` for another back-end, an in-memory
    database, or a URL SQLAlchemy cannot parse (``create_engine`` then says what is wrong with it)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def display_url(url: str) -> str:
    """The store URL as it may be printed or logged: any password replaced by ``***``."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "<unparsable store URL>"


def _make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = sqlite_file(url)
        if path is not None:
            _create_private_sqlite(path)
        engine = create_engine(url, connect_args={"timeout": 60})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_connection, _record):  # WAL: readers do not block the writer
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=60000")
            # WAL with NORMAL: no fsync per commit (two per call cost more than scoring it); the
            # database stays consistent on a power cut, which may only undo the last results — those
            # calls are then no longer done and the next run processes them again
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)
