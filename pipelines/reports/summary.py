"""The batch summary: one row per call (score, passed, fatal failures, flags), as CSV for
spreadsheets and a short HTML page linking each call's scorecard.  Calls that could not be
processed are listed with their reason, so nothing silently disappears from the night's report."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from qa_rules.files import write_text_privately
from qa_rules.records import Scorecard
from pipelines.reports.html import environment
from pipelines.reports.spreadsheet import safe_row

if TYPE_CHECKING:
    from pipelines.results.store import Store

LISTED_PROBLEMS = 20
"""Calls that could not be processed, listed one by one on the console and in the Prefect summary;
past that they are counted, and every call's reason is in ``summary.csv``: a night whose recordings
were not mounted fails every call, and 20,000 lines would bury the count that says so."""


def listed_problems(lines: list[str], where: str) -> list[str]:
    """``lines`` up to :data:`LISTED_PROBLEMS`, then one line counting the rest and saying ``where``
    every reason is."""
    if len(lines) <= LISTED_PROBLEMS:
        return list(lines)
    return [*lines[:LISTED_PROBLEMS], f"… and {len(lines) - LISTED_PROBLEMS} more: every reason is in {where}"]


FIELDS = ["call_id", "status", "score", "max_score", "percent", "passed", "fatal", "flags", "error", "failed_categories", "situations"]


@dataclass(frozen=True)
class SummaryRow:
    call_id: str
    status: str  # "ok" or "failed"
    score: float | None = None
    max_score: float | None = None
    percent: float | None = None
    passed: bool | None = None
    fatal: str = ""
    flags: str = ""
    error: str = ""
    failed_categories: str = ""
    """Categories with a failed rule (greeting;silent_caller…): what to listen for first."""
    situations: str = ""
    """Situations the rulebook found on the call (silent_caller, transfer…)."""

    @classmethod
    def from_scorecard(cls, card: Scorecard) -> "SummaryRow":
        """The row of a call scored just now (``callqa run``, ``callqa score``)."""
        return cls._scored(
            card.call_id, card.score, card.max_score, card.percent, card.passed, card.fatal_failures,
            [f.reason for f in card.flags], [c for c, v in card.categories.items() if v == "fail"],
            [s.id for s in card.situations if s.occurred],
        )

    @classmethod
    def _scored(cls, call_id: str, score: float | None, max_score: float | None, percent: float | None,
                passed: bool | None, fatal: list[str], flags: list[str], failed_categories: list[str],
                situations: list[str]) -> "SummaryRow":
        """One place that turns a scored call's figures into the row's text columns."""
        return cls(
            call_id=call_id, status="ok", score=score, max_score=max_score,
            percent=round(percent, 1) if percent is not None else None, passed=passed, fatal=";".join(fatal),
            flags="; ".join(flags), failed_categories=";".join(failed_categories), situations=";".join(situations),
        )

    @classmethod
    def failure(cls, call_id: str, error: str) -> "SummaryRow":
        return cls(call_id=call_id, status="failed", error=error)


def rows_from_store(store: "Store", call_ids: set[str]) -> list[SummaryRow]:
    """Summary rows of finished and failed calls read from the results store (calls finished by an
    earlier run or another worker): the same columns as :meth:`SummaryRow.from_scorecard`, from the
    stored rule results, category verdicts, situations and flags.  (The store is imported here, not
    at the top: `callqa score` builds rows from scorecards and never opens a store.)"""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from pipelines.results.store import CallRow, CategoryResultRow, FlagRow, RuleResultRow, SituationResultRow

    with Session(store.engine) as session:
        calls = list(session.scalars(
            select(CallRow).where(CallRow.call_id.in_(call_ids), CallRow.status.in_(("done", "failed"))).order_by(CallRow.call_id)
        ))
        done = [c.call_id for c in calls if c.status == "done"]

        def by_call(call_column, value_column, order_column, *conditions) -> dict[str, list[str]]:
            found: dict[str, list[str]] = {}
            query = select(call_column, value_column).where(call_column.in_(done), *conditions).order_by(order_column)
            for call_id, value in session.execute(query):
                found.setdefault(call_id, []).append(value)
            return found

        fatal = by_call(RuleResultRow.call_id, RuleResultRow.rule_id, RuleResultRow.id,
                        RuleResultRow.fatal.is_(True), RuleResultRow.verdict == "fail")
        flags = by_call(FlagRow.call_id, FlagRow.reason, FlagRow.id)
        failed = by_call(CategoryResultRow.call_id, CategoryResultRow.category, CategoryResultRow.id,
                         CategoryResultRow.verdict == "fail")
        situations = by_call(SituationResultRow.call_id, SituationResultRow.situation_id, SituationResultRow.id,
                             SituationResultRow.occurred.is_(True))
    return [
        SummaryRow.failure(call.call_id, call.error or "failed") if call.status == "failed" else SummaryRow._scored(
            call.call_id, call.score, call.max_score, call.percent, call.passed, fatal.get(call.call_id, []),
            flags.get(call.call_id, []), failed.get(call.call_id, []), situations.get(call.call_id, []),
        )
        for call in calls
    ]


def write_summary(rows: list[SummaryRow], out_dir: Path, rulebook: str = "") -> tuple[Path, Path]:
    rows = sorted(rows, key=lambda r: r.call_id)
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow(safe_row({k: ("" if v is None else v) for k, v in row.__dict__.items()}))
    csv_path = write_text_privately(out_dir / "summary.csv", "\ufeff" + buffer.getvalue())  # BOM: Excel opens Chinese right
    ok = [r for r in rows if r.status == "ok"]
    html = environment().get_template("summary.html.j2").render(
        rows=rows, passed=sum(1 for r in ok if r.passed), failed_qa=sum(1 for r in ok if not r.passed),
        errors=len(rows) - len(ok), rulebook=rulebook,
    )
    return csv_path, write_text_privately(out_dir / "summary.html", html)
