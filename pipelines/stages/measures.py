"""Stage 2: measure what the rulebook needs from the audio, once per call.

Per utterance: loudness of the speaker's voiced frames (dBFS and LUFS), clipping, pitch median and
range (librosa.pyin), speech rate over *voiced* time.  Per call: silences (nobody heard), overlaps
(who started while whom was speaking), talk time per role.  Silences and overlaps come from voice
activity (``Conversation.turns``), not from Whisper's segment spans, which stretch over holds.
The result is saved beside the conversation so that re-scoring never decodes audio again.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np

from pipelines.stages.audio import SAMPLE_RATE, CallAudio, rms_dbfs
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


def measure_call(audio: CallAudio, conversation: Conversation, min_silence_s: float = MIN_SILENCE_S) -> Measures:
    turns_by_speaker: dict[str, list[tuple[float, float]]] = {}
    for turn in conversation.turns:
        turns_by_speaker.setdefault(turn.speaker, []).append((turn.start, turn.end))
    channel_of = {s.id: s.channel for s in conversation.speakers}
    utterances = [
        _measure_utterance(i, u, audio, channel_of.get(u.speaker), turns_by_speaker.get(u.speaker, []), conversation.language)
        for i, u in enumerate(conversation.utterances)
    ]
    roles = {s.id: s.role for s in conversation.speakers}
    talk = {
        role: round(_union_length([(t.start, t.end) for t in conversation.turns if roles.get(t.speaker) == role]), 3)
        for role in ("agent", "customer")
    }
    total_talk = talk["agent"] + talk["customer"]
    silences = find_silences(conversation.turns, conversation.duration_s, min_silence_s)
    speakers = measure_speakers(audio, conversation)
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


def measure_speakers(audio: CallAudio, conversation: Conversation) -> list[SpeakerMeasures]:
    """Level, noise floor and SNR per speaker from voice activity (not from recognised words, so
    a caller too quiet or noisy to transcribe is still measured).  The noise floor is the median
    level of the frames of the speaker's channel where no voice of that channel is active (all
    voices for a mono mix), away from speech edges by ``NOISE_MARGIN_S``."""
    turns_by_speaker: dict[str, list[tuple[float, float]]] = {}
    for turn in conversation.turns:
        turns_by_speaker.setdefault(turn.speaker, []).append((turn.start, turn.end))
    out = []
    for speaker in conversation.speakers:
        spans = _merge(turns_by_speaker.get(speaker.id, []))
        channel = speaker.channel if speaker.channel is not None and speaker.channel < audio.channels else None
        signal = audio.samples[channel] if channel is not None else audio.mono()
        same_line = [s.id for s in conversation.speakers if channel is None or s.channel == channel]
        busy = _merge([t for sid in same_line for t in turns_by_speaker.get(sid, [])])
        voiced = [signal[int(a * SAMPLE_RATE) : int(b * SAMPLE_RATE)] for a, b in spans]
        level = _level_dbfs(np.concatenate(voiced)) if voiced else None
        noise = _noise_floor(signal, busy)
        out.append(SpeakerMeasures(
            speaker=speaker.id, role=speaker.role, voiced_s=round(sum(b - a for a, b in spans), 3),
            level_dbfs=level, noise_dbfs=noise,
            snr_db=round(level - noise, 2) if level is not None and noise is not None else None,
        ))
    return out


def _noise_floor(signal: np.ndarray, busy: list[tuple[float, float]]) -> float | None:
    hop = int(NOISE_FRAME_S * SAMPLE_RATE)
    n = len(signal) // hop
    if n == 0:
        return None
    mask = np.ones(n, dtype=bool)
    for a, b in busy:
        mask[max(int((a - NOISE_MARGIN_S) / NOISE_FRAME_S), 0) : int((b + NOISE_MARGIN_S) / NOISE_FRAME_S) + 1] = False
    if mask.sum() < 10:  # speech wall to wall: no noise to measure
        return None
    frames = signal[: n * hop].reshape(n, hop)[mask].astype(np.float64)
    levels = 10 * np.log10(np.maximum(np.mean(frames**2, axis=1), 1e-20))
    return round(float(np.median(levels)), 2)


def find_silences(turns: list[SpeakerTurn], duration_s: float, min_silence_s: float = MIN_SILENCE_S) -> list[Silence]:
    """Gaps between the first and the last voice activity where nobody is heard."""
    merged = _merge([(t.start, t.end) for t in turns])
    out = []
    for (_, end), (start, _) in zip(merged, merged[1:]):
        if start - end >= min_silence_s:
            out.append(Silence(start=round(end, 3), end=round(start, 3), duration=round(start - end, 3)))
    return out


def find_overlaps(turns: list[SpeakerTurn], roles: dict[str, str]) -> list[Overlap]:
    """Every stretch where two speakers are heard at once, with who held the floor first."""
    # A breath pause inside one speaker's speech does not end their turn.
    by_speaker: dict[str, list[tuple[float, float]]] = {}
    for t in turns:
        by_speaker.setdefault(t.speaker, []).append((t.start, t.end))
    ordered = sorted(
        (SpeakerTurn(speaker=spk, start=a, end=b) for spk, spans in by_speaker.items() for a, b in _merge(spans, BREATH_PAUSE_S)),
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
    index: int, utterance: Utterance, audio: CallAudio, channel: int | None,
    turns: list[tuple[float, float]], language: str,
) -> UtteranceMeasures:
    signal = audio.samples[channel] if channel is not None and channel < audio.channels else audio.mono()
    spans = _clip(turns, utterance.start, utterance.end) or [(utterance.start, utterance.end)]
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
        peak_dbfs=round(20 * np.log10(max(float(np.max(np.abs(voiced))), 1e-10)), 2) if voiced.size else None,
        clipping_ratio=round(float(np.mean(np.abs(voiced) >= CLIP_LEVEL)), 5) if voiced.size else 0.0,
        pitch_median_hz=pitch_median,
        pitch_range_st=pitch_range,
        rate=round(rate, 3) if rate is not None else None,
        rate_unit=unit,
        asr_confidence=round(float(np.mean([w.prob for w in words])), 4) if words else None,
    )


def _level_dbfs(x: np.ndarray) -> float | None:
    return round(max(rms_dbfs(x), -200.0), 2) if x.size else None


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


def _merge(spans: list[tuple[float, float]], gap: float = 0.0) -> list[tuple[float, float]]:
    out: list[list[float]] = []
    for a, b in sorted(spans):
        if out and a <= out[-1][1] + gap:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return [(a, b) for a, b in out]


def _union_length(spans: list[tuple[float, float]]) -> float:
    return sum(b - a for a, b in _merge(spans))


def _clip(spans: list[tuple[float, float]], start: float, end: float) -> list[tuple[float, float]]:
    out = []
    for a, b in _merge(spans):
        lo, hi = max(a, start), min(b, end)
        if hi - lo > 0.01:
            out.append((lo, hi))
    return out
