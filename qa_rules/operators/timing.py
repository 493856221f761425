"""Timing of the conversation as measures with a verdict:

- ``response_gap``: how fast the agent answers — median and 90th percentile of the gaps from the
  end of a customer turn to the start of the agent's next turn (seeds: 节奏 includes 「对客户所讲
  问题的反应速度」).  Gaps longer than ``max_gap_s`` are waits, judged by the hold rules.
- ``dead_air``: the longest stretch where nobody is heard (from voice activity) — a waiting
  customer must not be left in silence (「使得客户知道我们时刻记着他们」)."""

from __future__ import annotations

from statistics import median

from pydantic import Field

from ..callstats import percentile, response_gaps
from ..context import CallContext, Evidence, Outcome
from ..spec import Scope, Strict
from .registry import register


class ResponseGapParams(Strict):
    max_median_s: float = Field(default=2.0, gt=0)
    max_p90_s: float = Field(default=5.0, gt=0)
    max_gap_s: float = Field(default=10.0, gt=0)
    """Longer gaps are holds/waits (see hold.*), not reaction time."""
    min_gaps: int = Field(default=2, ge=1)


@register("response_gap", ResponseGapParams)
def response_gap(ctx: CallContext, scope: Scope, p: ResponseGapParams) -> Outcome:
    """Median and p90 response gap within their limits; the measured values are the evidence,
    with each gap over the p90 limit.  N/A with fewer than ``min_gaps`` customer→agent turns."""
    gaps = [g for g in response_gaps(ctx.conversation) if g.seconds <= p.max_gap_s]
    if len(gaps) < p.min_gaps:
        return Outcome("na", note=f"{len(gaps)} customer→agent turn changes")
    values = [g.seconds for g in gaps]
    med, p90 = median(values), percentile(values, 90) or 0.0
    first, last = gaps[0], gaps[-1]
    evidence = [
        Evidence(first.customer_end, last.agent_start, None, f"median response gap over {len(gaps)} turn changes", round(med, 2), f"≤ {p.max_median_s:g} s"),
        Evidence(first.customer_end, last.agent_start, None, "90th percentile response gap", round(p90, 2), f"≤ {p.max_p90_s:g} s"),
    ]
    for g in gaps:
        if g.seconds > p.max_p90_s:
            u = ctx.utterance(g.agent_index)
            evidence.append(Evidence(g.customer_end, g.agent_start, u.speaker, u.text, round(g.seconds, 2), f"answer within {p.max_p90_s:g} s"))
    return Outcome("fail" if med > p.max_median_s or p90 > p.max_p90_s else "pass", evidence)


class DeadAirParams(Strict):
    max_s: float = Field(default=30.0, gt=0)
    """Longest tolerated stretch of silence (notes: over 10 s without a check-in is minor, over
    30 s major; the 10 s announcement itself is hold.announce_10s)."""
    report_over_s: float = Field(default=10.0, gt=0)


@register("dead_air", DeadAirParams)
def dead_air(ctx: CallContext, scope: Scope, p: DeadAirParams) -> Outcome:
    """The longest silence ≤ ``max_s``; every silence over ``report_over_s`` is evidence."""
    silences = ctx.measures.silences
    if not ctx.conversation.utterances:
        return Outcome("na", note="no speech")
    longest = max((s.duration for s in silences), default=0.0)
    evidence = [Evidence(s.start, s.end, None, "dead air: nobody heard", round(s.duration, 2), f"≤ {p.max_s:g} s")
                for s in silences if s.duration > p.report_over_s]
    if not evidence:
        evidence = [Evidence(0.0, ctx.conversation.duration_s, None, "longest dead air", round(longest, 2), f"≤ {p.max_s:g} s")]
    return Outcome("fail" if longest > p.max_s else "pass", evidence)
