"""Cutting a coaching clip out of a call recording: the evidence plus a few seconds either side,
so the trainee hears what led up to the moment and how the customer reacted.

Clips are written as 16-bit WAV at the pipeline's 16 kHz with the recording's channels kept: every
browser's ``<audio>`` plays it, and a stereo call still lets the trainer hear agent and customer
apart.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf

from pipelines.stages.audio import SAMPLE_RATE, decode_audio

log = logging.getLogger(__name__)

CONTEXT_S = 3.0
"""Seconds of audio kept before and after the evidence."""
MAX_EVIDENCE_S = 60.0
"""Whole-call evidence (loudness over the call) is cut to its first minute: a clip is for listening."""
NO_EVIDENCE_S = 20.0
"""Without evidence (a rule passed silently) the clip is the call's opening."""


@dataclass(frozen=True)
class ClipWindow:
    """Where a clip sits in the call, in seconds of the original recording."""

    start: float
    end: float

    @property
    def duration(self) -> float:
        return self.end - self.start


def clip_window(evidence_start: float | None, evidence_end: float | None, call_duration: float,
                context_s: float = CONTEXT_S) -> ClipWindow:
    """The span to cut: evidence ± ``context_s``, clamped to ``[0, call_duration]``.

    Without evidence times, the first ``NO_EVIDENCE_S`` seconds of the call."""
    if evidence_start is None:
        return ClipWindow(0.0, round(min(NO_EVIDENCE_S, call_duration), 3))
    end = evidence_end if evidence_end is not None and evidence_end >= evidence_start else evidence_start
    end = min(end, evidence_start + MAX_EVIDENCE_S)
    start = max(0.0, evidence_start - context_s)
    stop = min(call_duration, end + context_s)
    if stop <= start:  # evidence beyond the end of the audio (a stale store): keep the tail
        start, stop = max(0.0, call_duration - 2 * context_s), call_duration
    return ClipWindow(round(start, 3), round(stop, 3))


BEEP_HZ = 1000.0
BEEP_DBFS = -20.0
BEEP_MARGIN_S = 0.15
"""Beeped this much either side of the words' times: word timestamps are approximate."""


def beep_over(samples, spans: list[tuple[float, float]], offset_s: float) -> None:
    """Replace the audio of ``spans`` (seconds of the recording) with a 1 kHz tone, in place, on
    every channel: the number is gone and the listener hears that something was taken out."""
    import numpy as np

    amplitude = 10 ** (BEEP_DBFS / 20) * np.sqrt(2)
    for start, end in spans:
        a = max(0, int(round((start - BEEP_MARGIN_S - offset_s) * SAMPLE_RATE)))
        b = min(samples.shape[1], int(round((end + BEEP_MARGIN_S - offset_s) * SAMPLE_RATE)))
        if b <= a:
            continue
        t = np.arange(b - a) / SAMPLE_RATE
        samples[:, a:b] = (amplitude * np.sin(2 * np.pi * BEEP_HZ * t)).astype(samples.dtype)


def cut_clip(source: str | Path, out_path: Path, evidence_start: float | None, evidence_end: float | None,
             context_s: float = CONTEXT_S, beep: list[tuple[float, float]] | None = None) -> ClipWindow:
    """Decode ``source`` and write the clip around the evidence to ``out_path`` (WAV, 16 kHz), with
    the ``beep`` spans (seconds of the recording: where personal numbers are spoken) beeped out.

    Raises :class:`qa_rules.records.BadAudioError` when the recording is gone or unreadable."""
    audio = decode_audio(source)
    window = clip_window(evidence_start, evidence_end, audio.duration_s, context_s)
    first, last = int(round(window.start * SAMPLE_RATE)), int(round(window.end * SAMPLE_RATE))
    piece = audio.samples[:, first:last].copy()
    if beep:
        beep_over(piece, [(a, b) for a, b in beep if b > window.start and a < window.end], window.start)
    samples = piece.T  # soundfile wants (frames, channels)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(out_path), samples, SAMPLE_RATE, subtype="PCM_16")
    log.info("clip %s: %.1f–%.1f s of %s", out_path.name, window.start, window.end, Path(source).name)
    return window
