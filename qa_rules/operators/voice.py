"""The speaker's voice against its *own* baseline for the call, not a population band:

- ``level_steady``: around a situation (a quiet customer) the agent keeps its level — 「呼叫座席员
  保持自己的音量不变」: no turn more than ``max_rise_db`` over its level before the situation;
- ``jump_after_turn``: right after a customer turn, the agent's level or speech rate jumps over
  its own call median (impatience: a raised or hurried voice in answer to the customer).

Both read `Measures.utterances` (levels of voiced frames on the speaker's own channel, rates
over voiced time) and skip turns too short to measure."""

from __future__ import annotations

from statistics import median
from typing import Literal

from pydantic import Field, model_validator

from ..context import CallContext, Evidence, Outcome
from ..spec import Scope, Strict
from .registry import register


def _rows(ctx: CallContext, scope: Scope, attr: str, min_voiced_s: float, unit: str | None = None):
    out = []
    for m in sorted(ctx.measures.utterances, key=lambda m: m.start):
        if scope != "any" and m.role != scope:
            continue
        if attr == "rate" and unit is not None and m.rate_unit != unit:
            continue
        value = getattr(m, attr)
        if value is not None and m.voiced_s >= min_voiced_s:
            out.append((m, float(value)))
    return out


class LevelSteadyParams(Strict):
    max_rise_db: float = Field(default=3.0, gt=0)
    within_s: float = Field(default=30.0, gt=0)
    """Judge the scope's turns starting from the situation to this long after it."""
    min_voiced_s: float = Field(default=0.4, ge=0)


@register("level_steady", LevelSteadyParams)
def level_steady(ctx: CallContext, scope: Scope, p: LevelSteadyParams) -> Outcome:
    """Baseline: median level of the scope's turns before the first occurrence (else of its
    turns outside the judged stretch, else of all).  Any judged turn louder than baseline +
    ``max_rise_db`` fails.  N/A without a judged turn."""
    if not ctx.trigger:
        return Outcome("na", note="the rule's situation did not occur")
    rows = _rows(ctx, scope, "loudness_dbfs", p.min_voiced_s)
    first = ctx.trigger[0]
    judged = [(m, v) for m, v in rows if any(o.start - 0.5 <= m.start <= o.end + p.within_s for o in ctx.trigger)]
    if not judged:
        return Outcome("na", note=f"no {scope} turn to measure after the situation")
    before = [v for m, v in rows if m.end <= first.start]
    outside = [v for m, v in rows if (m, v) not in judged]
    base_values = before or outside or [v for _, v in rows]
    baseline = median(base_values)
    evidence = []
    failed = False
    for m, v in judged:
        rise = v - baseline
        if rise > p.max_rise_db:
            failed = True
        evidence.append(Evidence(m.start, m.end, m.speaker, ctx.utterance(m.index).text, round(rise, 2),
                                 f"level rise over the {scope}'s baseline {baseline:.1f} dBFS ≤ {p.max_rise_db:g} dB"))
    if not failed:
        evidence = [max(evidence, key=lambda e: float(e.measured or 0))]
    return Outcome("fail" if failed else "pass", evidence)


class JumpParams(Strict):
    level_rise_db: float | None = Field(default=6.0, gt=0)
    """A turn this many dB over the speaker's call median is a raised voice."""
    rate_rise_ratio: float | None = Field(default=None, gt=1)
    """A turn this many times faster than the speaker's call median is a hurried one."""
    rate_unit: Literal["chars_per_s", "words_per_min"] | None = None
    after: Scope = "customer"
    within_s: float = Field(default=2.0, gt=0)
    """Judged: the scope's turns starting at most this long after a turn of ``after`` ends."""
    min_voiced_s: float = Field(default=1.0, ge=0)
    min_turns: int = Field(default=3, ge=2)
    """Fewer measurable turns than this: no baseline, N/A."""

    @model_validator(mode="after")
    def _something(self) -> "JumpParams":
        if self.level_rise_db is None and self.rate_rise_ratio is None:
            raise ValueError("give level_rise_db, rate_rise_ratio or both")
        return self


@register("jump_after_turn", JumpParams)
def jump_after_turn(ctx: CallContext, scope: Scope, p: JumpParams) -> Outcome:
    """Each of the scope's turns that answers a turn of ``after`` is compared with the scope's
    own median over the call; a jump in level or rate fails (the turn is evidence)."""
    after_ends = [ctx.utterance(i).end for i in ctx.indices(p.after)]
    checks = []
    if p.level_rise_db is not None:
        checks.append(("loudness_dbfs", _rows(ctx, scope, "loudness_dbfs", p.min_voiced_s), p.level_rise_db, "dB"))
    if p.rate_rise_ratio is not None:
        checks.append(("rate", _rows(ctx, scope, "rate", p.min_voiced_s, p.rate_unit), p.rate_rise_ratio, "×"))
    evidence: list[Evidence] = []
    judged_any = False
    failed = False
    for attr, rows, limit, unit in checks:
        if len(rows) < p.min_turns:
            continue
        baseline = median(v for _, v in rows)
        for m, v in rows:
            if not any(0 <= m.start - e <= p.within_s for e in after_ends):
                continue
            judged_any = True
            jump = v - baseline if unit == "dB" else (v / baseline if baseline > 0 else 1.0)
            if jump > limit:
                failed = True
                evidence.append(Evidence(m.start, m.end, m.speaker, ctx.utterance(m.index).text, round(jump, 2),
                                         f"{attr} after a {p.after} turn ≤ {'+' if unit == 'dB' else ''}{limit:g}{unit} "
                                         f"over the {scope}'s median {baseline:.1f}"))
    if not judged_any:
        return Outcome("na", note=f"too few measurable {scope} turns answering the {p.after}")
    return Outcome("fail" if failed else "pass", evidence)
