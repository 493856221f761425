"""Stage 1: a decoded call becomes a :class:`Conversation` — who said what, when, in which role.

Three steps, each a plain function the Prefect flow runs as its own task: :func:`transcribe_call`
(language and words), :func:`find_speakers` (voice activity per channel, or pyannote diarization)
and :func:`assemble_conversation` (words to speakers, utterances, roles).

Stereo calls with one party per channel are transcribed channel by channel (each channel is its
own speaker; overlaps survive untouched).  Mono calls are transcribed once and diarized by pyannote;
each word goes to the speaker active around it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.transcription import RecognisedSegment
from pipelines.activity import voice_activity
from pipelines.audio import SAMPLE_RATE, CallAudio, rms_dbfs
from pipelines.engines import SpeechEngines, package_versions
from pipelines.errors import CallError
from pipelines.records import Conversation, ModelsInfo, Speaker, SpeakerTurn, Utterance, Word
from pipelines.roles import OPENING_WINDOW_S, RoleDecision, roles_from_channel_map, roles_from_content
from pipelines.speakers import (
    AttributedWord, ChannelLayout, analyse_channels, assign_speakers, group_utterances, words_of,
)
from pipelines.text import join_words, normalise_word

log = logging.getLogger(__name__)

SILENT_DBFS = -60.0


def call_id_for(path: Path) -> str:
    return path.stem


@dataclass(frozen=True)
class Transcript:
    """What the ASR stage heard: the language, how the channels are laid out, and the words —
    attributed to their channel (``ch0``/``ch1``) for stereo calls, not yet to a speaker for mono."""

    call_id: str
    language: str
    language_probability: float | None
    layout: ChannelLayout
    channel_words: list[AttributedWord]
    mono_segments: list[RecognisedSegment]
    asr_name: str

    def mono_signal(self, audio: CallAudio) -> np.ndarray:
        live = self.layout.live_channels
        return audio.samples[live[0]] if len(live) == 1 else audio.mono()


@dataclass(frozen=True)
class SpeakerActivity:
    """Who is audible when: per-channel voice activity (stereo) or pyannote's turns (mono)."""

    turns: list[SpeakerTurn]
    diarization: str | None


def transcribe_call(audio: CallAudio, engines: SpeechEngines, call_id: str, language: str | None = None) -> Transcript:
    """Stage: language (detected or forced) and words.  Raises :class:`CallError` for a silent call."""
    mix = audio.mono()
    if rms_dbfs(mix) < SILENT_DBFS:
        raise CallError(call_id, "transcribe", f"recording is silent (level {rms_dbfs(mix):.0f} dBFS)")
    language = language or engines.settings.language
    language_probability = None
    if not language:
        language, language_probability = engines.transcriber.detect_language(mix)
    layout = analyse_channels(audio.samples)
    log.info("call %s: %s, %s", call_id, layout.reason, language)
    words: list[AttributedWord] = []
    segments: list[RecognisedSegment] = []
    if layout.mode == "channels":
        for channel in layout.live_channels:
            words += words_of(engines.transcriber.transcribe(audio.samples[channel], language), f"ch{channel}")
    else:
        live = layout.live_channels
        signal = audio.samples[live[0]] if len(live) == 1 else mix
        segments = engines.transcriber.transcribe(signal, language)
    return Transcript(call_id, language, language_probability, layout, words, segments, engines.transcriber.name)


def find_speakers(audio: CallAudio, transcript: Transcript, engines: SpeechEngines) -> SpeakerActivity:
    """Stage: one speaker per channel from its own voice activity, or pyannote diarization (mono)."""
    if transcript.layout.mode == "channels":
        turns = [
            SpeakerTurn(speaker=f"ch{channel}", start=a, end=b)
            for channel in transcript.layout.live_channels
            for a, b in voice_activity(audio.samples[channel], SAMPLE_RATE)
        ]
        return SpeakerActivity(turns, None)
    spans = engines.diarizer.diarize(transcript.mono_signal(audio))
    return SpeakerActivity([SpeakerTurn(speaker=s.speaker, start=s.start, end=s.end) for s in spans], engines.diarizer.name)


