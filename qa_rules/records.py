"""The domain records: what travels between the stages and what the rules score.

Both ``pipelines`` (which produces them) and the rest of ``qa_rules`` (which scores them) import
this module; it imports neither, so the two packages never depend on each other.

`Conversation` serialises to ``conversation.json``, a public contract: the field names below are
the ones the issues name (``call_id``, ``source``, ``duration_s``, ``language``, ``channels``,
``speakers``, ``utterances``, ``models``).  Extend them; never rename them.

Times are seconds from the start of the recording, as floats, everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Iterable, Literal

from pydantic import BaseModel, ConfigDict, Field

from qa_rules.files import call_file, write_text_atomically

Role = Literal["agent", "customer", "unknown"]
SpeakerKind = Literal["agent", "receiver", "customer", "unknown"]
"""Finer than the role: ``receiver`` is the second agent who takes a transferred call (role
``agent``); ``agent`` is the one who answered."""

CONVERSATION_SCHEMA_VERSION = 1


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


def record_json(record: BaseModel) -> str:
    """The record as indented JSON, non-ASCII text as is (pydantic's serializer: the same JSON as
    ``json.dumps`` of its dump, several times faster on a long call)."""
    return record.model_dump_json(indent=2)


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

    def write(self, out_dir: Path, text: str | None = None) -> Path:
        """``<call_id>.conversation.json``; ``text``: this record's :meth:`to_json`, when the caller has it."""
        return write_text_atomically(call_file(out_dir, self.call_id, ".conversation.json"), text or self.to_json())

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


HOLD_MIN_WAIT_S = 10.0
"""The seeds' hold: 「用户等待超过10秒,应说:“对不起,请稍等!”」 (003 › 修订版 › 三(一)4) — a wait of
*more than* 10 s.  The rulebook's hold rules may set another ``min_wait_s``; this is their default."""


def is_hold(silence: Silence, min_wait_s: float = HOLD_MIN_WAIT_S) -> bool:
    """Whether a silence is a hold: strictly longer than ``min_wait_s``, as the seed words it
    ("more than 10 s").  The hold rules, the scorecard's hold figure and the results store all
    ask this one function, so a 10.0 s silence is never a hold in one place and not in another."""
    return silence.duration > min_wait_s


def hold_seconds(silences: Iterable[Silence], min_wait_s: float = HOLD_MIN_WAIT_S) -> float:
    """Seconds of the call spent in holds (:func:`is_hold`), rounded to 10 ms."""
    return round(sum(s.duration for s in silences if is_hold(s, min_wait_s)), 2)


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

    def write(self, out_dir: Path, text: str | None = None) -> Path:
        """``<call_id>.measures.json``; ``text``: this record's JSON, when the caller has it."""
        return write_text_atomically(call_file(out_dir, self.call_id, ".measures.json"), text or record_json(self))

    @classmethod
    def read(cls, path: Path) -> "Measures":
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- scorecard
Verdict = Literal["pass", "fail", "na"]


@dataclass
class EvidenceItem:
    """One piece of evidence for a verdict: when, who, the words, the measured value and what the
    rule expected.  A plain dataclass, so the rule operators build thousands of them cheaply; the
    scorecard validates and serialises it like its other fields."""

    start: float
    end: float
    speaker: str | None = None
    text: str | None = None
    measured: float | str | None = None
    expected: str | None = None

    def __post_init__(self) -> None:
        # numbers as the scorecard has always written them (0 → 0.0), validated or not
        self.start, self.end = float(self.start), float(self.end)
        if isinstance(self.measured, int):
            self.measured = float(self.measured)


_EVIDENCE_FIELDS = tuple(f.name for f in fields(EvidenceItem))


def evidence_dicts(items: Iterable[EvidenceItem]) -> list[dict]:
    """Evidence as JSON-ready dicts, in field order (what ``scorecard.json`` and the store hold).

    Field by field rather than ``dataclasses.asdict``, which copies each value recursively: the
    fields are plain numbers and strings, and the store turns every rule's evidence of every call
    into JSON (``asdict`` was a tenth of a re-score's store time)."""
    return [{name: getattr(item, name) for name in _EVIDENCE_FIELDS} for item in items]


