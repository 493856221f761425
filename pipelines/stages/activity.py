"""Voice activity of one channel from its own energy, relative to that channel's own levels.

Whisper's segment times can stretch across a long silence, so silences and holds are found from the
audio itself.  A fixed threshold misses a quiet agent, so the threshold sits between the channel's
noise floor and its loud speech level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FRAME_S = 0.03


@dataclass(frozen=True)
class ActivityOptions:
    margin_over_floor_db: float = 12.0
    """Speech is at least this far above the channel's noise floor (10th percentile of frames)."""
    below_peak_db: float = 35.0
    """…and no further than this below its loud speech (98th percentile)."""
    min_speech_s: float = 0.12
    min_gap_s: float = 0.35
    """Pauses shorter than this inside speech do not split a turn."""


def frame_levels_db(signal: np.ndarray, sample_rate: int, frame_s: float = FRAME_S) -> np.ndarray:
    hop = int(sample_rate * frame_s)
    n = len(signal) // hop
    if n == 0:
        return np.zeros(0)
    frames = signal[: n * hop].reshape(n, hop).astype(np.float64)
    rms = np.sqrt(np.mean(frames**2, axis=1))
    return 20 * np.log10(np.maximum(rms, 1e-10))


def voice_activity(
    signal: np.ndarray, sample_rate: int, options: ActivityOptions | None = None
) -> list[tuple[float, float]]:
    """Spans ``(start, end)`` in seconds where this channel carries speech."""
    opts = options or ActivityOptions()
    levels = frame_levels_db(signal, sample_rate)
    if levels.size == 0:
        return []
    floor = float(np.percentile(levels, 10))
    loud = float(np.percentile(levels, 98))
    if loud - floor < opts.margin_over_floor_db:  # a silent channel: nothing stands out
        return []
    threshold = max(floor + opts.margin_over_floor_db, loud - opts.below_peak_db)
    active = levels > threshold
    spans: list[list[float]] = []
    start = None
    for i, on in enumerate(np.append(active, False)):
        if on and start is None:
            start = i
        elif not on and start is not None:
            spans.append([start * FRAME_S, i * FRAME_S])
            start = None
    merged: list[list[float]] = []
    for span in spans:
        if merged and span[0] - merged[-1][1] < opts.min_gap_s:
            merged[-1][1] = span[1]
        else:
            merged.append(span)
    return [(round(a, 3), round(b, 3)) for a, b in merged if b - a >= opts.min_speech_s]
