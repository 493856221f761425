"""``respond``: what the agent must say around each occurrence of the rule's situation.

The situation (a trigger) says *when*; this operator says *what*, with timings: phrase elements
(any / all / N-of) said by the rule's speaker in a window around the occurrence — before it
(``before_s``: the dictation prompt within 10 s before the number), after it (``after_s``: the
apology after 打错了), or from the speaker's next turn on (``from_next_turn``: the receiver's
first words after a transfer).  A phrase may hold ``{value}``, filled with what the trigger captured (the
surname in 我姓王 → 王女士 / 王先生)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..context import CallContext, Evidence, Hit, Occurrence, Outcome
from ..spec import MatchMode, Phrase, PhraseSearch, Scope
from .phrase import _needed
from .registry import register


class RespondParams(PhraseSearch):
    match: MatchMode = "any"
    before_s: float | None = Field(default=None, ge=0)
    """Look back this far from the occurrence's start.  Without ``after_s`` the phrases must
    start *before* the occurrence (a prompt before the number, consent before the transfer)."""
    after_s: float | None = Field(default=None, ge=0)
    """Look forward this far from the occurrence's end (from its start when ``before_s`` is unset)."""
    from_next_turn: bool = False
    """Count ``after_s`` from the start of the speaker's first turn after the occurrence (the
    receiver's first words after a transfer, however long the customer waited for them); without
    ``before_s`` the window also starts there."""
    occurrence: Literal["first", "each", "any"] = "first"
    """Which occurrences must be answered: the first, every one, or at least one."""
    fallback_speaker: Scope | None = None
    """Judge this speaker when the rule's speaker has no speech (no receiver told apart from the
    agent: the agent's first turn after the transfer is the receiver's)."""


def _fill(element: Phrase, value: str | None) -> Phrase | None:
    """The element with ``{value}`` filled in; None when it needs a value the trigger lacks."""
    if element.text is not None:
        if "{value}" not in element.text:
            return element
        return Phrase(text=element.text.replace("{value}", value), name=element.name) if value else None
    if element.regex is not None:
        return element
    alternatives = [a for a in (_fill(alt, value) for alt in element.any or []) if a is not None]
    return Phrase(any=alternatives, name=element.label) if alternatives else None


def _next_turn(ctx: CallContext, occ: Occurrence, idx: list[int]) -> float | None:
    starts = [ctx.utterance(i).start for i in idx if ctx.utterance(i).start >= occ.end - 0.05]
    return min(starts) if starts else None


def _window_hits(ctx: CallContext, occ: Occurrence, idx: list[int], p: RespondParams, element: Phrase) -> list[Hit]:
    hits = ctx.find(element, idx, p)
    if p.from_next_turn:
        anchor = _next_turn(ctx, occ, idx)
        if anchor is None:
            return []
        lo = occ.start - p.before_s if p.before_s is not None else anchor - 0.05
        hi = anchor + (p.after_s or 0.0)
        return [h for h in hits if h.end >= lo and h.start <= hi]
    lo = occ.start - (p.before_s or 0.0) - (0.0 if p.before_s else 0.3)
    if p.after_s is None:
        return [h for h in hits if h.end >= lo and h.start < occ.start]
    hi = occ.end + p.after_s
    return [h for h in hits if h.end >= lo and h.start <= hi]


def _where(p: RespondParams) -> str:
    if p.from_next_turn:
        return f"within {p.after_s or 0:g} s from the next turn after"
    if p.after_s is None:
        return f"within {p.before_s or 0:g} s before"
    if p.before_s:
        return f"from {p.before_s:g} s before to {p.after_s:g} s after"
    return f"within {p.after_s:g} s after"


@register("respond", RespondParams)
def respond(ctx: CallContext, scope: Scope, p: RespondParams) -> Outcome:
    """Per occurrence of the situation: enough phrase elements in the window?  Evidence names
    the occurrence, what was heard and what is missing."""
    if not ctx.trigger:
        return Outcome("na", note="the rule's situation did not occur")
    idx = ctx.indices(scope)
    speaker_note = None
    if not idx and p.fallback_speaker is not None:
        idx = ctx.indices(p.fallback_speaker)
        speaker_note = f"no {scope} speech told apart: judged the {p.fallback_speaker}'s turns"
    if not idx:
        return Outcome("na", note=f"no {scope} speech")
    occurrences = ctx.trigger[:1] if p.occurrence == "first" else ctx.trigger
    results: list[bool] = []
    evidence: list[Evidence] = []
    for occ in occurrences:
        elements = [(e.label, _fill(e, occ.value)) for e in p.phrases]
        need = _needed(p.match, len(elements))
        found: dict[str, Hit] = {}
        for label, element in elements:
            hits = _window_hits(ctx, occ, idx, p, element) if element is not None else []
            if hits:
                found[label] = hits[0]
        ok = len(found) >= need
        results.append(ok)
        missing = [label for label, _ in elements if label not in found]
        evidence.append(Evidence(
            occ.start, occ.end, occ.speaker, occ.text, len(found),
            f"{occ.what} → {_where(p)}: at least {need} of {', '.join(label for label, _ in elements)}"
            + (f"; missing: {', '.join(missing)}" if missing else ""),
        ))
        evidence.extend(Evidence(h.start, h.end, h.speaker, ctx.utterance(h.utterance).text, h.text, label) for label, h in found.items())
    passed = any(results) if p.occurrence == "any" else all(results)
    return Outcome("pass" if passed else "fail", evidence, note=speaker_note)