def category_verdict(verdicts: Iterable[str]) -> Verdict:
    """A category's verdict from its rules' verdicts: ``fail`` if any failed, ``pass`` if one
    passed, else ``na`` (no rule applied).  The engine writes it into the scorecard and the store
    keeps it; readers take the stored verdict instead of working it out again."""
    seen = set(verdicts)
    return "fail" if "fail" in seen else "pass" if "pass" in seen else "na"


class RuleResult(BaseModel):
    id: str
    title: dict[str, str]
    category: str
    verdict: Verdict
    points: float
    """Points earned (rule points × section weight; 0 on fail or N/A)."""
    max_points: float
    """Points at stake (0 when N/A: an N/A rule leaves the maximum)."""
    fatal: bool = False
    source: str | None = None
    note: str | None = None
    evidence: list[EvidenceItem] = Field(default_factory=list)


class SituationResult(BaseModel):
    """A situation of the rulebook checked on the call: did it occur, and where (evidence)."""

    id: str
    title: dict[str, str]
    occurred: bool
    evidence: list[EvidenceItem] = Field(default_factory=list)


class RulebookRef(BaseModel):
    id: str
    version: str


class Flag(BaseModel):
    reason: str
    rule_id: str | None = None


class Scorecard(BaseModel):
    call_id: str
    rulebook: RulebookRef
    score: float
    max_score: float
    percent: float
    passed: bool
    pass_mark: float = 80.0
    fatal_failures: list[str] = Field(default_factory=list)
    flags: list[Flag] = Field(default_factory=list)
    rules: list[RuleResult] = Field(default_factory=list)
    categories: dict[str, Verdict] = Field(default_factory=dict)
    """Every category the engine knows, by :func:`category_verdict` (``na``: no rule applied —
    the situation did not occur, or the rulebook has none)."""
    asr_confidence: float | None = None
    scorable: bool = True
    """``False`` when the call cannot be judged (no agent speech, or no point at stake): then
    ``passed`` is ``False`` and ``not_scorable_reason`` says why — a call is never passed unheard."""
    not_scorable_reason: str | None = None
    situations: list[SituationResult] = Field(default_factory=list)
    """Each situation of the rulebook and whether it occurred (silent caller, transfer…)."""
    measures: dict[str, float | None] = Field(default_factory=dict)
    """Call-level figures a supervisor reads beside the verdicts: response gap median/p90 (s),
    longest dead air (s), time on hold (``hold_s``: silences the rulebook's hold rules count as
    holds, :func:`hold_seconds`), agent talk ratio, agent and customer speech levels (dBFS)."""

    def to_json(self) -> str:
        return record_json(self)

    def write(self, out_dir: Path | str) -> Path:
        return write_text_atomically(call_file(out_dir, self.call_id, ".scorecard.json"), self.to_json())

    @classmethod
    def read(cls, path: Path | str) -> "Scorecard":
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))


# ----------------------------------------------------------------------------- call source
@dataclass(frozen=True)
class CallSource:
    """One call to process and what the call center's systems know about it."""

    call_id: str
    path: Path
    agent_id: str | None = None
    team: str | None = None
    started_at: str | None = None
    direction: str | None = None
    channel_map: str | None = None
    """``left``/``right``: the agent's channel in a stereo recording."""
    root: Path | None = None
    """The recording folder this call was found in or named from (resolved): audio is only ever
    served from inside it."""

    def metadata(self) -> dict[str, str]:
        keys = ("agent_id", "team", "started_at", "direction", "channel_map")
        return {k: getattr(self, k) for k in keys if getattr(self, k)}


# ----------------------------------------------------------------------------- errors
class CallError(Exception):
    """One call could not be processed; the batch goes on without it.

    The message reads like ``call 0042.wav: not an audio file (ffmpeg: Invalid data found)``.
    """

    def __init__(self, call: str, stage: str, reason: str):
        self.call = call
        self.stage = stage
        self.reason = reason
        super().__init__(f"call {call}: {reason} [{stage}]")


class BadAudioError(CallError):
    """The input is not usable audio (corrupt, empty, silent, not audio, too long)."""

    def __init__(self, call: str, reason: str):
        super().__init__(call, "decode", reason)
