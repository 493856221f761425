"""Speech models loaded once per worker process and shared by every call it handles."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field, replace
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from models.device import DeviceChoice, choose_device
from models.diarization import DiarizationOptions, Diarizer
from models.model_store import ModelStore
from models.transcription import Transcriber, TranscriptionOptions
from pipelines.settings import Settings

log = logging.getLogger(__name__)

VERSIONED_PACKAGES = ("faster-whisper", "ctranslate2", "pyannote.audio", "torch", "callqa")


def package_versions() -> dict[str, str]:
    out = {}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


@dataclass(frozen=True)
class ModelSettings:
    """The settings that decide which models are loaded and how they decode — nothing else.

    Loaded engines are cached under this key: a change of language, channel map, duration limit or
    redaction must reuse the models already in memory, not load a second copy of them."""

    model_store: Path
    asr_model: str
    device: str
    compute_type: str | None
    threads: int | None
    transcription: TranscriptionOptions
    diarization: DiarizationOptions
    segmentation: Path | None
    embedding: Path | None

    @classmethod
    def of(cls, settings: Settings) -> "ModelSettings":
        return cls(
            model_store=Path(settings.model_store), asr_model=settings.asr_model, device=settings.device,
            compute_type=settings.compute_type, threads=settings.threads,
            transcription=settings.transcription_options(), diarization=settings.diarization_options(),
            segmentation=settings.segmentation, embedding=settings.embedding,
        )


@dataclass
class SpeechEngines:
    """The transcriber, and the diarizer loaded on first need (stereo calls never need it)."""

    models: ModelSettings
    store: ModelStore
    device: DeviceChoice
    transcriber: Transcriber
    _diarizer: Diarizer | None = field(default=None, repr=False)
    _voice_embedder: object | None = field(default=None, repr=False)
    _lazy_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    """Calls in flight at once (the flow's threads) must not load the lazy models twice."""

    @classmethod
    def load(cls, settings: Settings | ModelSettings) -> "SpeechEngines":
        models = settings if isinstance(settings, ModelSettings) else ModelSettings.of(settings)
        store = ModelStore(models.model_store)
        device = choose_device(models.device, models.compute_type, models.threads)
        transcriber = Transcriber(store.whisper(models.asr_model), device, models.transcription)
        # Fail now, not on the first mono call, when the diarization weights are missing.
        store.segmentation(models.segmentation)
        store.speaker_embedding(models.embedding)
        return cls(models, store, device, transcriber)

    @property
    def voice_embedder(self):
        """CAM++ embeddings for comparing voices on one channel (transfers); loaded on first need."""
        with self._lazy_lock:
            if self._voice_embedder is None:
                from models.speaker_embedding import VoiceEmbedder

                self._voice_embedder = VoiceEmbedder(
                    self.store.speaker_embedding(self.models.embedding), str(self.device.torch_device())
                )
            return self._voice_embedder

    @property
    def diarizer(self) -> Diarizer:
        with self._lazy_lock:
            if self._diarizer is None:
                self._diarizer = Diarizer(
                    self.store.segmentation(self.models.segmentation),
                    self.store.speaker_embedding(self.models.embedding),
                    self.device,
                    self.models.diarization,
                )
            return self._diarizer

    def shrink_batches(self) -> None:
        """After the device ran out of memory: half the batched transcription's chunks per batch,
        and smaller diarization batches (only when the diarizer is loaded — loading it here would
        cost the memory being freed), for the retry."""
        options = self.transcriber.options
        if options.batch_size > 1:
            self.transcriber = self.transcriber.with_options(replace(options, batch_size=options.batch_size // 2))
        if self._diarizer is not None:
            self._diarizer.halve_batches()
