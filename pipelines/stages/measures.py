"""Stage 2: measure what the rulebook needs from the audio, once per call.

Per utterance: loudness of the speaker's voiced frames (dBFS and LUFS), clipping, pitch median and
range (librosa.pyin), speech rate over *voiced* time.  Per call: silences (nobody heard), overlaps
(who started while whom was speaking), talk time per role.  Silences and overlaps come from voice
activity (``Conversation.turns``), not from Whisper's segment spans, which stretch over holds.
The result is saved beside the conversation so that re-scoring never decodes audio again.

Span arithmetic (merging a speaker's turns, their union, clipping to an utterance, the gaps between
voices) is pyannote.core's ``Timeline``; a turn under a microsecond long covers no time there.
"""

from __future__ import annotations

import logging
import warnings
from typing import Iterable

import numpy as np
from pyannote.core import Segment, Timeline

from pipelines.stages.audio import SAMPLE_RATE, CallAudio, frame_levels_dbfs, rms_dbfs
from qa_rules.records import Conversation, Measures, Overlap, Silence, SpeakerMeasures, SpeakerTurn, UtteranceMeasures, Utterance
from pipelines.stages.text import CHINESE_LANGUAGES, count_cjk

log = logging.getLogger(__name__)

MIN_SILENCE_S = 1.0
CLIP_LEVEL = 10 ** (-0.1 / 20)
PITCH_FMIN, PITCH_FMAX = 65.0, 500.0
PITCH_FRAME, PITCH_HOP = 1024, 320
MIN_LUFS_S = 0.4
OVERLAP_JOIN_S = 1.0
BREATH_PAUSE_S = 0.6
JOIN_TOLERANCE_S = 1e-6
"""Pauses up to ``BREATH_PAUSE_S`` *inclusive* are joined, while ``Timeline.support(collar)`` joins
pauses strictly shorter than its collar: times are in milliseconds, so a microsecond more keeps a
pause of exactly 0.6 s joined whatever the float rounding of its ends."""


class _Signals:
    """A speaker's signal: their channel, or the mix for a diarized call — mixed down once per call
    (an hour of stereo mixed per utterance would cost 230 MB and a pass over the call each time)."""

    def __init__(self, audio: CallAudio) -> None:
        self.audio = audio
        self._mix: np.ndarray | None = None

    def of(self, channel: int | None) -> np.ndarray:
        if channel is not None and channel < self.audio.channels:
            return self.audio.samples[channel]
        if self._mix is None:
            self._mix = self.audio.mono()
        return self._mix


def measure_call(audio: CallAudio, conversation: Conversation, min_silence_s: float = MIN_SILENCE_S) -> Measures:
    voice = _voice_by_speaker(conversation.turns)
    channel_of = {s.id: s.channel for s in conversation.speakers}
    signals = _Signals(audio)
    utterances = [
        _measure_utterance(i, u, signals.of(channel_of.get(u.speaker)), voice.get(u.speaker, Timeline()), conversation.language)
        for i, u in enumerate(conversation.utterances)
    ]
    roles = {s.id: s.role for s in conversation.speakers}
    talk = {
        role: round(_timeline((t.start, t.end) for t in conversation.turns if roles.get(t.speaker) == role).duration(), 3)
        for role in ("agent", "customer")
    }
    total_talk = talk["agent"] + talk["customer"]
    silences = find_silences(conversation.turns, conversation.duration_s, min_silence_s)
    speakers = measure_speakers(audio, conversation, signals)
    return Measures(
        call_id=conversation.call_id,
        duration_s=conversation.duration_s,
        utterances=utterances,
        silences=silences,
        overlaps=find_overlaps(conversation.turns, roles),
        talk_time_s=talk,
        agent_talk_ratio=round(talk["agent"] / total_talk, 3) if total_talk else None,
        silence_share=round(sum(s.duration for s in silences) / conversation.duration_s, 3) if conversation.duration_s else 0.0,
        min_silence_s=min_silence_s,
        speakers=speakers,
    )


NOISE_FRAME_S = 0.05
NOISE_MARGIN_S = 0.2