def assemble_conversation(
    audio: CallAudio,
    transcript: Transcript,
    activity: SpeakerActivity,
    device: str,
    agent_channel: str | None = None,
    metadata: dict[str, str] | None = None,
) -> Conversation:
    """Stage: words to speakers, utterances, roles — the :class:`Conversation` record."""
    turns = activity.turns
    if transcript.layout.mode == "channels":
        words = transcript.channel_words
        channel_of = {f"ch{c}": c for c in transcript.layout.live_channels}
    else:
        words = assign_speakers(transcript.mono_segments, [(t.speaker, t.start, t.end) for t in turns])
        channel_of = {}
    language = transcript.language
    utterances_words = group_utterances(words)
    decisions = _decide_roles(utterances_words, turns, channel_of, agent_channel, audio.channels)
    utterances = [_utterance(run, decisions, language) for run in utterances_words]
    utterances = [u for u in utterances if u.text]
    return Conversation(
        call_id=transcript.call_id,
        source=str(audio.source),
        duration_s=round(audio.duration_s, 3),
        language=language,
        language_probability=transcript.language_probability,
        channels=audio.channels,
        speaker_mode=transcript.layout.mode,
        speakers=_speakers(decisions, channel_of, turns, utterances),
        utterances=utterances,
        turns=sorted(turns, key=lambda t: (t.start, t.speaker)),
        models=ModelsInfo(
            asr=f"whisper:{transcript.asr_name}",
            diarization=activity.diarization,
            device=device,
            versions=package_versions(),
        ),
        metadata={k: str(v) for k, v in (metadata or {}).items() if v not in (None, "")},
        audio_damage=audio.damage,
    )


def build_conversation(
    audio: CallAudio,
    engines: SpeechEngines,
    call_id: str | None = None,
    language: str | None = None,
    agent_channel: str | None = None,
    metadata: dict[str, str] | None = None,
) -> Conversation:
    """Transcribe, find the speakers, attribute and label one call (the three stages in a row).
    Raises :class:`CallError` for unusable audio."""
    call_id = call_id or call_id_for(audio.source)
    transcript = transcribe_call(audio, engines, call_id, language)
    activity = find_speakers(audio, transcript, engines)
    return assemble_conversation(
        audio, transcript, activity, engines.device.describe(),
        agent_channel or engines.settings.agent_channel, metadata,
    )


def _decide_roles(
    runs: list[list[AttributedWord]],
    turns: list[SpeakerTurn],
    channel_of: dict[str, int],
    agent_channel: str | None,
    n_channels: int,
) -> dict[str, RoleDecision]:
    if channel_of and agent_channel:
        index = {"left": 0, "right": 1}[agent_channel]
        if index >= n_channels:
            raise CallError("?", "roles", f"agent channel '{agent_channel}' does not exist in this recording")
        return roles_from_channel_map(channel_of, index)
    first_start: dict[str, float] = {}
    opening: dict[str, str] = {}
    for run in runs:
        speaker = run[0].speaker
        first_start.setdefault(speaker, run[0].start)
        if run[0].start <= first_start[speaker] + OPENING_WINDOW_S:
            opening[speaker] = opening.get(speaker, "") + "".join(w.text for w in run)
    for turn in turns:  # a speaker heard but never transcribed still gets a role
        first_start.setdefault(turn.speaker, turn.start)
    return roles_from_content(opening, first_start)


def _utterance(run: list[AttributedWord], decisions: dict[str, RoleDecision], language: str) -> Utterance:
    words = [
        Word(start=round(w.start, 3), end=round(w.end, 3), text=normalise_word(w.text, language), prob=round(w.prob, 4))
        for w in run
    ]
    speaker = run[0].speaker
    decision = decisions.get(speaker)
    return Utterance(
        speaker=speaker,
        role=decision.role if decision else "unknown",
        start=words[0].start,
        end=words[-1].end,
        text=join_words([w.text for w in words], language),
        words=words,
    )


def _speakers(
    decisions: dict[str, RoleDecision],
    channel_of: dict[str, int],
    turns: list[SpeakerTurn],
    utterances: list[Utterance],
) -> list[Speaker]:
    ids = sorted(set(decisions) | {u.speaker for u in utterances})
    out = []
    for sid in ids:
        decision = decisions.get(sid, RoleDecision("unknown", "no speech attributed"))
        talk = sum(t.end - t.start for t in turns if t.speaker == sid)
        out.append(
            Speaker(
                id=sid, role=decision.role, role_reason=decision.reason,
                channel=channel_of.get(sid), talk_time_s=round(talk, 2),
            )
        )
    return out
