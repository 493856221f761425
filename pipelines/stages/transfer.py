"""A transferred stereo call: the agent who takes the transfer speaks on the agent's channel.

The recorder's channels separate the two *sides* of a call, not its voices.  When one side says a
transfer phrase (转接 / 帮您接通 / "transfer you") and a different voice is heard on that channel
afterwards, that voice is the receiving agent, a speaker of its own (``ch1_2``): the seeds' transfer
script judges what the receiver says (thanks for waiting, picks the issue up) apart from the agent
who answered.

Voices are compared with CAM++ speaker embeddings (the model store's diarization embedding): the
channel's speech before the transfer phrase is the first agent's voice, its speech after the
transfer joined together the other candidate.  When the two differ, each later stretch of speech
goes to whichever of the two voices it is closer to (the first agent may still speak after).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from pipelines.stages.roles import SpokenRun, transfer_run

log = logging.getLogger(__name__)

SAME_VOICE_SIMILARITY = 0.78
"""Cosine similarity of the CAM++ embeddings of the channel's speech before and after the transfer
above which it is one voice throughout.  Measured on the dev calls: one voice 0.87–0.99 (either
channel, any split point); two similar female voices across a transfer 0.64–0.68."""
MIN_REFERENCE_S = 1.5
"""Speech needed before the transfer phrase to know the first agent's voice."""
MIN_TURN_S = 0.6
"""Shorter stretches after the transfer take the label of their nearest longer neighbour."""
REFERENCE_MAX_S = 30.0

Embed = Callable[[np.ndarray, list[tuple[float, float]]], np.ndarray]
"""(signal, spans) → one L2-normalised embedding per span (rows of NaN for unusable spans)."""
EmbedJoined = Callable[[np.ndarray, list[tuple[float, float]]], np.ndarray]


def receiver_suffix(speaker: str) -> str:
    return f"{speaker}_2"


@dataclass(frozen=True)
class VoiceSplit:
    """Which voice-activity turns of one channel belong to a second voice, and why."""

    transfer_at: float
    other: list[bool]
    similarities: list[float | None]


def split_channel_after_transfer(
    signal: np.ndarray,
    turns: Sequence[tuple[float, float]],
    runs: Sequence[SpokenRun],
    speaker: str,
    embed: Embed,
    embed_joined: EmbedJoined,
) -> VoiceSplit | None:
    """Turns of ``speaker``'s channel spoken by another voice after ``speaker`` said a transfer
    phrase; ``None`` when no transfer phrase was said or there is too little speech to compare."""
    run = transfer_run(runs, speaker)
    if run is None:
        return None
    at = run.start
    said_until = run.end if run.end is not None else run.start
    # The stretch in which the phrase is said is the first agent's, and so is everything before it.
    before = [(a, b) for a, b in turns if a <= said_until]
    if not before:
        return None
    handover_end = before[-1][1]
    reference, total = [], 0.0
    for a, b in reversed(before):
        reference.append((a, b))
        total += b - a
        if total >= REFERENCE_MAX_S:
            break
    if total < MIN_REFERENCE_S:
        log.info("%s: transfer at %.1f s, but only %.1f s of speech before it to compare voices", speaker, at, total)
        return None
    after_idx = [i for i, (a, b) in enumerate(turns) if a > handover_end - 1e-6 and a > at]
    if not after_idx:
        return None
    ref = embed_joined(signal, reference)
    post = embed_joined(signal, [turns[i] for i in after_idx])
    if not (np.all(np.isfinite(ref)) and np.all(np.isfinite(post))):
        return None
    overall = float(np.dot(ref, post))
    if overall >= SAME_VOICE_SIMILARITY:
        log.info("%s: transfer at %.1f s, same voice afterwards (similarity %.2f)", speaker, at, overall)
        return None
    long_idx = [i for i in after_idx if turns[i][1] - turns[i][0] >= MIN_TURN_S]
    vectors = embed(signal, [turns[i] for i in long_idx]) if long_idx else np.empty((0, 0))
    closer_to_post: dict[int, bool] = {}
    sims: dict[int, float] = {}
    for row, i in enumerate(long_idx):
        v = vectors[row]
        if np.all(np.isfinite(v)):
            sims[i] = float(np.dot(v, ref))
            closer_to_post[i] = float(np.dot(v, post)) >= sims[i]
    other = [False] * len(turns)
    similarities: list[float | None] = [None] * len(turns)
    for i in after_idx:
        similarities[i] = round(sims[i], 3) if i in sims else None
        if i in closer_to_post:
            other[i] = closer_to_post[i]
        elif closer_to_post:  # too short to judge: take the nearest judged turn's voice
            nearest = min(closer_to_post, key=lambda j: abs(turns[j][0] - turns[i][0]))
            other[i] = closer_to_post[nearest]
        else:
            other[i] = True
    if not any(other):
        return None
    log.info("%s: transfer at %.1f s, a second voice on the channel in %d turns", speaker, at, sum(other))
    return VoiceSplit(at, other, similarities)
