"""Calibration: how often the machine's rule verdicts agree with the human reviewers', per rule.

This is the data for tuning a rulebook: a rule the reviewers keep overturning is a rule whose
phrases, thresholds or scope are wrong.  Agreement is counted on the *current* human ruling for each
(call, rule) — the latest review — so a reviewer who changes their mind does not count twice.
Cohen's kappa is computed over the items where both sides said pass or fail (``na`` has no
opposite to disagree with and would inflate chance agreement).
"""

from __future__ import annotations

import csv
import io
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from pipelines.reports.spreadsheet import safe_row
from pipelines.results.store import ReviewRow, Store

BINARY = ("pass", "fail")


@dataclass(frozen=True)
class Pair:
    """One reviewed item: the machine's verdict and the human's."""

    rule_id: str
    machine: str
    human: str


@dataclass(frozen=True)
class RuleAgreement:
    rule_id: str
    reviewed: int
    agree: int
    machine_pass_human_fail: int
    """The rule let a bad call through (a missed failure)."""
    machine_fail_human_pass: int
    """The rule failed a call a human judged fine (a false alarm)."""
    other_disagree: int
    """Disagreements involving ``na`` (the rule should or should not have applied)."""
    kappa: float | None
    """Cohen's kappa over pass/fail items; ``None`` where it is undefined (fewer than one item, or
    both sides used a single verdict throughout)."""

    @property
    def disagree(self) -> int:
        return self.reviewed - self.agree

    @property
    def percent_agree(self) -> float:
        return 100.0 * self.agree / self.reviewed if self.reviewed else 0.0


def cohen_kappa(pairs: list[tuple[str, str]], labels: tuple[str, ...] = BINARY) -> float | None:
    """Cohen's kappa of two raters (scikit-learn's ``cohen_kappa_score``), pairs outside ``labels``
    ignored; ``None`` where it is undefined: no pairs left, or both raters used one single verdict
    throughout (chance agreement is then 1 and kappa 0/0).

    scikit-learn is imported here, not with the module: it costs seconds, and the console imports
    this module at start-up but needs kappa only when the calibration page is asked for."""
    pairs = [(a, b) for a, b in pairs if a in labels and b in labels]
    if not pairs:
        return None
    from sklearn.exceptions import UndefinedMetricWarning
    from sklearn.metrics import cohen_kappa_score

    machine, human = zip(*pairs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UndefinedMetricWarning)  # undefined is an answer here: None
        kappa = float(cohen_kappa_score(machine, human, labels=list(labels)))  # NaN where undefined
    return None if math.isnan(kappa) else kappa


def latest_reviews(store: Store) -> list[ReviewRow]:
    """The current human ruling on every reviewed (call, rule): its latest review, unless that one is
    stale (the call was re-scored and the result changed since) — then none until it is confirmed."""
    latest: dict[tuple[str, str], ReviewRow] = {}
    with Session(store.engine) as session:
        for review in session.scalars(select(ReviewRow).order_by(ReviewRow.created_at, ReviewRow.id)):
            latest[(review.call_id, review.rule_id)] = review
        session.expunge_all()
    return [r for r in latest.values() if not r.stale]


def current_pairs(store: Store) -> list[Pair]:
    """The latest review of every reviewed (call, rule), as machine-vs-human pairs."""
    return [Pair(r.rule_id, r.machine_verdict, r.human_verdict) for r in latest_reviews(store)]


def pairs_by_sample(store: Store) -> dict[str, list[Pair]]:
    """Reviewed pairs split by why the call was reviewed: ``random`` (drawn at random by the
    sampling plan — the unbiased estimate of how often the machine agrees with people) and
    ``selected`` (flagged, fatal or picked by hand from the queue — biased towards the machine's
    failures)."""
    from pipelines.review.sampling import assignments

    reasons = {call_id: row.reason for call_id, row in assignments(store).items()}
    out: dict[str, list[Pair]] = {"random": [], "selected": []}
    for review in latest_reviews(store):
        part = "random" if reasons.get(review.call_id) == "random" else "selected"
        out[part].append(Pair(review.rule_id, review.machine_verdict, review.human_verdict))
    return out


def disagreements(store: Store, rows: list[RuleAgreement]) -> list[ReviewRow]:
    """The overturned items, in the table's rule order, so a rulebook author can read the cases."""
    order = {r.rule_id: i for i, r in enumerate(rows)}
    found = [r for r in latest_reviews(store) if r.machine_verdict != r.human_verdict]
    return sorted(found, key=lambda r: (order.get(r.rule_id, len(order)), r.call_id))


def agreement(pairs: list[Pair]) -> list[RuleAgreement]:
    """Per-rule agreement, the rules that disagree most first."""
    by_rule: dict[str, list[Pair]] = {}
    for pair in pairs:
        by_rule.setdefault(pair.rule_id, []).append(pair)
    rows = [_rule_agreement(rule_id, items) for rule_id, items in by_rule.items()]
    rows.sort(key=lambda r: (-r.disagree, r.percent_agree, r.rule_id))
    return rows


def overall(pairs: list[Pair]) -> RuleAgreement:
    """All rules together, for the summary line."""
    return _rule_agreement("(all rules)", pairs)


def _rule_agreement(rule_id: str, items: list[Pair]) -> RuleAgreement:
    agree = sum(p.machine == p.human for p in items)
    missed = sum(p.machine == "pass" and p.human == "fail" for p in items)
    false_alarm = sum(p.machine == "fail" and p.human == "pass" for p in items)
    return RuleAgreement(
        rule_id=rule_id, reviewed=len(items), agree=agree, machine_pass_human_fail=missed,
        machine_fail_human_pass=false_alarm, other_disagree=len(items) - agree - missed - false_alarm,
        kappa=cohen_kappa([(p.machine, p.human) for p in items]),
    )


COLUMNS = ("rule_id", "reviewed", "agree", "disagree", "percent_agree", "kappa",
           "machine_pass_human_fail", "machine_fail_human_pass", "other_disagree")


def as_records(rows: list[RuleAgreement]) -> list[dict]:
    return [
        {
            "rule_id": r.rule_id, "reviewed": r.reviewed, "agree": r.agree, "disagree": r.disagree,
            "percent_agree": round(r.percent_agree, 1), "kappa": None if r.kappa is None else round(r.kappa, 3),
            "machine_pass_human_fail": r.machine_pass_human_fail, "machine_fail_human_pass": r.machine_fail_human_pass,
            "other_disagree": r.other_disagree,
        }
        for r in rows
    ]


def to_csv(rows: list[RuleAgreement]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    for record in as_records(rows):
        writer.writerow(safe_row({k: "" if v is None else v for k, v in record.items()}))
    return buffer.getvalue()


def write_report(rows: list[RuleAgreement], total: RuleAgreement, out: Path, cases: list[ReviewRow] = ()) -> Path:
    """``.csv`` (the per-rule table) or ``.html`` (the table and the overturned cases) by the file's suffix."""
    suffix = out.suffix.lower()
    out.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        out.write_text(to_csv(rows), encoding="utf-8")
    elif suffix in (".html", ".htm"):
        from pipelines.review.web import render

        out.write_text(render("calibration.html.j2", rows=rows, total=total, cases=list(cases), standalone=True), encoding="utf-8")
    else:
        raise ValueError(f"cannot write calibration as {out.name}: use a .csv or .html file name")
    return out
