"""Content-keyed cache of the expensive half of the chain (conversation + measures).

The key is the audio's content hash plus everything that changes the analysis: the Whisper model,
decoding and diarization parameters, the forced language or channel map, and the record schema.
File names and timestamps play no part, so a renamed or re-delivered recording is not transcribed
again, and a rulebook change re-scores from here without touching audio or models.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from qa_rules.records import CONVERSATION_SCHEMA_VERSION, MEASURES_SCHEMA_VERSION, Conversation, Measures, record_json
from qa_rules.files import write_text_atomically

ANALYSIS_VERSION = 2
"""Bump when the conversation or measures code changes its output for the same inputs."""


def audio_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def analysis_key(audio_hash: str, settings, model_dir: Path, channel_map: str | None) -> str:
    model_bin = Path(model_dir) / "model.bin"
    parts = {
        "audio": audio_hash,
        "asr_model": Path(model_dir).name,
        "asr_model_bytes": model_bin.stat().st_size if model_bin.exists() else None,
        "transcription": settings.transcription_options().as_dict(),
        "diarization": settings.diarization_options().as_dict(),
        "segmentation": str(settings.segmentation or "store"),
        "embedding": str(settings.embedding or "store"),
        "language": settings.language,
        "channel_map": channel_map or settings.agent_channel,
        "versions": [ANALYSIS_VERSION, CONVERSATION_SCHEMA_VERSION, MEASURES_SCHEMA_VERSION],
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:40]


class AnalysisCache:
    def __init__(self, root: Path):
        self.root = Path(root)

    def _dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def get(self, key: str) -> tuple[Conversation, Measures] | None:
        folder = self._dir(key)
        conversation, measures = folder / "conversation.json", folder / "measures.json"
        if not (conversation.is_file() and measures.is_file()):
            return None
        try:
            return Conversation.read(conversation), Measures.read(measures)
        except ValueError:  # a damaged entry is recomputed, not trusted
            return None

    def put(self, key: str, conversation: Conversation, measures: Measures) -> None:
        folder = self._dir(key)
        # measures first: an entry counts only once its conversation is there too
        write_text_atomically(folder / "measures.json", record_json(measures))
        write_text_atomically(folder / "conversation.json", conversation.to_json())
