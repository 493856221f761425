"""Who spoke: one speaker per channel for true stereo calls, pyannote for mono ones.

A call-center recorder that writes the agent and the customer on separate channels has already
diarized the call; running a diarization model over it would only add errors.  Recorders that
write the same mix to both channels (or leave one dead) are treated as mono.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from models.transcription import RecognisedSegment
from pipelines.stages.audio import LEVEL_BLOCK_SAMPLES, signal_levels_dbfs

SAME_CHANNEL_CORRELATION = 0.9
DEAD_CHANNEL_DB = 40.0
"""A channel this many dB quieter than the other carries no party of its own."""
MAX_WORD_GAP_S = 1.0
"""A pause longer than this between two words of one speaker starts a new utterance."""


@dataclass(frozen=True)
class ChannelLayout:
    mode: str  # "channels" or "diarization"
    reason: str
    live_channels: tuple[int, ...]


def analyse_channels(samples: np.ndarray) -> ChannelLayout:
    """Decide whether the channels hold distinct parties (shape: channels × samples)."""
    n_channels = samples.shape[0]
    if n_channels == 1:
        return ChannelLayout("diarization", "mono recording", (0,))
    rms_db = [float(level) for level in signal_levels_dbfs(samples)]
    loudest = max(rms_db)
    live = tuple(i for i, level in enumerate(rms_db) if loudest - level < DEAD_CHANNEL_DB)
    if len(live) < 2:
        return ChannelLayout("diarization", f"only channel {live[0]} carries sound", live)
    correlation = _correlation(samples[live[0]], samples[live[1]])
    if correlation > SAME_CHANNEL_CORRELATION:
        return ChannelLayout("diarization", f"channels are near-identical (correlation {correlation:.2f})", live)
    return ChannelLayout("channels", f"distinct channels (correlation {correlation:.2f})", live)


def _correlation(a: np.ndarray, b: np.ndarray, block: int = LEVEL_BLOCK_SAMPLES) -> float:
    """Zero-lag normalised correlation of two channels, summed in float64 a block at a time (an
    hour-long call would otherwise need two float64 copies of both channels at once)."""
    ab = aa = bb = 0.0
    for first in range(0, a.shape[-1], block):
        x, y = a[first : first + block].astype(np.float64), b[first : first + block].astype(np.float64)
        ab, aa, bb = ab + float(x @ y), aa + float(x @ x), bb + float(y @ y)
    denom = np.sqrt(aa * bb)
    return ab / denom if denom > 0 else 1.0


@dataclass(frozen=True)
class AttributedWord:
    speaker: str
    start: float
    end: float
    text: str  # raw, as recognised (leading space kept for spaced languages)
    prob: float


def words_of(segments: list[RecognisedSegment], speaker: str) -> list[AttributedWord]:
    return [
        AttributedWord(speaker, w.start, w.end, w.text, w.prob)
        for seg in segments
        for w in seg.words
        if w.text.strip()
    ]


WORD_GAP_SILENCE_S = 0.2
"""A pause at least this long inside a word's time span means the span is stretched, not spoken."""


def assign_speakers(
    segments: list[RecognisedSegment], spans: list[tuple[str, float, float]]
) -> list[AttributedWord]:
    """Give each word the speaker most active around it (largest overlap, else the nearest turn).

    Whisper starts a word that follows a pause where the previous word ended, so a word at a change
    of speaker can stretch back over the pause into the other speaker's turn (「谢谢不 / 客气」: the
    不 is the agent's).  When a word spans two speakers' turns with a pause between them, the turn
    after the pause — where the word is actually said — decides."""
    out: list[AttributedWord] = []
    for word in words_of(segments, "?"):
        best = _stretched_word_speaker(word, spans)
        if best is None:
            best_overlap, best_distance = 0.0, float("inf")
            for speaker, start, end in spans:
                overlap = min(end, word.end) - max(start, word.start)
                if overlap > best_overlap:
                    best, best_overlap = speaker, overlap
                elif best_overlap <= 0:
                    distance = max(start - word.end, word.start - end, 0.0)
                    if distance < best_distance:
                        best, best_distance = speaker, distance
        out.append(AttributedWord(best or "SPEAKER_00", word.start, word.end, word.text, word.prob))
    return out


def _stretched_word_speaker(word: AttributedWord, spans: list[tuple[str, float, float]]) -> str | None:
    """The speaker after a pause inside the word's span, when the span touches two speakers."""
    inside = sorted((max(a, word.start), min(b, word.end), s) for s, a, b in spans if a < word.end and b > word.start)
    if len({s for _, _, s in inside}) < 2:
        return None
    covered_until = inside[0][1]
    for start, end, speaker in inside[1:]:
        if start - covered_until >= WORD_GAP_SILENCE_S and speaker != inside[0][2]:
            return speaker
        covered_until = max(covered_until, end)
    return None


def group_utterances(words: list[AttributedWord], max_gap_s: float = MAX_WORD_GAP_S) -> list[list[AttributedWord]]:
    """Runs of one speaker's words, in time order per speaker; speakers' runs may overlap."""
    by_speaker: dict[str, list[AttributedWord]] = {}
    for word in sorted(words, key=lambda w: w.start):
        by_speaker.setdefault(word.speaker, []).append(word)
    # Within one speaker a run ends at a long pause or where another speaker spoke in between.
    ordered = sorted(words, key=lambda w: (w.start, w.speaker))
    position = {id(w): i for i, w in enumerate(ordered)}
    runs: list[list[AttributedWord]] = []
    for speaker_words in by_speaker.values():
        run: list[AttributedWord] = []
        for word in speaker_words:
            if run:
                gap = word.start - run[-1].end
                interrupted = any(
                    other.speaker != word.speaker and other.start >= run[-1].end and other.end <= word.start
                    for other in ordered[position[id(run[-1])] + 1 : position[id(word)]]
                )
                if gap > max_gap_s or interrupted:
                    runs.append(run)
                    run = []
            run.append(word)
        if run:
            runs.append(run)
    return sorted(runs, key=lambda r: (r[0].start, r[0].speaker))
