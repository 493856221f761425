"""Typed records that travel between the stages.

`Conversation` serialises to ``conversation.json``, a public contract: the field names below are
the ones the issues name (``call_id``, ``source``, ``duration_s``, ``language``, ``channels``,
``speakers``, ``utterances``, ``models``).  Extend them; never rename them.

Times are seconds from the start of the recording, as floats, everywhere.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

Role = Literal["agent", "customer", "unknown"]
SpeakerKind = Literal["agent", "receiver", "customer", "unknown"]
"""Finer than the role: ``receiver`` is the second agent who takes a transferred call (role
``agent``); ``agent`` is the one who answered."""

CONVERSATION_SCHEMA_VERSION = 1


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


PRIVATE_FILE = 0o600
PRIVATE_DIR = 0o700
"""Transcripts, measures and scorecards hold what customers said: readable by their owner only."""


class OutsideOutputError(ValueError):
    """A file name that would land outside the output folder (a call id like ``../../x``)."""


def make_private_dir(folder: Path) -> Path:
    """Create ``folder`` and any missing parents as 0700 (``mkdir(mode=)`` sets only the last one)."""
    folder = Path(folder)
    missing = []
    probe = folder
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    for item in reversed(missing):
        try:
            item.mkdir(mode=PRIVATE_DIR)
        except FileExistsError:
            pass
    return folder


def output_folder_problem(folder: Path | str) -> str | None:
    """Why nothing can be written to ``folder`` (created if missing), or ``None`` when it can — so
    a read-only or mistyped output folder is one line up front, not a traceback after an hour."""
    folder = Path(folder)
    try:
        make_private_dir(folder)
        if not folder.is_dir():
            return f"{folder} is not a folder"
        fd, probe = tempfile.mkstemp(prefix=".callqa-write-test-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return f"cannot write to the output folder {folder} ({exc.strerror or exc})"
    return None


def call_file(out_dir: Path | str, call_id: str, suffix: str) -> Path:
    """``out_dir/<call_id><suffix>``, asserted to stay directly inside ``out_dir``: a call id is
    validated where it enters (:mod:`pipelines.sources`), and this guards every writer as well."""
    out = Path(out_dir)
    path = out / f"{call_id}{suffix}"
    base = out.resolve()
    target = path.resolve()
    if path.name != f"{call_id}{suffix}" or target.parent != base:
        raise OutsideOutputError(
            f"call id {call_id!r} would write {target}, outside the output folder {base} — refused"
        )
    return path


def write_text_privately(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` readable by its owner only (0600), creating folders as 0700."""
    make_private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_FILE)
    os.fchmod(fd, PRIVATE_FILE)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def write_json_atomically(path: Path, text: str) -> Path:
    """Write through a temporary file and rename, so a killed worker never leaves half a JSON;
    the file is private (0600) from its first byte."""
    tmp = path.with_name(path.name + ".tmp")
    write_text_privately(tmp, text)
    tmp.replace(path)
    return path


def record_json(record: BaseModel) -> str:
    return json.dumps(record.model_dump(mode="json"), ensure_ascii=False, indent=2)


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
    kind: SpeakerKind | None = None
    """``agent`` (answered the call), ``receiver`` (took a transfer; role ``agent`` too) or
    ``customer``; ``None`` in conversations written before roles had kinds (read as the role)."""
    role_confidence: float | None = None
    """0..1: how clearly the evidence separates this speaker's role from the other side's
    (1.0 for a channel map).  Low values flag the call ``roles uncertain``."""
    role_evidence: list[str] = Field(default_factory=list)
    """The strongest pieces of evidence for the role, e.g. ``agent: 工号 (0.9 s)``."""

    @property
    def speaker_kind(self) -> SpeakerKind:
        return self.kind or self.role


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
    audio_damage: str | None = None
    """Decode damage the call was transcribed despite (``audio ends early at 7.9 s of 37.8 s``);
    the scorecard flags it.  ``None`` when the audio decoded whole."""

    def role_of(self, speaker_id: str) -> Role:
        for speaker in self.speakers:
            if speaker.id == speaker_id:
                return speaker.role
        return "unknown"

    def kind_of(self, speaker_id: str) -> SpeakerKind:
        for speaker in self.speakers:
            if speaker.id == speaker_id:
                return speaker.speaker_kind
        return "unknown"

    def text_of(self, role: Role) -> str:
        return "".join(u.text for u in self.utterances if u.role == role)

    def to_json(self) -> str:
        return record_json(self)

    def write(self, out_dir: Path) -> Path:
        return write_json_atomically(call_file(out_dir, self.call_id, ".conversation.json"), self.to_json())

    @classmethod
    def read(cls, path: Path) -> "Conversation":
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- measures
MEASURES_SCHEMA_VERSION = 1


