"""``hold``: waits (silences where nobody is heard, from the audio) longer than ``min_wait_s``
must be announced before, or returned from after, with the right words.

Silences come from `Measures.silences` (per-channel voice activity), not from ASR segment
spans, which Whisper stretches across long silences; phrases are placed by word timestamps."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..context import CallContext, Evidence, Outcome
from ..records import is_hold
from ..spec import MatchMode, PhraseSearch, Scope
from .phrase import _needed
from .registry import register


class HoldParams(PhraseSearch):
    min_wait_s: float = Field(default=10.0, gt=0)
    side: Literal["before", "after"] = "before"
    """``before``: announcement ending at most ``within_s`` before the wait starts (or at most
    ``grace_s`` into it: the seed accepts a check-in up to 10 s into the wait); ``after``: a
    return phrase starting at most ``within_s`` after the wait ends."""
    within_s: float = Field(default=15.0, gt=0)
    grace_s: float = Field(default=10.0, ge=0)
    match: MatchMode = "any"
    after_agent_only: bool = False
    """Only waits that follow an agent utterance (the agent went away, not the customer)."""


def _waits(ctx: CallContext, p: HoldParams) -> list[tuple[float, float, float]]:
    waits = []
    utts = ctx.conversation.utterances
    for s in ctx.measures.silences:
        if not is_hold(s, p.min_wait_s):
            continue
        if p.after_agent_only:
            before = [u for u in utts if u.end <= s.start + 0.5]
            if not before or max(before, key=lambda u: u.end).role != "agent":
                continue
        waits.append((s.start, s.end, s.duration))
    return waits


@register("hold", HoldParams)
def hold(ctx: CallContext, scope: Scope, p: HoldParams) -> Outcome:
    """Each qualifying wait is evidence with its length (``measured`` = seconds); the rule fails
    when any wait lacks the phrases, and is N/A when there is no such wait."""
    waits = _waits(ctx, p)
    if not waits:
        return Outcome("na", note=f"no wait over {p.min_wait_s:g} s")
    idx = ctx.indices(scope)
    need = _needed(p.match, len(p.phrases))
    evidence: list[Evidence] = []
    failed = False
    for start, end, duration in waits:
        if p.side == "before":
            span = (start - p.within_s - 30.0, start + p.grace_s)  # hit *start* range; end checked below
            hits = [h for e in p.phrases for h in ctx.find(e, idx, p, span) if h.end >= start - p.within_s and h.start <= start + p.grace_s]
        else:
            span = (start, end + p.within_s)
            hits = [h for e in p.phrases for h in ctx.find(e, idx, p, span) if h.start >= start - 0.5 and h.start <= end + p.within_s]
        elements = sorted({h.element for h in hits})
        ok = len(elements) >= need
        failed |= not ok
        said = " | ".join(dict.fromkeys(ctx.utterance(h.utterance).text for h in hits)) or None
        expected = (
            f"{'before' if p.side == 'before' else 'after'} the wait ({p.within_s:g} s): at least {need} of "
            + ", ".join(e.label for e in p.phrases)
            + (f"; heard: {', '.join(elements)}" if elements else "; none heard")
        )
        evidence.append(Evidence(start, end, None, said, round(duration, 2), expected))
    return Outcome("fail" if failed else "pass", evidence)
