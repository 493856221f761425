"""Content-keyed cache of the expensive half of the chain (conversation + measures).

The key is the audio's content hash plus everything that changes the analysis: the Whisper model,
decoding and diarization parameters, the forced language or channel map, and the record schema.
File names and timestamps play no part, so a renamed or re-delivered recording is not transcribed
again, and a rulebook change re-scores from here without touching audio or models.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path

from qa_rules.records import CONVERSATION_SCHEMA_VERSION, MEASURES_SCHEMA_VERSION, Conversation, Measures, record_json
from qa_rules.files import write_text_atomically

log = logging.getLogger(__name__)

ANALYSIS_VERSION = 2
"""Bump when the conversation or measures code changes its output for the same inputs."""


def audio_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with Path(path).open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class AudioHashes:
    """Each recording's content hash, remembered by the file's identity (real path, device, inode,
    size, modification and change times in ns), under the analysis cache's ``audio-sha256``.

    Every run hashes every call it may take up, to look its analysis up by content; re-reading a
    night's recordings for that (a 5-min 16 kHz stereo WAV is 19 MB, ~80 ms here) cost more than
    re-scoring them after a rulebook edit.  A file written again in any way gets a new change time
    (which no tool can set back), so its identity changes and it is hashed anew; a hash is kept only
    if the file's identity held while it was read."""

    FOLDER = "audio-sha256"

    def __init__(self, cache_root: Path | str) -> None:
        self.root = Path(cache_root) / self.FOLDER

    def sha256(self, path: Path) -> str:
        identity = _file_identity(path)
        name = hashlib.sha256(identity.encode("utf-8", "surrogateescape")).hexdigest()[:40]
        remembered = self.root / name[:2] / name
        try:
            known = remembered.read_text(encoding="ascii").strip()
            if _SHA256.fullmatch(known):
                return known
        except (OSError, ValueError):  # none yet, unreadable or damaged: hashed again
            pass
        digest = audio_sha256(path)
        if _file_identity(path) == identity:  # not written to while it was read
            try:
                write_text_atomically(remembered, digest + "\n")
            except OSError as exc:  # a cache on a read-only share: hashed again next time, nothing lost
                log.debug("content hash of %s not remembered: %s", path, exc)
        return digest


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _file_identity(path: Path) -> str:
    stat = os.stat(path)
    return "\0".join(map(str, (os.path.realpath(path), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns,
                                stat.st_ctime_ns)))


def analysis_key(audio_hash: str, settings, model_dir: Path, channel_map: str | None,
                 basis: dict | None = None) -> str:
    """The cache key of a recording's analysis: its content, the model and every setting that
    shapes what the analysis holds.  ``basis``: :func:`analysis_basis` of the same settings and
    model, worked out once for a batch's calls instead of once per call (the key is the same)."""
    parts = {
        **(basis if basis is not None else analysis_basis(settings, model_dir)),
        "audio": audio_hash,
        "channel_map": channel_map or settings.agent_channel,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:40]


def analysis_basis(settings, model_dir: Path) -> dict:
    """What :func:`analysis_key` takes from the settings and the model, the same for every call."""
    model_bin = Path(model_dir) / "model.bin"
    return {
        "asr_model": Path(model_dir).name,
        "asr_model_bytes": model_bin.stat().st_size if model_bin.exists() else None,
        "transcription": settings.transcription_options().as_dict(),
        "diarization": settings.diarization_options().as_dict(),
        "segmentation": str(settings.segmentation or "store"),
        "embedding": str(settings.embedding or "store"),
        "language": settings.language,
        "versions": [ANALYSIS_VERSION, CONVERSATION_SCHEMA_VERSION, MEASURES_SCHEMA_VERSION],
    }


class AnalysisCache:
    def __init__(self, root: Path):
        self.root = Path(root)

    def _dir(self, key: str) -> Path:
        return self.root / key[:2] / key

    def has(self, key: str) -> bool:
        """Whether an entry is there (not whether it is readable: :meth:`get` says that)."""
        folder = self._dir(key)
        return (folder / "conversation.json").is_file() and (folder / "measures.json").is_file()

    def discard(self, key: str) -> None:
        """Remove an entry found damaged, so that the call is analysed again."""
        for name in ("conversation.json", "measures.json"):
            try:
                (self._dir(key) / name).unlink()
            except OSError:
                pass

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
