"""Reading the results store into pandas frames for the coaching library and the reports.

Only finished calls (``status == 'done'``) are read: a failed call has no score, and counting it
would make an agent's mean score depend on the audio pipeline's troubles rather than on the agent.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from pipelines.results.period import Period, call_month
from pipelines.results.store import (  # noqa: F401  (STORE_URL_ENV, StoreNotFoundError: used by notebooks and commands)
    STORE_URL_ENV, CallRow, CategoryResultRow, RuleResultRow, Store, StoreNotFoundError, decode_evidence,
    evidence_dicts, open_existing_store, resolve_store_url, rule_title,
)

log = logging.getLogger(__name__)

CALL_COLUMNS = (
    "call_id", "source", "agent_id", "team", "started_at", "duration_s", "language", "score", "max_score",
    "percent", "passed", "fatal", "hold_s", "silence_share", "agent_talk_ratio", "conversation_path", "scorecard_path",
)


def open_store(store_url: str | None = None, store_dir: str | Path | None = None) -> Store:
    """Open an existing store (never creates an empty one by mistake for a mistyped folder)."""
    return open_existing_store(store_url, store_dir)


def load_calls(store: Store, period: Period | None = None, agent: str | None = None, team: str | None = None) -> pd.DataFrame:
    """Finished calls with their scores and measures, plus ``date`` and ``month`` columns."""
    columns = [getattr(CallRow, name) for name in CALL_COLUMNS]
    query = select(*columns).where(CallRow.status == "done")
    if agent:
        query = query.where(CallRow.agent_id == agent)
    if team:
        query = query.where(CallRow.team == team)
    with store.engine.connect() as connection:
        frame = pd.read_sql(query.order_by(CallRow.call_id), connection)
    if period is not None:
        frame = frame[frame["started_at"].map(period.contains)]
    frame = frame.copy()
    frame["passed"] = frame["passed"].astype("boolean")
    frame["fatal"] = frame["fatal"].astype("boolean")
    frame["date"] = frame["started_at"].map(lambda s: s[:10] if isinstance(s, str) else None)
    frame["month"] = frame["started_at"].map(call_month)
    return frame.reset_index(drop=True)


def load_rule_results(store: Store, call_ids: list[str] | None = None) -> pd.DataFrame:
    """Rule results of ``call_ids`` (all finished calls when ``None``) with the rule's ``title``;
    evidence decoded (by the store's one reader) to lists of dicts, for pandas and JSON excerpts."""
    query = select(
        RuleResultRow.call_id, RuleResultRow.rule_id, RuleResultRow.category, RuleResultRow.verdict,
        RuleResultRow.points, RuleResultRow.max_points, RuleResultRow.fatal, RuleResultRow.evidence,
        RuleResultRow.title_zh, RuleResultRow.title_en,
    ).join(CallRow, CallRow.call_id == RuleResultRow.call_id).where(CallRow.status == "done")
    frame = _read(store, query.order_by(RuleResultRow.call_id, RuleResultRow.id), call_ids)
    frame["evidence"] = [evidence_dicts(decode_evidence(text, f"call {call}"))
                         for text, call in zip(frame["evidence"], frame["call_id"])]
    frame["title"] = [rule_title(zh, en) for zh, en in zip(frame.pop("title_zh"), frame.pop("title_en"))]
    frame["fatal"] = frame["fatal"].astype(bool)
    return frame


def load_category_results(store: Store, call_ids: list[str] | None = None) -> pd.DataFrame:
    """Category verdicts (``call_id``, ``category``, ``verdict``) of ``call_ids`` (all finished calls
    when ``None``), as the scorecards gave them: the reports count these, never their own rule."""
    query = select(CategoryResultRow.call_id, CategoryResultRow.category, CategoryResultRow.verdict).join(
        CallRow, CallRow.call_id == CategoryResultRow.call_id
    ).where(CallRow.status == "done")
    return _read(store, query.order_by(CategoryResultRow.call_id, CategoryResultRow.id), call_ids)


def _read(store: Store, query, call_ids: list[str] | None) -> pd.DataFrame:
    with store.engine.connect() as connection:
        frame = pd.read_sql(query, connection)
    if call_ids is not None:
        frame = frame[frame["call_id"].isin(set(call_ids))]
    return frame.reset_index(drop=True).copy()


def load_flags(store: Store, period: Period | None = None) -> pd.DataFrame:
    """Flags raised on finished calls (fatal failures, review requests) with the call's agent/team/date."""
    from pipelines.results.store import FlagRow

    query = select(
        FlagRow.call_id, FlagRow.reason, FlagRow.rule_id, CallRow.agent_id, CallRow.team, CallRow.started_at, CallRow.percent,
    ).join(CallRow, CallRow.call_id == FlagRow.call_id).where(CallRow.status == "done")
    with store.engine.connect() as connection:
        frame = pd.read_sql(query.order_by(FlagRow.call_id, FlagRow.id), connection)
    if period is not None:
        frame = frame[frame["started_at"].map(period.contains)]
    return frame.reset_index(drop=True)
