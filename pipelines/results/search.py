"""Transcript search: find every call where someone said something ("every call last week where a
customer said 投诉"), with the time, the speaker and the line.

Chinese has no spaces between words, so utterances are segmented with jieba (search mode, which
also indexes the shorter words inside long ones) and English is split into lower-case words; the
tokens go into SQLite's FTS5 full-text index (PostgreSQL: a ``tsvector`` column with a GIN index).
A second column holds the toneless pinyin of every Chinese character, so that a phrase the
recogniser wrote with homophones (退订 heard as 推定) is found the way the rules find it, by sound.

The index is written by the store together with the call's utterances (one transaction), and built
once from the utterances of a store written before the index existed.
"""

from __future__ import annotations

import logging
import re
from contextlib import nullcontext
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

INDEX_TABLE = "utterance_search"
_CJK = re.compile(r"[\u3400-\u9fff]+")
_WORD = re.compile(r"[\u3400-\u9fff]+|[A-Za-z0-9']+")


@lru_cache(maxsize=1)
def _jieba():
    import logging as _logging

    import jieba

    jieba.setLogLevel(_logging.WARNING)
    return jieba


def _terms(text: str, chinese) -> list[str]:
    """Chinese runs split by ``chinese`` (a function of the run), everything else lower-cased words."""
    out: list[str] = []
    for piece in _WORD.findall(text):
        out += [w for w in chinese(piece) if w.strip()] if _CJK.fullmatch(piece) else [piece.lower()]
    return out


def tokens(utterance_text: str) -> list[str]:
    """Index terms of a text: jieba's search-mode words for Chinese (the shorter words inside long
    ones too), lower-case words for the rest."""
    return _terms(utterance_text, lambda run: _jieba().cut_for_search(run))


def pinyin_terms(utterance_text: str) -> list[str]:
    """Toneless pinyin, one term per Chinese character, plus the English words."""
    from pypinyin import lazy_pinyin

    return _terms(utterance_text, lazy_pinyin)


def query_terms(query: str) -> list[str]:
    """What a query must match, in order: Chinese words as jieba cuts them whole (precise mode, so
    that 退订 stays one word), English words lower-cased."""
    return _terms(query, lambda run: _jieba().cut(run))


@dataclass(frozen=True)
class SearchHit:
    call_id: str
    idx: int
    start: float
    end: float
    speaker: str
    role: str
    text: str
    agent_id: str | None
    team: str | None
    started_at: str | None


_INDEX_DDL: dict[str, tuple[str, ...]] = {
    # the dialect's "is it there?" query, then the statements that create the index
    "sqlite": (
        "SELECT count(*) FROM sqlite_master WHERE name = :n",
        f"CREATE VIRTUAL TABLE {INDEX_TABLE} USING fts5(terms, pinyin, utterance_id UNINDEXED, "
        "call_id UNINDEXED, tokenize = 'unicode61')",
    ),
    "postgresql": (
        "SELECT to_regclass(:n) IS NOT NULL",
        f"CREATE TABLE {INDEX_TABLE} (utterance_id INTEGER PRIMARY KEY, call_id VARCHAR(200), "
        "terms TEXT, pinyin TEXT, terms_tsv tsvector, pinyin_tsv tsvector)",
        f"CREATE INDEX {INDEX_TABLE}_terms ON {INDEX_TABLE} USING GIN (terms_tsv)",
        f"CREATE INDEX {INDEX_TABLE}_pinyin ON {INDEX_TABLE} USING GIN (pinyin_tsv)",
        f"CREATE INDEX {INDEX_TABLE}_call ON {INDEX_TABLE} (call_id)",
    ),
}


def index_exists(conn: Connection) -> bool:
    """Whether the store has the full-text index (only SQLite and PostgreSQL stores can)."""
    if conn.dialect.name not in _INDEX_DDL:
        return False
    return bool(conn.execute(text(_INDEX_DDL[conn.dialect.name][0]), {"n": INDEX_TABLE}).scalar())


def ensure_index(engine: Engine | Connection) -> None:
    """Create the full-text index if the store has none, and fill it from the stored utterances.
    Given a connection, inside its transaction (the store's schema upgrade, which holds the lock
    that keeps two workers from creating the index at once)."""
    with engine.begin() if isinstance(engine, Engine) else nullcontext(engine) as conn:
        if conn.dialect.name not in _INDEX_DDL:
            raise RuntimeError(f"transcript search needs SQLite or PostgreSQL, not {conn.dialect.name}")
        exists_query, *create = _INDEX_DDL[conn.dialect.name]
        if not conn.execute(text(exists_query), {"n": INDEX_TABLE}).scalar():
            for statement in create:
                conn.execute(text(statement))
        indexed = conn.execute(text(f"SELECT count(*) FROM {INDEX_TABLE}")).scalar()
        stored = conn.execute(text("SELECT count(*) FROM utterances")).scalar()
        if stored and not indexed:
            log.info("building the transcript search index over %d utterances", stored)
            rows = conn.execute(text("SELECT id, call_id, text FROM utterances")).all()
            _insert(conn, [(r.id, r.call_id, r.text) for r in rows])


