"""The batch summary: one row per call (score, passed, fatal failures, flags), as CSV for
spreadsheets and a short HTML page linking each call's scorecard.  Calls that could not be
processed are listed with their reason, so nothing silently disappears from the night's report."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

from qa_rules.files import write_text_privately
from pipelines.reports.scorecard_html import _env
from pipelines.reports.spreadsheet import safe_row

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
    def from_scorecard(cls, card: dict) -> "SummaryRow":
        return cls(
            call_id=card["call_id"], status="ok", score=card["score"], max_score=card["max_score"],
            percent=round(card["percent"], 1), passed=card["passed"], fatal=";".join(card.get("fatal_failures", [])),
            flags="; ".join(f["reason"] for f in card.get("flags", [])),
            failed_categories=";".join(c for c, v in card.get("categories", {}).items() if v == "fail"),
            situations=";".join(x["id"] for x in card.get("situations", []) if x.get("occurred")),
        )

    @classmethod
    def failure(cls, call_id: str, error: str) -> "SummaryRow":
        return cls(call_id=call_id, status="failed", error=error)


def write_summary(rows: list[SummaryRow], out_dir: Path, rulebook: str = "") -> tuple[Path, Path]:
    rows = sorted(rows, key=lambda r: r.call_id)
    buffer = io.StringIO(newline="")
    writer = csv.DictWriter(buffer, fieldnames=FIELDS)
    writer.writeheader()
    for row in rows:
        writer.writerow(safe_row({k: ("" if v is None else v) for k, v in row.__dict__.items()}))
    csv_path = write_text_privately(out_dir / "summary.csv", "\ufeff" + buffer.getvalue())  # BOM: Excel opens Chinese right
    ok = [r for r in rows if r.status == "ok"]
    html = _env().get_template("summary.html.j2").render(
        rows=rows, passed=sum(1 for r in ok if r.passed), failed_qa=sum(1 for r in ok if not r.passed),
        errors=len(rows) - len(ok), rulebook=rulebook,
    )
    return csv_path, write_text_privately(out_dir / "summary.html", html)
