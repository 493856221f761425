"""Typed records that travel between the stages.

`Conversation` serialises to ``conversation.json``, a public contract: the field names below are
the ones the issues name (``call_id``, ``source``, ``duration_s``, ``language``, ``channels``,
``speakers``, ``utterances``, ``models``).  Extend them; never rename them.

Times are seconds from the start of the recording, as floats, everywhere.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["agent", "customer", "unknown"]

CONVERSATION_SCHEMA_VERSION = 1


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class Word(_Record):
    """One recognised word (for Chinese: usually one or two characters) with its timing."""

    start: float
    end: float
    text: str
    prob: float


class Speaker(_Record):
    """A voice in the call and the role we gave it, with the reason a reviewer can check."""

    id: str
    role: Role
    role_reason: str
    channel: int | None = None
    """Channel index the speaker was recorded on (stereo calls), else ``None``."""
    talk_time_s: float = 0.0


class Utterance(_Record):
    """A run of words from one speaker.  Utterances of different speakers may overlap in time."""

    speaker: str
    role: Role
    start: float
    end: float
    text: str
    words: list[Word] = Field(default_factory=list)


class SpeakerTurn(_Record):
    """When a speaker is audible, whether or not any words were recognised (from VAD/diarization)."""

    speaker: str
    start: float
    end: float


class ModelsInfo(_Record):
    asr: str
    diarization: str | None
    device: str
    versions: dict[str, str] = Field(default_factory=dict)


class Conversation(_Record):
    """Who said what, when: the output of the foundation stage and the input of everything else."""

    schema_version: int = CONVERSATION_SCHEMA_VERSION
    call_id: str
    source: str
    duration_s: float
    language: str
    language_probability: float | None = None
    channels: int
    speaker_mode: Literal["channels", "diarization"]
    """``channels``: one speaker per recorded channel; ``diarization``: speakers found by pyannote."""
    speakers: list[Speaker]
    utterances: list[Utterance]
    turns: list[SpeakerTurn] = Field(default_factory=list)
    """Voice activity per speaker, overlaps included; the base for silence and overlap measures."""
    models: ModelsInfo
    metadata: dict[str, str] = Field(default_factory=dict)

    def role_of(self, speaker_id: str) -> Role:
        for speaker in self.speakers:
            if speaker.id == speaker_id:
                return speaker.role
        return "unknown"

    def text_of(self, role: Role) -> str:
        return "".join(u.text for u in self.utterances if u.role == role)

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), ensure_ascii=False, indent=2)

    def write(self, out_dir: Path) -> Path:
        out_dir.mkdir(parents=True, exist_ok=True)
        path = out_dir / f"{self.call_id}.conversation.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(self.to_json(), encoding="utf-8")
        tmp.replace(path)
        return path

    @classmethod
    def read(cls, path: Path) -> "Conversation":
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))