def index_call(conn: Connection, call_id: str) -> None:
    """Re-index one call's utterances (inside the transaction that wrote them)."""
    conn.execute(text(f"DELETE FROM {INDEX_TABLE} WHERE call_id = :c"), {"c": call_id})
    rows = conn.execute(text("SELECT id, call_id, text FROM utterances WHERE call_id = :c"), {"c": call_id}).all()
    _insert(conn, [(r.id, r.call_id, r.text) for r in rows])


def _insert(conn: Connection, rows: list[tuple[int, str, str]]) -> None:
    if not rows:
        return
    values = [{"u": uid, "c": cid, "t": " ".join(tokens(t)), "p": " ".join(pinyin_terms(t))} for uid, cid, t in rows]
    if conn.dialect.name == "postgresql":
        conn.execute(text(
            f"INSERT INTO {INDEX_TABLE} (utterance_id, call_id, terms, pinyin, terms_tsv, pinyin_tsv) "
            "VALUES (:u, :c, :t, :p, to_tsvector('simple', :t), to_tsvector('simple', :p))"
        ), values)
    else:
        conn.execute(text(f"INSERT INTO {INDEX_TABLE} (utterance_id, call_id, terms, pinyin) VALUES (:u, :c, :t, :p)"), values)


def _fts_phrase(terms: list[str]) -> str:
    return '"' + " ".join(t.replace('"', "") for t in terms) + '"'


def search(
    engine: Engine,
    query: str,
    role: str | None = None,
    agent: str | None = None,
    team: str | None = None,
    since: str | None = None,
    until: str | None = None,
    rule: str | None = None,
    verdict: str | None = None,
    by_sound: bool = False,
    limit: int = 200,
) -> list[SearchHit]:
    """Utterances that contain ``query`` (its words in order), newest calls first.

    ``since``/``until`` compare with the calls' ``started_at`` (ISO text: ``2024-06`` or
    ``2024-06-10``; ``until`` is inclusive of that whole day or month); ``rule`` + ``verdict``
    keep calls where that rule got that verdict; ``by_sound`` matches by pinyin (homophones)."""
    terms = pinyin_terms(query) if by_sound else query_terms(query)
    if not terms:
        return []
    ensure_index(engine)
    column = "pinyin" if by_sound else "terms"
    params: dict[str, object] = {"limit": int(limit)}
    if engine.dialect.name == "postgresql":
        match = f"s.{column}_tsv @@ phraseto_tsquery('simple', :q)"
        params["q"] = " ".join(terms)
        source = f"{INDEX_TABLE} s"
    else:
        match = f"{INDEX_TABLE} MATCH :q"
        params["q"] = f"{column} : {_fts_phrase(terms)}"
        source = f"{INDEX_TABLE} s"
    where = [match]
    filters = {  # parameter → condition on the utterance (u) or its call (c)
        "role": ("u.role = :role", role),
        "agent": ("c.agent_id = :agent", agent),
        "team": ("c.team = :team", team),
        "since": ("c.started_at >= :since", since),
        # until is inclusive: everything that starts with the day or month given
        "until_end": ("c.started_at < :until_end", until + "\uffff" if until else None),
    }
    for name, (condition, value) in filters.items():
        if value:
            where.append(condition)
            params[name] = value
    if rule:
        where.append("EXISTS (SELECT 1 FROM rule_results r WHERE r.call_id = c.call_id AND r.rule_id = :rule"
                     + (" AND r.verdict = :verdict" if verdict else "") + ")")
        params["rule"] = rule
        if verdict:
            params["verdict"] = verdict
    elif verdict:
        where.append("EXISTS (SELECT 1 FROM rule_results r WHERE r.call_id = c.call_id AND r.verdict = :verdict)")
        params["verdict"] = verdict
    sql = (
        f"SELECT u.call_id, u.idx, u.start, u.\"end\", u.speaker, u.role, u.text, c.agent_id, c.team, c.started_at "
        f"FROM {source} JOIN utterances u ON u.id = s.utterance_id JOIN calls c ON c.call_id = u.call_id "
        f"WHERE {' AND '.join(where)} ORDER BY c.started_at DESC, u.call_id, u.start LIMIT :limit"
    )
    with engine.connect() as conn:
        rows = conn.execute(text(sql), params).all()
    return [SearchHit(*row) for row in rows]


def period_bounds(period: str) -> tuple[str, str]:
    """``2024-06`` or ``2024-06-01..2024-06-07`` (the reports' period syntax) as since/until for
    :func:`search`; raises :class:`pipelines.results.period.PeriodError` with what is accepted."""
    from pipelines.results.period import parse_period

    chosen = parse_period(period)
    return chosen.first.isoformat(), chosen.last.isoformat()
