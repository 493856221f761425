"""The settings of the two speech models that change what they produce — part of every analysis's
cache key — apart from the models themselves: the batch reads them (:mod:`pipelines.settings`) even
when no model is loaded, and this module imports nothing heavy (numpy, torch) for it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class TranscriptionOptions:
    """Decoding settings that change the output (and therefore belong in a cache key)."""

    beam_size: int = 5
    vad_filter: bool = True
    """Silero VAD before decoding: without it Whisper drops speech that follows a long hold."""
    vad_min_silence_ms: int = 500
    vad_threshold: float = 0.35
    """Below Silero's 0.5 default: keeps quiet agents and soft word endings (measured: fewer
    dropped syllables on the Mandarin reference clips)."""
    condition_on_previous_text: bool = False
    """Off: one misheard turn must not contaminate the next speaker's text."""
    initial_prompt: str | None = None
    mode: Literal["batched", "sequential"] = "batched"
    """``batched``: all speech chunks of a call's signals decoded together (faster); ``sequential``:
    faster-whisper's one-window-at-a-time decoding with temperature fallback."""
    batch_size: int = 8
    """Chunks decoded at once in batched mode: speed and memory only — each chunk is decoded on its
    own whatever its neighbours, so it stays out of :meth:`as_dict` (the cache key)."""

    def as_dict(self) -> dict[str, object]:
        out = dict(self.__dict__)
        del out["batch_size"]
        return out


@dataclass(frozen=True)
class DiarizationOptions:
    num_speakers: int | None = None
    """Exact speaker count; ``None`` lets clustering decide between min and max."""
    min_speakers: int | None = 2
    max_speakers: int | None = 3
    clustering_threshold: float = 0.7
    """Cosine-distance threshold of agglomerative clustering when the count is free."""
    min_cluster_size: int = 12
    min_duration_off: float = 0.0
    batch_size: int = 32
    segmentation_step: float = 0.1
    """Step of the 10 s segmentation window, as a share of the window: a chunk every second
    (pyannote's default; the segmentation of overlapping chunks is averaged, so a finer step
    places turn edges better)."""
    embedding_stride: int = 2
    """Embed every ``embedding_stride``-th chunk's speakers with CAM++, the others only where they
    match no speaker of those chunks (:mod:`models.speaker_tracking`); 1 embeds every chunk, as
    pyannote does.  CAM++ is nearly all of diarization's time.  Measured
    (``bench/bench_diarization.py``, 570 s of AMI clips, pyannote's telephone sample and the mono
    dev calls): at step 0.1, stride 2 costs 0.14 CPU s per audio s against 0.22 for stride 1, with
    DER no worse on any file (pooled 0.040 against 0.043); stride 3, or a 0.2 step, cost ≈ 0.11
    but lose accuracy (pooled 0.050 / 0.045) — README, "Measured here"."""

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)
