"""Whisper transcription through faster-whisper: audio samples in, timed words out.

One façade, :class:`Transcriber`, loads the CTranslate2 model once per worker process and turns a
16 kHz float32 signal into :class:`RecognisedSegment` records with word timestamps.  It knows
nothing of calls, speakers or QA.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from models.device import DeviceChoice
from models.errors import DeviceOutOfMemoryError, ModelUnavailableError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecognisedWord:
    start: float
    end: float
    text: str
    prob: float


@dataclass(frozen=True)
class RecognisedSegment:
    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    words: list[RecognisedWord] = field(default_factory=list)


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

    def as_dict(self) -> dict[str, object]:
        return dict(self.__dict__)


class Transcriber:
    """A loaded Whisper model.  Build once per worker; call :meth:`transcribe` per channel."""

    def __init__(self, model_dir: Path, device: DeviceChoice, options: TranscriptionOptions | None = None):
        from faster_whisper import WhisperModel

        self.model_dir = Path(model_dir)
        self.device = device
        self.options = options or TranscriptionOptions()
        try:
            self._model = WhisperModel(
                str(self.model_dir),
                device=device.device,
                device_index=device.device_index,
                compute_type=device.compute_type,
                cpu_threads=device.threads if device.device == "cpu" else 0,
                local_files_only=True,
            )
        except Exception as exc:  # noqa: BLE001 - any load failure gets the same actionable line
            raise ModelUnavailableError(
                f"Whisper model at {self.model_dir} failed to load ({type(exc).__name__}: {exc})",
                "run `callqa models prepare` again, or point --asr-model at a valid CTranslate2 folder",
            ) from exc

    @property
    def name(self) -> str:
        return self.model_dir.name

    def detect_language(self, audio: np.ndarray) -> tuple[str, float]:
        """Language of the speech in ``audio`` (VAD-trimmed so hold silence does not vote)."""
        language, probability, _ = self._model.detect_language(
            audio, vad_filter=True, language_detection_segments=2
        )
        return language, float(probability)

    def transcribe(self, audio: np.ndarray, language: str) -> list[RecognisedSegment]:
        """Transcribe a mono 16 kHz signal in ``language`` with word timestamps."""
        try:
            return self._transcribe(audio, language)
        except RuntimeError as exc:
            if "out of memory" in str(exc).lower():  # CTranslate2 has no exception type of its own
                raise DeviceOutOfMemoryError(str(exc)) from exc
            raise

    def _transcribe(self, audio: np.ndarray, language: str) -> list[RecognisedSegment]:
        opts = self.options
        segments, _info = self._model.transcribe(
            audio,
            language=language,
            task="transcribe",
            beam_size=opts.beam_size,
            word_timestamps=True,
            vad_filter=opts.vad_filter,
            vad_parameters={"min_silence_duration_ms": opts.vad_min_silence_ms, "threshold": opts.vad_threshold},
            condition_on_previous_text=opts.condition_on_previous_text,
            initial_prompt=opts.initial_prompt,
        )
        out: list[RecognisedSegment] = []
        for seg in segments:
            words = [
                RecognisedWord(float(w.start), float(w.end), w.word, float(w.probability))
                for w in (seg.words or [])
            ]
            out.append(
                RecognisedSegment(
                    float(seg.start), float(seg.end), seg.text, float(seg.avg_logprob),
                    float(seg.no_speech_prob), words,
                )
            )
        return out
