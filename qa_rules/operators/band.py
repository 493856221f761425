"""``band``: an acoustic or rate measure of the scope's speech must stay inside a band.

Judged as the share of *voiced* time outside the band (utterances weighted by ``voiced_s``), so
one short exclamation does not fail a call while a whole call spoken too loud does.  Optionally
the rise of the measure over the call (median of the last third minus the first third): a voice
that climbs by more than ``max_rise`` is a raised voice even if it stays in the band."""

from __future__ import annotations

from statistics import median
from typing import Literal

from pydantic import Field, model_validator

from ..context import CallContext, Evidence, Outcome
from ..spec import Scope, Strict
from .registry import register

Measure = Literal["loudness_dbfs", "loudness_lufs", "rate", "pitch_range_st", "pitch_median_hz", "clipping_ratio", "peak_dbfs"]


class BandParams(Strict):
    measure: Measure
    min: float | None = None
    max: float | None = None
    unit: Literal["chars_per_s", "words_per_min"] | None = None
    """For ``rate``: only utterances measured in this unit count (a zh rulebook on an English
    call is N/A, not a false failure)."""
    max_share_outside: float = Field(default=0.2, ge=0, le=1)
    max_rise: float | None = Field(default=None, gt=0)
    min_voiced_s: float = Field(default=2.0, ge=0)
    """Less voiced speech than this in scope → N/A (too little to judge)."""
    min_utterance_voiced_s: float = Field(default=0.5, ge=0)
    """Shorter utterances are left out: a rate or level over 0.3 s is noise."""

    @model_validator(mode="after")
    def _something_to_check(self) -> "BandParams":
        if self.min is None and self.max is None and self.max_rise is None:
            raise ValueError("a band needs min, max or max_rise")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self


def _fmt(p: BandParams) -> str:
    lo = "-inf" if p.min is None else f"{p.min:g}"
    hi = "inf" if p.max is None else f"{p.max:g}"
    return f"{p.measure} in [{lo}, {hi}]"


@register("band", BandParams)
def band(ctx: CallContext, scope: Scope, p: BandParams) -> Outcome:
    """Share of voiced time outside [min, max] ≤ ``max_share_outside``; rise ≤ ``max_rise``."""
    rows = []
    for m in sorted(ctx.measures.utterances, key=lambda m: m.start):
        if scope != "any" and m.role != scope:
            continue
        if p.measure == "rate" and p.unit is not None and m.rate_unit != p.unit:
            continue
        value = getattr(m, p.measure)
        if value is None or m.voiced_s < p.min_utterance_voiced_s:
            continue
        rows.append((m, float(value)))
    voiced = sum(m.voiced_s for m, _ in rows)
    if not rows or voiced < p.min_voiced_s:
        return Outcome("na", note=f"{voiced:.1f} s of voiced speech with {p.measure}")
    speaker_of = {i: u.speaker for i, u in enumerate(ctx.conversation.utterances)}
    text_of = {i: u.text for i, u in enumerate(ctx.conversation.utterances)}
    outside = [(m, v) for m, v in rows if (p.min is not None and v < p.min) or (p.max is not None and v > p.max)]
    share = sum(m.voiced_s for m, _ in outside) / voiced
    evidence = [
        Evidence(m.start, m.end, speaker_of.get(m.index, m.speaker), text_of.get(m.index), round(v, 3), _fmt(p)) for m, v in outside
    ]
    failed = (p.min is not None or p.max is not None) and share > p.max_share_outside
    evidence.append(
        Evidence(rows[0][0].start, rows[-1][0].end, rows[0][0].speaker, f"share of voiced time outside the band ({len(outside)}/{len(rows)} utterances)",
                 round(share, 3), f"≤ {p.max_share_outside:g}")
    )
    if p.max_rise is not None and len(rows) >= 3:
        third = max(len(rows) // 3, 1)
        rise = median(v for _, v in rows[-third:]) - median(v for _, v in rows[:third])
        evidence.append(Evidence(rows[0][0].start, rows[-1][0].end, rows[0][0].speaker, f"rise of {p.measure} over the call (last third − first third)",
                                 round(rise, 2), f"≤ {p.max_rise:g}"))
        failed |= rise > p.max_rise
    return Outcome("fail" if failed else "pass", evidence)
