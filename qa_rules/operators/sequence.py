"""``sequence``: phrase B must follow (or precede) phrase/event A within N seconds.

Examples: the agent answers the customer's 谢谢 with 不客气 (B after A); the agent asks
"anything else?" before saying goodbye (A before B, no time limit)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ..context import CallContext, Evidence, Outcome
from ..spec import Phrase, Scope, Strict
from .registry import register


class Event(Strict):
    phrases: list[Phrase] = Field(min_length=1)
    speaker: Scope = "any"


class SequenceParams(Strict):
    anchor: Event
    """The event that makes the rule apply (no anchor in the call → N/A)."""
    target: Event
    """What must come before/after the anchor; its ``speaker`` defaults to the rule's scope."""
    relation: Literal["after", "before"] = "after"
    within_s: float | None = Field(default=None, gt=0)
    require: Literal["each", "any"] = "any"
    """``each``: every anchor occurrence needs its target; ``any``: one satisfied anchor is enough."""
    similarity: float = Field(default=0.85, gt=0, le=1)
    pinyin: bool = True


@register("sequence", SequenceParams)
def sequence(ctx: CallContext, scope: Scope, p: SequenceParams) -> Outcome:
    """Order (and optional distance) between two phrase events, judged per anchor occurrence."""
    a_idx = ctx.indices(p.anchor.speaker)
    target_speaker = p.target.speaker if "speaker" in p.target.model_fields_set else scope
    t_idx = ctx.indices(target_speaker)
    anchors = sorted({h for e in p.anchor.phrases for h in ctx.find(e, a_idx, p)}, key=lambda h: h.start)
    if not anchors:
        return Outcome("na", note="anchor not in the call")
    targets = sorted({h for e in p.target.phrases for h in ctx.find(e, t_idx, p)}, key=lambda h: h.start)
    results: list[tuple[bool, Evidence]] = []
    for a in anchors:
        if p.relation == "after":
            ok_t = [t for t in targets if t.start >= a.start and (p.within_s is None or t.start - a.end <= p.within_s)]
        else:
            ok_t = [t for t in targets if t.start <= a.start and (p.within_s is None or a.start - t.end <= p.within_s)]
        expected = f"{' / '.join(e.label for e in p.target.phrases)} {p.relation} «{a.text}»" + (f" within {p.within_s:g} s" if p.within_s else "")
        if ok_t:
            t = ok_t[0] if p.relation == "after" else ok_t[-1]
            results.append((True, Evidence(t.start, t.end, t.speaker, ctx.utterance(t.utterance).text, t.text, expected)))
        else:
            results.append((False, Evidence(a.start, a.end, a.speaker, ctx.utterance(a.utterance).text, None, expected)))
    good = [ok for ok, _ in results]
    passed = all(good) if p.require == "each" else any(good)
    return Outcome("pass" if passed else "fail", [ev for ok, ev in results if ok != passed or passed])
