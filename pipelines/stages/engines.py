"""Speech models loaded once per worker process and shared by every call it handles."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from importlib.metadata import PackageNotFoundError, version

from models.device import DeviceChoice, choose_device
from models.diarization import Diarizer
from models.model_store import ModelStore
from models.transcription import Transcriber
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


@dataclass
class SpeechEngines:
    """The transcriber, and the diarizer loaded on first need (stereo calls never need it)."""

    settings: Settings
    store: ModelStore
    device: DeviceChoice
    transcriber: Transcriber
    _diarizer: Diarizer | None = field(default=None, repr=False)
    _voice_embedder: object | None = field(default=None, repr=False)

    @classmethod
    def load(cls, settings: Settings) -> "SpeechEngines":
        store = ModelStore(settings.model_store)
        device = choose_device(settings.device, settings.compute_type, settings.threads)
        transcriber = Transcriber(store.whisper(settings.asr_model), device, settings.transcription_options())
        # Fail now, not on the first mono call, when the diarization weights are missing.
        store.segmentation(settings.segmentation)
        store.speaker_embedding(settings.embedding)
        return cls(settings, store, device, transcriber)

    @property
    def voice_embedder(self):
        """CAM++ embeddings for comparing voices on one channel (transfers); loaded on first need."""
        if self._voice_embedder is None:
            from models.speaker_embedding import VoiceEmbedder

            self._voice_embedder = VoiceEmbedder(
                self.store.speaker_embedding(self.settings.embedding), str(self.device.torch_device())
            )
        return self._voice_embedder

    @property
    def diarizer(self) -> Diarizer:
        if self._diarizer is None:
            self._diarizer = Diarizer(
                self.store.segmentation(self.settings.segmentation),
                self.store.speaker_embedding(self.settings.embedding),
                self.device,
                self.settings.diarization_options(),
            )
        return self._diarizer