def measure_speakers(audio: CallAudio, conversation: Conversation, signals: _Signals | None = None) -> list[SpeakerMeasures]:
    """Level, noise floor and SNR per speaker from voice activity (not from recognised words, so
    a caller too quiet or noisy to transcribe is still measured).  The noise floor is the median
    level of the frames of the speaker's channel where no voice of that channel is active (all
    voices for a mono mix), away from speech edges by ``NOISE_MARGIN_S``."""
    voice = _voice_by_speaker(conversation.turns)
    signals = signals or _Signals(audio)
    out = []
    for speaker in conversation.speakers:
        spans = voice.get(speaker.id, Timeline())
        channel = speaker.channel if speaker.channel is not None and speaker.channel < audio.channels else None
        signal = signals.of(channel)
        same_line = {s.id for s in conversation.speakers if channel is None or s.channel == channel}
        busy = _timeline((t.start, t.end) for t in conversation.turns if t.speaker in same_line).support()
        voiced = [signal[int(s.start * SAMPLE_RATE) : int(s.end * SAMPLE_RATE)] for s in spans]
        level = _level_dbfs(np.concatenate(voiced)) if voiced else None
        noise = _noise_floor(signal, busy)
        out.append(SpeakerMeasures(
            speaker=speaker.id, role=speaker.role, voiced_s=round(sum(s.end - s.start for s in spans), 3),
            level_dbfs=level, noise_dbfs=noise,
            snr_db=round(level - noise, 2) if level is not None and noise is not None else None,
        ))
    return out


def _noise_floor(signal: np.ndarray, busy: Timeline) -> float | None:
    hop = int(NOISE_FRAME_S * SAMPLE_RATE)
    n = len(signal) // hop
    if n == 0:
        return None
    mask = np.ones(n, dtype=bool)
    for a, b in busy:  # a Segment unpacks to (start, end)
        mask[max(int((a - NOISE_MARGIN_S) / NOISE_FRAME_S), 0) : int((b + NOISE_MARGIN_S) / NOISE_FRAME_S) + 1] = False
    if mask.sum() < 10:  # speech wall to wall: no noise to measure
        return None
    levels = frame_levels_dbfs(signal, hop)[mask]
    return round(float(np.median(levels)), 2)


def find_silences(turns: list[SpeakerTurn], duration_s: float, min_silence_s: float = MIN_SILENCE_S) -> list[Silence]:
    """Gaps between the first and the last voice activity where nobody is heard."""
    gaps = _timeline((t.start, t.end) for t in turns).gaps()  # inside the extent: first to last voice
    return [
        Silence(start=round(gap.start, 3), end=round(gap.end, 3), duration=round(gap.end - gap.start, 3))
        for gap in gaps if gap.end - gap.start >= min_silence_s
    ]


def find_overlaps(turns: list[SpeakerTurn], roles: dict[str, str]) -> list[Overlap]:
    """Every stretch where two speakers are heard at once, with who held the floor first."""
    # A breath pause inside one speaker's speech does not end their turn.
    ordered = sorted(
        (
            SpeakerTurn(speaker=spk, start=s.start, end=s.end)
            for spk, voice in _voice_by_speaker(turns).items()
            for s in voice.support(collar=BREATH_PAUSE_S + JOIN_TOLERANCE_S)
        ),
        key=lambda t: t.start,
    )
    out: list[Overlap] = []
    for i, a in enumerate(ordered):
        for b in ordered[i + 1 :]:
            if b.start >= a.end:
                break
            if b.speaker == a.speaker:
                continue
            start, end = b.start, min(a.end, b.end)
            previous = out[-1] if out else None
            if (
                previous is not None and previous.second == b.speaker and previous.first == a.speaker
                and start - previous.end < OVERLAP_JOIN_S
            ):
                # one barge-in across a breath pause of the other speaker is one overlap
                out[-1] = previous.model_copy(update={"end": round(end, 3), "duration": round(previous.duration + end - start, 3)})
                continue
            out.append(
                Overlap(
                    start=round(start, 3), end=round(end, 3), duration=round(end - start, 3),
                    first=a.speaker, second=b.speaker,
                    first_role=roles.get(a.speaker, "unknown"), second_role=roles.get(b.speaker, "unknown"),
                )
            )
    return out


