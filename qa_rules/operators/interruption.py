"""``interruption``: the agent starts talking while the customer is still speaking.

From `Measures.overlaps` (voice activity on both sides, not ASR spans).  Backchannels — a short
嗯/好的/对 while the customer talks — are attentive listening, not barging in, so they are
excepted by duration or by wording."""

from __future__ import annotations

from pydantic import Field

from ..context import CallContext, Evidence, Outcome
from ..matching import clean, units_of
from ..spec import Scope, Strict
from .registry import register

_DEFAULT_BACKCHANNEL = ["嗯", "好", "好的", "对", "是", "是的", "哦", "行", "ok", "okay", "yes", "yeah", "uh-huh", "mhm", "right", "sure", "i see"]


class InterruptionParams(Strict):
    min_overlap_s: float = Field(default=1.0, ge=0)
    backchannel_max_s: float = Field(default=1.0, ge=0)
    """An interrupting utterance shorter than this is a backchannel."""
    backchannel_words: list[str] = Field(default_factory=lambda: list(_DEFAULT_BACKCHANNEL))
    """An interrupting utterance made only of these words is a backchannel, whatever its length."""
    interrupted: Scope = "customer"
    max_count: int = Field(default=0, ge=0)
    """Barge-ins tolerated per call."""


def _only_backchannel(text: str, words: list[str]) -> bool:
    units, _ = units_of(clean(text))
    vocab = set()
    for w in words:
        vocab.update(units_of(clean(w))[0])
    return bool(units) and all(u in vocab for u in units)


@register("interruption", InterruptionParams)
def interruption(ctx: CallContext, scope: Scope, p: InterruptionParams) -> Outcome:
    """Barge-ins by the scope (normally the agent) on the ``interrupted`` role longer than
    ``min_overlap_s``.  N/A when the interrupted role never speaks."""
    if not ctx.indices(p.interrupted):
        return Outcome("na", note=f"no {p.interrupted} speech")
    barge_ins: list[Evidence] = []
    utts = ctx.conversation.utterances
    for ov in ctx.measures.overlaps:
        if ov.second_role != scope and scope != "any":
            continue
        if p.interrupted != "any" and ov.first_role != p.interrupted:
            continue
        if ov.duration <= p.min_overlap_s:
            continue
        # The interrupting utterance: by the second speaker, starting around the overlap start.
        cands = [u for u in utts if u.speaker == ov.second and u.start <= ov.end and u.end >= ov.start - 0.5]
        u = min(cands, key=lambda u: abs(u.start - ov.start)) if cands else None
        if u is not None and ((u.end - u.start) < p.backchannel_max_s or _only_backchannel(u.text, p.backchannel_words)):
            continue
        barge_ins.append(Evidence(ov.start, ov.end, ov.second, u.text if u else None, round(ov.duration, 2),
                                  f"no talking over the {p.interrupted} for more than {p.min_overlap_s:g} s"))
    return Outcome("fail" if len(barge_ins) > p.max_count else "pass", barge_ins)
