"""Reading the results store into pandas frames for the coaching library and the reports.

Only finished calls (``status == 'done'``) are read: a failed call has no score, and counting it
would make an agent's mean score depend on the audio pipeline's troubles rather than on the agent.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pandas as pd
from sqlalchemy import select

from pipelines.results.period import Period, call_month
from pipelines.results.store import (  # noqa: F401  (STORE_URL_ENV, StoreNotFoundError: used by notebooks and commands)
    STORE_URL_ENV, CallRow, RuleResultRow, Store, StoreNotFoundError, open_existing_store, resolve_store_url,
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
    """Rule results (evidence decoded to lists) of ``call_ids`` (all finished calls when ``None``)."""
    query = select(
        RuleResultRow.call_id, RuleResultRow.rule_id, RuleResultRow.category, RuleResultRow.verdict,
        RuleResultRow.points, RuleResultRow.max_points, RuleResultRow.fatal, RuleResultRow.evidence,
    ).join(CallRow, CallRow.call_id == RuleResultRow.call_id).where(CallRow.status == "done")
    with store.engine.connect() as connection:
        frame = pd.read_sql(query.order_by(RuleResultRow.call_id, RuleResultRow.id), connection)
    if call_ids is not None:
        frame = frame[frame["call_id"].isin(set(call_ids))]
    frame = frame.copy()
    frame["evidence"] = frame["evidence"].map(_decode_evidence)
    frame["fatal"] = frame["fatal"].astype(bool)
    return frame.reset_index(drop=True)


def _decode_evidence(text: str | None) -> list[dict]:
    if not text:
        return []
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        log.warning("unreadable evidence in the store (kept as no evidence): %.80s", text)
        return []
    return value if isinstance(value, list) else []


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