def _measure_utterance(
    index: int, utterance: Utterance, signal: np.ndarray, voice: Timeline, language: str,
) -> UtteranceMeasures:
    """``signal``: the speaker's channel (or the mix); ``voice``: their voice activity, merged (a
    support)."""
    spans = [
        (s.start, s.end) for s in voice.crop(Segment(utterance.start, utterance.end)) if s.end - s.start > 0.01
    ] or [(utterance.start, utterance.end)]
    voiced_s = sum(b - a for a, b in spans)
    pieces = [signal[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)] for a, b in spans]
    voiced = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
    words = [w for w in utterance.words]
    if language in CHINESE_LANGUAGES:
        # a digit written 0-9 is read as one syllable, like 零…九: a number read out has a rate too
        units, unit = count_cjk(utterance.text) + sum(ch.isdigit() for ch in utterance.text), "chars_per_s"
        rate = units / voiced_s if voiced_s > 0 else None
    else:
        units, unit = len(utterance.text.split()), "words_per_min"
        rate = units / voiced_s * 60 if voiced_s > 0 else None
    pitch_median, pitch_range = _pitch(voiced)
    return UtteranceMeasures(
        index=index,
        speaker=utterance.speaker,
        role=utterance.role,
        start=utterance.start,
        end=utterance.end,
        voiced_s=round(voiced_s, 3),
        loudness_dbfs=_level_dbfs(voiced),
        loudness_lufs=_lufs(voiced),
        peak_dbfs=_peak_dbfs(voiced),
        clipping_ratio=round(float(np.mean(np.abs(voiced) >= CLIP_LEVEL)), 5) if voiced.size else 0.0,
        pitch_median_hz=pitch_median,
        pitch_range_st=pitch_range,
        rate=round(rate, 3) if rate is not None else None,
        rate_unit=unit,
        asr_confidence=round(float(np.mean([w.prob for w in words])), 4) if words else None,
    )


def _level_dbfs(x: np.ndarray) -> float | None:
    return round(max(rms_dbfs(x), -200.0), 2) if x.size else None


def _peak_dbfs(x: np.ndarray) -> float | None:
    """Sample peak in dBFS (floored at −200 dBFS like frame levels); ``None`` for no samples."""
    if not x.size:
        return None
    import librosa

    return round(float(librosa.amplitude_to_db(float(np.max(np.abs(x))), amin=1e-10, top_db=None)), 2)


def _lufs(x: np.ndarray) -> float | None:
    if x.size < MIN_LUFS_S * SAMPLE_RATE:
        return None
    import pyloudnorm

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        value = pyloudnorm.Meter(SAMPLE_RATE).integrated_loudness(x.astype(np.float64))
    return round(float(value), 2) if np.isfinite(value) else None


def _pitch(x: np.ndarray) -> tuple[float | None, float | None]:
    if x.size < PITCH_FRAME * 2:
        return None, None
    import librosa

    f0, voiced_flag, _ = librosa.pyin(
        x, fmin=PITCH_FMIN, fmax=PITCH_FMAX, sr=SAMPLE_RATE, frame_length=PITCH_FRAME, hop_length=PITCH_HOP
    )
    f0 = f0[voiced_flag & np.isfinite(f0)]
    if f0.size < 5:
        return None, None
    low, median, high = np.percentile(f0, [10, 50, 90])
    return round(float(median), 1), round(float(12 * np.log2(high / low)), 2)


def _timeline(spans: Iterable[tuple[float, float]]) -> Timeline:
    """Spans as a pyannote Timeline (empty spans, under a microsecond, are dropped: they cover nothing)."""
    return Timeline([Segment(a, b) for a, b in spans])


def _voice_by_speaker(turns: list[SpeakerTurn]) -> dict[str, Timeline]:
    """Each speaker's voice activity with overlapping or touching turns merged (the support)."""
    spans: dict[str, list[tuple[float, float]]] = {}
    for turn in turns:
        spans.setdefault(turn.speaker, []).append((turn.start, turn.end))
    return {speaker: _timeline(own).support() for speaker, own in spans.items()}
