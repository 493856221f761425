"""Timed scripts: ``steps`` (an ordered script with pauses between the steps and before the
hang-up, e.g. the silent-caller script: greeting → ~5 s → greeting again → ~5 s → no-voice line
→ ~5 s → hang up) and ``hang_up`` (when the agent ends the call because of the situation, the
closing line comes first and the agent waits before releasing: 「不可以直接挂机」).

Pauses are measured from voice activity (`Measures.silences`: nobody heard), and the hang-up from
the end of the last voice to the end of the recording, never from ASR segment spans, which
stretch across silences."""

from __future__ import annotations

from pydantic import Field, model_validator

from ..context import CallContext, Evidence, Hit, Outcome
from ..spec import Phrase, PhraseSearch, Scope, Strict
from .registry import register


class Range(Strict):
    min: float | None = Field(default=None, ge=0)
    max: float | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _ordered(self) -> "Range":
        if self.min is None and self.max is None:
            raise ValueError("a range needs min, max or both")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self

    def holds(self, x: float) -> bool:
        return (self.min is None or x >= self.min) and (self.max is None or x <= self.max)

    def text(self) -> str:
        if self.max is None:
            return f"≥ {self.min:g} s"
        if self.min is None:
            return f"≤ {self.max:g} s"
        return f"{self.min:g}–{self.max:g} s"


class Step(Strict):
    name: str
    phrases: list[Phrase] = Field(min_length=1)
    """Any of these (one step is one thing said)."""
    gap_s: Range | None = None
    """Silence between the previous step and this one."""


class StepsParams(Strict):
    steps: list[Step] = Field(min_length=1)
    hang_up_s: Range | None = None
    """Time from the end of the last voice to the end of the call, after the last step."""
    similarity: float = Field(default=0.85, gt=0, le=1)
    pinyin: bool = True


SAME_TURN_PAUSE_S = 1.0


def silence_between(ctx: CallContext, start: float, end: float) -> float:
    """Seconds of silence (nobody heard) between two times."""
    return sum(max(min(s.end, end) - max(s.start, start), 0.0) for s in ctx.measures.silences)


def last_voice_end(ctx: CallContext) -> float:
    ends = [t.end for t in ctx.conversation.turns] or [u.end for u in ctx.conversation.utterances]
    return max(ends) if ends else 0.0


@register("steps", StepsParams)
def steps(ctx: CallContext, scope: Scope, p: StepsParams) -> Outcome:
    """Each step in order (a later step starts after a pause of at least 1 s), with the
    silence before it inside ``gap_s``; then the wait before the hang-up inside ``hang_up_s``.
    The first step missing, out of order or off in time fails the rule, with the measured gap."""
    idx = ctx.indices(scope)
    if not idx:
        return Outcome("na", note=f"no {scope} speech")
    evidence: list[Evidence] = []
    previous: Hit | None = None
    ok = True
    for n, step in enumerate(p.steps, 1):
        hits = sorted((h for e in step.phrases for h in ctx.find(e, idx, p)), key=lambda h: h.start)
        if previous is not None:
            # a later step comes after a real pause: words without one are the previous step's speech
            # (the greeting's own 您好…有什么可以帮您, however ASR or diarization cut it into turns)
            hits = [h for h in hits if h.start >= previous.end and silence_between(ctx, previous.end, h.start) >= SAME_TURN_PAUSE_S]
        if not hits:
            anchor = previous.end if previous else 0.0
            evidence.append(Evidence(anchor, anchor, None, None, None, f"step {n} «{step.name}» not said"
                                     + (" after the previous step" if previous else "")))
            ok = False
            break
        hit = hits[0]
        label = f"step {n} «{step.name}»"
        if previous is not None and step.gap_s is not None:
            gap = silence_between(ctx, previous.end, hit.start)
            good = step.gap_s.holds(gap)
            evidence.append(Evidence(hit.start, hit.end, hit.speaker, ctx.utterance(hit.utterance).text, round(gap, 2),
                                     f"{label} after a silence of {step.gap_s.text()}"))
            if not good:
                ok = False
                break
        else:
            evidence.append(Evidence(hit.start, hit.end, hit.speaker, ctx.utterance(hit.utterance).text, hit.text, label))
        previous = hit
    if ok and p.hang_up_s is not None and previous is not None:
        end = ctx.conversation.duration_s
        wait = end - max(last_voice_end(ctx), previous.end)
        ok = p.hang_up_s.holds(wait)
        evidence.append(Evidence(previous.end, end, None, None, round(wait, 2), f"hang up {p.hang_up_s.text()} after the last words"))
    return Outcome("pass" if ok else "fail", evidence)


class HangUpParams(PhraseSearch):
    within_s: float = Field(default=30.0, gt=0)
    """The rule applies when the call ends at most this long after the (last) occurrence: the
    agent ended the call because of the situation.  A call that goes on is N/A here."""
    min_wait_s: float = Field(default=4.0, ge=0)
    """After the closing line, the agent waits this long before releasing (seed: 5 s)."""
    unless_answered: bool = True
    """N/A when the customer spoke again after the last occurrence, in a turn that is not itself
    one (heard fine after 请您大声一点): the problem was solved, the call did not end over it."""


@register("hang_up", HangUpParams)
def hang_up(ctx: CallContext, scope: Scope, p: HangUpParams) -> Outcome:
    """Ending the call over the situation: the closing line (换一部电话再打来… / 再见) is said
    after the situation began, and the recording goes on ``min_wait_s`` after the last voice."""
    if not ctx.trigger:
        return Outcome("na", note="the rule's situation did not occur")
    end = ctx.conversation.duration_s
    last = ctx.trigger[-1]
    if end - last.end > p.within_s:
        return Outcome("na", note=f"the call went on for {end - last.end:.0f} s after the situation: no hang-up over it")
    if p.unless_answered:
        answered = [i for i in ctx.indices("customer") if ctx.utterance(i).start >= last.end - 0.05
                    and not any(o.start - 0.3 <= ctx.utterance(i).start <= o.end + 0.3 for o in ctx.trigger)]
        if answered:
            u = ctx.utterance(answered[0])
            return Outcome("na", [Evidence(u.start, u.end, u.speaker, u.text, None, "the customer was heard again: no hang-up over the situation")],
                           note="the customer was heard again after the situation")
    first = ctx.trigger[0]
    idx = [i for i in ctx.indices(scope) if ctx.utterance(i).end >= first.start]
    hits = sorted((h for e in p.phrases for h in ctx.find(e, idx, p)), key=lambda h: h.start)
    wait = end - last_voice_end(ctx)
    evidence = [Evidence(first.start, end, first.speaker, first.text, None, f"{first.what} → the call ends {end - last.end:.1f} s later")]
    if not hits:
        evidence.append(Evidence(end, end, None, None, None, "closing line before hanging up: " + ", ".join(e.label for e in p.phrases)
                                 + "; none said (不可以直接挂机)"))
        return Outcome("fail", evidence)
    h = hits[-1]
    evidence.append(Evidence(h.start, h.end, h.speaker, ctx.utterance(h.utterance).text, round(wait, 2),
                             f"wait ≥ {p.min_wait_s:g} s after the last words before hanging up"))
    return Outcome("pass" if wait >= p.min_wait_s else "fail", evidence)
