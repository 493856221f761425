"""Long recordings cut into windows at their quietest moments, so that memory stays bounded.

faster-whisper's sequential ``transcribe`` computes the log-mel features of the whole (VAD-trimmed)
signal at once: for one hour-long channel that is over a gigabyte of short-time Fourier transform
in flight.  Cutting the signal into windows of at most ``window_s`` — each cut placed in the
quietest stretch of the last ``search_s`` before the limit, a pause between words on a phone line —
and transcribing window by window keeps that cost to one window's, whatever the call's length.
Calls shorter than a window are not cut at all.
"""

from __future__ import annotations

import numpy as np

WINDOW_S = 600.0
"""Ten minutes: no ordinary call is cut, and one window's features stay near 200 MB."""
SEARCH_S = 60.0
"""The cut is placed in the quietest moment of the minute before the window's limit."""
QUIET_FRAME_S = 0.5


def window_bounds(signal: np.ndarray, sample_rate: int, window_s: float = WINDOW_S,
                  search_s: float = SEARCH_S) -> list[tuple[int, int]]:
    """``(start, end)`` sample indices of consecutive windows covering ``signal``, none longer than
    ``window_s``; one window when the signal is no longer than that."""
    n = len(signal)
    window, search = int(window_s * sample_rate), int(min(search_s, window_s / 2) * sample_rate)
    frame = max(1, int(QUIET_FRAME_S * sample_rate))
    bounds: list[tuple[int, int]] = []
    start = 0
    while n - start > window:
        limit = start + window
        region = signal[limit - search : limit]
        frames = len(region) // frame
        energy = np.square(region[: frames * frame].reshape(frames, frame), dtype=np.float64).mean(axis=1)
        quietest = int(np.argmin(energy))
        cut = limit - search + quietest * frame + frame // 2
        bounds.append((start, cut))
        start = cut
    bounds.append((start, n))
    return bounds
