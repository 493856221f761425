"""Text operators: ``phrase`` (any / all / N-of within a window), ``absent`` (forbidden words),
``preference`` (share of a disfavoured form, e.g. 你 where 您 is due)."""

from __future__ import annotations

from pydantic import Field

from ..context import CallContext, Evidence, Hit, Outcome
from ..spec import AtLeast, MatchMode, Phrase, PhraseSearch, Scope, Window
from .registry import register


class PhraseParams(PhraseSearch):
    match: MatchMode = "any"
    window: Window | None = None
    negate: bool = False
    """Invert: pass when the phrases are *not* found as required."""


def _needed(match: MatchMode, n: int) -> int:
    if isinstance(match, AtLeast):
        return min(match.at_least, n)
    return 1 if match == "any" else n


def _hit_evidence(h: Hit, expected: str) -> Evidence:
    return Evidence(h.start, h.end, h.speaker, h.text, round(h.score, 2), expected)


@register("phrase", PhraseParams)
def phrase(ctx: CallContext, scope: Scope, p: PhraseParams) -> Outcome:
    """Required wording: enough of the phrase elements said by the scope inside the window.

    N/A when the scope says nothing in the window (no agent speech, say): the rule cannot be
    judged, which is different from the agent leaving the greeting out."""
    indices, span = ctx.windowed(scope, p.window)
    if not indices:
        return Outcome("na", note="no speech of the scope in the window")
    found: dict[str, list[Hit]] = {}
    for element in p.phrases:
        hits = ctx.find(element, indices, p, span)
        if hits:
            found[element.label] = hits
    need = _needed(p.match, len(p.phrases))
    ok = len(found) >= need
    first = ctx.utterance(indices[0])
    last = ctx.utterance(indices[-1])
    evidence = [_hit_evidence(hits[0], label) for label, hits in found.items()]
    missing = [e.label for e in p.phrases if e.label not in found]
    summary = Evidence(
        first.start,
        last.end,
        first.speaker,
        " / ".join(ctx.utterance(i).text for i in indices[:3]),
        len(found),
        f"at least {need} of {len(p.phrases)}" + (f"; missing: {', '.join(missing)}" if missing else ""),
    )
    if p.negate:
        ok = not ok
    return Outcome("pass" if ok else "fail", evidence + ([summary] if not ok or not evidence else []))


class AbsentParams(PhraseSearch):
    window: Window | None = None


@register("absent", AbsentParams)
def absent(ctx: CallContext, scope: Scope, p: AbsentParams) -> Outcome:
    """Forbidden wording anywhere in scope: each hit is a piece of evidence; none → pass."""
    indices, span = ctx.windowed(scope, p.window)
    if not indices:
        return Outcome("na", note="no speech of the scope")
    evidence: list[Evidence] = []
    for element in p.phrases:
        for h in ctx.find(element, indices, p, span):
            evidence.append(Evidence(h.start, h.end, h.speaker, ctx.utterance(h.utterance).text, h.text, f"not: {element.label}"))
    evidence.sort(key=lambda e: e.start)
    return Outcome("fail" if evidence else "pass", evidence)


class PreferenceParams(PhraseSearch):
    """``phrases`` are the preferred forms."""

    avoid: list[Phrase] = Field(min_length=1)
    """Disfavoured forms (same syntax as phrases)."""
    max_avoid_share: float = Field(default=0.5, ge=0, le=1)
    min_count: int = Field(default=1, ge=1)
    window: Window | None = None


@register("preference", PreferenceParams)
def preference(ctx: CallContext, scope: Scope, p: PreferenceParams) -> Outcome:
    """Share of disfavoured forms among preferred + disfavoured (你 vs 您 when addressing the
    customer).  One slip in a polite call does not fail it; a call addressed mostly with 你 does.
    N/A when fewer than ``min_count`` forms of either kind occur."""
    indices, span = ctx.windowed(scope, p.window)
    good = [h for e in p.phrases for h in ctx.find(e, indices, p, span)]
    bad = [h for e in p.avoid for h in ctx.find(e, indices, p, span)]
    total = len(good) + len(bad)
    if total < p.min_count:
        return Outcome("na", note="too few forms to judge")
    share = len(bad) / total
    evidence = [Evidence(h.start, h.end, h.speaker, ctx.utterance(h.utterance).text, h.text, "preferred form") for h in bad]
    first = ctx.utterance(indices[0]) if indices else None
    evidence.append(
        Evidence(first.start if first else 0.0, ctx.utterance(indices[-1]).end if indices else 0.0, first.speaker if first else None,
                 f"{len(bad)} disfavoured vs {len(good)} preferred", round(share, 2), f"share ≤ {p.max_avoid_share}")
    )
    return Outcome("fail" if share > p.max_avoid_share else "pass", evidence)
