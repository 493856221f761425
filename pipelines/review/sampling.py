"""抽样: the QA inspector's sampling plan — which calls a person listens to and scores this period.

A plan (YAML) asks, per agent and period, for N random calls (or a share of them), plus every call
with a fatal failure and every flagged call; the random part may be stratified (by team, call
length, or whether a rule failed) so that short and long calls are both heard.  A seed makes the
draw reproducible; calls already reviewed or already drawn are never drawn again.

The draw is written to the store (``assignments``) with *why* each call is there — ``random``,
``flagged`` or ``fatal`` — and who it is assigned to.  Why matters for calibration: agreement
between machine and people measured only on flagged calls is biased towards the machine's
mistakes; the random part is the unbiased estimate.
"""

from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from pipelines.results.period import Period
from pipelines.results.store import AssignmentRow, CallRow, FlagRow, ReviewRow, RuleResultRow, Store

REASONS = ("fatal", "flagged", "random")
MAX_PLAN_BYTES = 64 * 1024


class Strata(BaseModel):
    model_config = ConfigDict(extra="forbid")
    team: bool = False
    length_s: list[float] | None = None
    """Bucket edges of the call length, e.g. [120, 300] → under 2 min, 2–5 min, over 5 min."""
    rule: str | None = None
    """Split by whether this rule failed on the call."""


class Plan(BaseModel):
    """A sampling plan as a QA supervisor writes it."""

    model_config = ConfigDict(extra="forbid")
    id: str = "default"
    seed: int = 0
    random_per_agent: int | None = Field(default=None, ge=0)
    share_per_agent: float | None = Field(default=None, gt=0, le=1)
    """Alternative to ``random_per_agent``: e.g. 0.05 = 5 % of each agent's calls (at least one)."""
    include_fatal: bool = True
    include_flagged: bool = True
    strata: Strata = Field(default_factory=Strata)


class PlanError(ValueError):
    pass


def load_plan(path: Path) -> Plan:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise PlanError(f"plan {path}: cannot read it ({exc.strerror})") from exc
    if len(raw) > MAX_PLAN_BYTES:
        raise PlanError(f"plan {path}: {len(raw)} bytes — a sampling plan is a few lines (limit {MAX_PLAN_BYTES})")
    try:
        data = yaml.safe_load(raw.decode("utf-8")) or {}
        plan = Plan.model_validate(data)
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise PlanError(f"plan {path}: not valid YAML ({exc})") from exc
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise PlanError(f"plan {path}: {problems}") from exc
    if plan.random_per_agent is None and plan.share_per_agent is None:
        raise PlanError(f"plan {path}: give random_per_agent (calls per agent) or share_per_agent (e.g. 0.05)")
    return plan


@dataclass(frozen=True)
class Drawn:
    call_id: str
    agent_id: str | None
    reason: str
    stratum: str | None
    assignee: str | None


def draw(store: Store, plan: Plan, period: Period, assignees: list[str] | None = None, now: float | None = None) -> list[Drawn]:
    """Draw this period's sample, write it to the store, and return it (fatal, flagged, random)."""
    with Session(store.engine) as session:
        calls = [c for c in session.scalars(select(CallRow).where(CallRow.status == "done")) if period.contains(c.started_at)]
        reviewed = set(session.scalars(select(ReviewRow.call_id)))
        drawn_before = set(session.scalars(select(AssignmentRow.call_id)))
        flagged = set(session.scalars(select(FlagRow.call_id)))
        failed_rule: set[str] = set()
        if plan.strata.rule:
            failed_rule = set(session.scalars(select(RuleResultRow.call_id).where(
                RuleResultRow.rule_id == plan.strata.rule, RuleResultRow.verdict == "fail")))
    eligible = sorted((c for c in calls if c.call_id not in reviewed and c.call_id not in drawn_before), key=lambda c: c.call_id)
    chosen: list[tuple[CallRow, str, str | None]] = []
    taken: set[str] = set()
    for call in eligible:
        if plan.include_fatal and call.fatal:
            chosen.append((call, "fatal", None))
            taken.add(call.call_id)
    for call in eligible:
        if plan.include_flagged and call.call_id not in taken and call.call_id in flagged:
            chosen.append((call, "flagged", None))
            taken.add(call.call_id)
    rng = random.Random(f"{plan.seed}:{period.label}")
    by_agent: dict[str, list[CallRow]] = {}
    for call in calls:
        by_agent.setdefault(call.agent_id or "", []).append(call)
    for agent in sorted(by_agent):
        agent_calls = by_agent[agent]
        want = plan.random_per_agent if plan.random_per_agent is not None else max(1, math.ceil(plan.share_per_agent * len(agent_calls)))
        pool = [c for c in agent_calls if c.call_id not in taken and c in eligible]
        for call, stratum in _stratified(pool, want, plan.strata, failed_rule, rng):
            chosen.append((call, "random", stratum))
            taken.add(call.call_id)
    out = []
    for i, (call, reason, stratum) in enumerate(chosen):
        assignee = assignees[i % len(assignees)] if assignees else None
        out.append(Drawn(call.call_id, call.agent_id, reason, stratum, assignee))
    created = now if now is not None else time.time()
    with Session(store.engine) as session, session.begin():
        session.add_all(AssignmentRow(call_id=d.call_id, plan_id=plan.id, period=period.label, reason=d.reason,
                                      stratum=d.stratum, assignee=d.assignee, created_at=created) for d in out)
    return out


def _stratum(call: CallRow, strata: Strata, failed_rule: set[str]) -> str:
    parts = []
    if strata.team:
        parts.append(f"team={call.team or '-'}")
    if strata.length_s:
        edges = sorted(strata.length_s)
        length = call.duration_s or 0.0
        below = next((e for e in edges if length < e), None)
        parts.append(f"length<{below:g}s" if below is not None else f"length≥{edges[-1]:g}s")
    if strata.rule:
        parts.append(f"{strata.rule}={'fail' if call.call_id in failed_rule else 'not failed'}")
    return ", ".join(parts)


def _stratified(pool: list[CallRow], want: int, strata: Strata, failed_rule: set[str], rng: random.Random):
    """``want`` calls drawn at random, spread over the strata in proportion to their size (every
    non-empty stratum gets at least one while there are calls to give)."""
    if want <= 0 or not pool:
        return []
    groups: dict[str, list[CallRow]] = {}
    for call in pool:
        groups.setdefault(_stratum(call, strata, failed_rule), []).append(call)
    want = min(want, len(pool))
    names = sorted(groups)
    quota = {n: max(1, round(want * len(groups[n]) / len(pool))) for n in names}
    while sum(quota.values()) > want:  # trim the largest quotas first
        biggest = max((n for n in names if quota[n] > 0), key=lambda n: (quota[n], n))
        quota[biggest] -= 1
    out = []
    for name in names:
        members = sorted(groups[name], key=lambda c: c.call_id)
        for call in rng.sample(members, min(quota[name], len(members))):
            out.append((call, name or None))
    return out


def assignments(store: Store, assignee: str | None = None, period: str | None = None) -> dict[str, AssignmentRow]:
    """The latest assignment of each call (optionally one reviewer's, one period's)."""
    query = select(AssignmentRow).order_by(AssignmentRow.created_at, AssignmentRow.id)
    if assignee:
        query = query.where(AssignmentRow.assignee == assignee)
    if period:
        query = query.where(AssignmentRow.period == period)
    with Session(store.engine) as session:
        rows = {r.call_id: r for r in session.scalars(query)}
        session.expunge_all()
    return rows
