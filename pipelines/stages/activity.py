"""Voice activity of one channel from its own energy, relative to that channel's own levels.

Whisper's segment times can stretch across a long silence, so silences and holds are found from the
audio itself.  A fixed threshold misses a quiet agent, so the threshold sits between the channel's
noise floor and its loud speech level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pyannote.core import Segment, Timeline

from pipelines.stages.audio import frame_levels_dbfs

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


def voice_activity(
    signal: np.ndarray, sample_rate: int, options: ActivityOptions | None = None
) -> list[tuple[float, float]]:
    """Spans ``(start, end)`` in seconds where this channel carries speech."""
    opts = options or ActivityOptions()
    levels = frame_levels_dbfs(signal, int(sample_rate * FRAME_S))
    if levels.size == 0:
        return []
    floor = float(np.percentile(levels, 10))
    loud = float(np.percentile(levels, 98))
    if loud - floor < opts.margin_over_floor_db:  # a silent channel: nothing stands out
        return []
    threshold = max(floor + opts.margin_over_floor_db, loud - opts.below_peak_db)
    active = levels > threshold
    # Runs of active frames, then pauses shorter than min_gap_s closed (support with a collar: runs
    # of frames never touch, so only the collar joins them; gaps of exactly min_gap_s stay gaps).
    edges = np.flatnonzero(np.diff(np.concatenate(([False], active, [False])).astype(np.int8)))
    runs = Timeline([Segment(int(a) * FRAME_S, int(b) * FRAME_S) for a, b in zip(edges[::2], edges[1::2])])
    spans = runs.support(collar=opts.min_gap_s)
    return [(round(s.start, 3), round(s.end, 3)) for s in spans if s.end - s.start >= opts.min_speech_s]