class UtteranceMeasures(_Record):
    """Acoustic and rate measures of one utterance (``index`` into ``Conversation.utterances``)."""

    index: int
    speaker: str
    role: Role
    start: float
    end: float
    voiced_s: float
    """Seconds of the speaker's own voice activity inside the utterance span."""
    loudness_dbfs: float | None = None
    """RMS level of the voiced frames, dBFS (on the speaker's own channel in stereo calls)."""
    loudness_lufs: float | None = None
    """Integrated loudness (ITU-R BS.1770, pyloudnorm) where the utterance is long enough."""
    peak_dbfs: float | None = None
    clipping_ratio: float = 0.0
    """Share of samples at or above -0.1 dBFS."""
    pitch_median_hz: float | None = None
    pitch_range_st: float | None = None
    """Spread of the voiced pitch (10th→90th percentile) in semitones, from librosa.pyin."""
    rate: float | None = None
    """Speech rate over voiced time: Chinese characters per second, or English words per minute."""
    rate_unit: Literal["chars_per_s", "words_per_min"] = "chars_per_s"
    asr_confidence: float | None = None
    """Mean word probability."""


class SpeakerMeasures(_Record):
    """One voice over the whole call, from its voice activity (``Conversation.turns``), whether
    or not words were recognised: how loud it is and how far it rises over its line's noise."""

    speaker: str
    role: Role
    voiced_s: float
    level_dbfs: float | None = None
    """RMS level of the speaker's voiced frames (on its own channel in stereo calls)."""
    noise_dbfs: float | None = None
    """Noise floor of that channel: median level of its frames where nobody is heard."""
    snr_db: float | None = None
    """``level_dbfs - noise_dbfs``: a noisy line or a far-away caller comes out low."""


class Silence(_Record):
    """A stretch where nobody is heard (the customer hears nothing from the agent)."""

    start: float
    end: float
    duration: float


class Overlap(_Record):
    """Two speakers at once: ``second`` started while ``first`` was speaking."""

    start: float
    end: float
    duration: float
    first: str
    second: str
    first_role: Role
    second_role: Role


class Measures(_Record):
    """Everything scoring needs from the audio, computed once per call and saved as
    ``<call_id>.measures.json`` so that re-scoring touches neither audio nor model."""

    schema_version: int = MEASURES_SCHEMA_VERSION
    call_id: str
    duration_s: float
    utterances: list[UtteranceMeasures]
    silences: list[Silence]
    """Gaps of at least ``min_silence_s`` with no voice activity from anyone."""
    overlaps: list[Overlap]
    talk_time_s: dict[str, float]
    """Voiced seconds per role (``agent``, ``customer``)."""
    agent_talk_ratio: float | None
    silence_share: float
    min_silence_s: float = 1.0
    speakers: list[SpeakerMeasures] = Field(default_factory=list)
    """Per speaker over the call (level, noise floor, SNR); empty in measures written before."""

    def write(self, out_dir: Path) -> Path:
        return write_json_atomically(call_file(out_dir, self.call_id, ".measures.json"), record_json(self))

    @classmethod
    def read(cls, path: Path) -> "Measures":
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))
