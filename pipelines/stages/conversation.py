"""Stage 1: a decoded call becomes a :class:`Conversation` — who said what, when, in which role.

Three steps, each a plain function that :func:`pipelines.stages.analysis.analyse_call` chains:
:func:`transcribe_call` (language and words), :func:`find_speakers` (voice activity per channel, or
pyannote diarization) and :func:`assemble_conversation` (words to speakers, utterances, roles).

Stereo calls with one party per channel are transcribed per channel (each channel is its own
speaker; overlaps survive untouched) — in batched mode both channels' speech in one batched pass.  Mono calls are transcribed once and diarized by pyannote;
each word goes to the speaker active around it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.transcription import RecognisedSegment
from pipelines.stages.activity import voice_activity
from pipelines.stages.audio import SAMPLE_RATE, CallAudio, rms_dbfs
from pipelines.stages.engines import SpeechEngines, package_versions
from qa_rules.records import CallError
from qa_rules.records import Conversation, ModelsInfo, Speaker, SpeakerTurn, Utterance, Word
from pipelines.stages.roles import RoleDecision, SpokenRun, roles_from_channel_map, roles_from_content
from pipelines.stages.speakers import (
    AttributedWord, ChannelLayout, analyse_channels, assign_speakers, group_utterances, words_of,
)
from pipelines.stages.text import join_words, normalise_word
from pipelines.stages.transfer import receiver_suffix, split_channel_after_transfer

log = logging.getLogger(__name__)

SILENT_DBFS = -60.0
LANGUAGE_WINDOW_S = 600
"""Language detection listens to the call's first ten minutes."""


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
    """Stage: language (``language`` when forced, else detected) and words.  Raises
    :class:`CallError` for a silent call."""
    mix = audio.mono()
    level = rms_dbfs(mix)
    if level < SILENT_DBFS:
        raise CallError(call_id, "transcribe", f"recording is silent (level {level:.0f} dBFS)")
    language_probability = None
    if not language:
        # Whisper decides on the first 60 s of speech: the opening minutes are enough to find them
        # without running voice detection over an hour-long mix.
        language, language_probability = engines.transcriber.detect_language(mix[: LANGUAGE_WINDOW_S * SAMPLE_RATE])
    layout = analyse_channels(audio.samples)
    log.info("call %s: %s, %s", call_id, layout.reason, language)
    words: list[AttributedWord] = []
    segments: list[RecognisedSegment] = []
    if layout.mode == "channels":
        del mix  # not kept while the channels are transcribed: an hour of it is 230 MB
        # one call for all live channels: in batched mode their speech is decoded together
        heard = engines.transcriber.transcribe_many([audio.samples[c] for c in layout.live_channels], language)
        for channel, channel_segments in zip(layout.live_channels, heard):
            words += words_of(channel_segments, f"ch{channel}")
    else:
        live = layout.live_channels
        signal = audio.samples[live[0]] if len(live) == 1 else mix
        segments = engines.transcriber.transcribe(signal, language)
    return Transcript(call_id, language, language_probability, layout, words, segments, engines.transcriber.name)


def find_speakers(audio: CallAudio, transcript: Transcript, engines: SpeechEngines) -> SpeakerActivity:
    """Stage: one speaker per channel from its own voice activity — split in two where a transfer
    hands the channel to another voice — or pyannote diarization (mono)."""
    if transcript.layout.mode == "channels":
        turns: list[SpeakerTurn] = []
        runs = spoken_runs(group_utterances(transcript.channel_words))
        for channel in transcript.layout.live_channels:
            speaker = f"ch{channel}"
            spans = voice_activity(audio.samples[channel], SAMPLE_RATE)
            split = _transfer_split(audio.samples[channel], spans, runs, speaker, engines)
            for i, (a, b) in enumerate(spans):
                who = receiver_suffix(speaker) if split and split.other[i] else speaker
                turns.append(SpeakerTurn(speaker=who, start=a, end=b))
        return SpeakerActivity(turns, None)
    spans = engines.diarizer.diarize(transcript.mono_signal(audio))
    return SpeakerActivity([SpeakerTurn(speaker=s.speaker, start=s.start, end=s.end) for s in spans], engines.diarizer.name)


def _transfer_split(signal: np.ndarray, spans, runs: list[SpokenRun], speaker: str, engines: SpeechEngines):
    if not any(r.speaker == speaker for r in runs):
        return None
    from pipelines.stages.roles import transfer_time

    if transfer_time(runs, speaker) is None:  # no model load unless a transfer phrase was said
        return None
    embedder = engines.voice_embedder
    return split_channel_after_transfer(
        signal, spans, runs, speaker,
        embed=lambda sig, sp: embedder.embed(sig, SAMPLE_RATE, sp).numpy(),
        embed_joined=lambda sig, sp: embedder.embed_joined(sig, SAMPLE_RATE, sp).numpy(),
    )


def spoken_runs(runs: list[list[AttributedWord]]) -> list[SpokenRun]:
    """Each run of one speaker's words as text with its start, for the role and transfer cues."""
    return [SpokenRun(run[0].speaker, run[0].start, "".join(w.text for w in run).strip(), run[-1].end) for run in runs if run]


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
        words = _words_to_channel_voices(transcript.channel_words, turns)
        channel_of = {t.speaker: int(t.speaker[2:].split("_")[0]) for t in turns}
        channel_of.update({f"ch{c}": c for c in transcript.layout.live_channels})
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


def _words_to_channel_voices(words: list[AttributedWord], turns: list[SpeakerTurn]) -> list[AttributedWord]:
    """On a channel split by a transfer, each word goes to the voice whose turn holds it."""
    split = {t.speaker.split("_")[0] for t in turns if "_" in t.speaker}
    if not split:
        return words
    out = []
    for w in words:
        if w.speaker in split:
            mid = (w.start + w.end) / 2
            best = min(
                (t for t in turns if t.speaker.split("_")[0] == w.speaker),
                key=lambda t: 0.0 if t.start <= mid <= t.end else min(abs(t.start - mid), abs(t.end - mid)),
                default=None,
            )
            if best is not None and best.speaker != w.speaker:
                w = AttributedWord(best.speaker, w.start, w.end, w.text, w.prob)
        out.append(w)
    return out


def _decide_roles(
    runs: list[list[AttributedWord]],
    turns: list[SpeakerTurn],
    channel_of: dict[str, int],
    agent_channel: str | None,
    n_channels: int,
) -> dict[str, RoleDecision]:
    receivers = [s for s in channel_of if "_" in s]
    if channel_of and agent_channel:
        index = {"left": 0, "right": 1}[agent_channel]
        if index >= n_channels:
            raise CallError("?", "roles", f"agent channel '{agent_channel}' does not exist in this recording")
        return roles_from_channel_map(channel_of, index, receivers)
    heard_at: dict[str, float] = {}
    for turn in turns:  # a speaker heard but never transcribed still gets a role
        heard_at[turn.speaker] = min(heard_at.get(turn.speaker, turn.start), turn.start)
    return roles_from_content(spoken_runs(runs), heard_at)


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
                kind=decision.kind or decision.role, role_confidence=decision.confidence,
                role_evidence=list(decision.evidence),
            )
        )
    return out
