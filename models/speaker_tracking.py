"""Which diarization chunks need a CAM++ embedding, and which can follow a neighbour.

pyannote's diarization slides a 10 s window over the call and embeds every active speaker of every
window.  With a 1 s step (its default, which aggregates the segmentation best) each second of
speech is embedded ten times: CAM++ is most of diarization's cost.  Neighbouring windows overlap by
9 s, so a speaker of one window is, almost always, plainly the same voice as one of the speakers of
the window a second earlier or later: the two are active on the same frames.  Here only every
``stride``-th window is embedded ("anchors"); a speaker of another window whose activity matches an
anchor's speaker on at least half of its frames in the shared stretch takes that speaker's cluster,
and any speaker that matches nobody is embedded as before.

Measured (README, "Measured here"): with a 1 s step and a stride of 2, DER is no worse than
pyannote's every-window embedding on every file of the bench, at 61 % of its CPU.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

MIN_AGREEMENT = 0.5
"""Share of a speaker's active frames (within the stretch shared with the anchor window) on which
the matched anchor speaker must be active too."""


@dataclass
class EmbeddingPlan:
    """``embed[c, s]``: embed speaker ``s`` of chunk ``c``; ``follows[(c, s)] = (n, j)``: speaker ``s``
    of chunk ``c`` takes the cluster of speaker ``j`` of anchor chunk ``n``."""

    embed: np.ndarray
    follows: dict[tuple[int, int], tuple[int, int]] = field(default_factory=dict)


def _overlap(data: np.ndarray, c: int, n: int, shift_frames: float) -> tuple[np.ndarray, np.ndarray]:
    """Frames of chunk ``c`` and of chunk ``n`` that cover the same stretch of audio."""
    frames = data.shape[1]
    offset = int(round((c - n) * shift_frames))  # frame f of chunk c is frame f + offset of chunk n
    if abs(offset) >= frames:
        return data[c, :0], data[n, :0]
    if offset >= 0:
        return data[c, : frames - offset], data[n, offset:]
    return data[c, -offset:], data[n, : frames + offset]


def _best_matches(data: np.ndarray, c: int, anchors: tuple[int, ...], shift_frames: float,
                  min_agreement: float) -> dict[int, tuple[int, int]]:
    """Speaker ``s`` of chunk ``c`` → ``(anchor, speaker)`` sharing the largest part of its frames,
    among one-to-one matches with each anchor that cover at least ``min_agreement`` of them."""
    from scipy.optimize import linear_sum_assignment

    best: dict[int, tuple[float, int, int]] = {}
    for n in anchors:
        mine, theirs = (part.astype(np.float64) for part in _overlap(data, c, n, shift_frames))
        common = mine.T @ theirs  # (speakers of c, speakers of n): frames active in both
        own = mine.sum(axis=0)
        for s, j in zip(*linear_sum_assignment(common, maximize=True)):
            share = common[s, j] / own[s] if own[s] > 0 else 0.0
            if share >= min_agreement and share > best.get(s, (0.0,))[0]:
                best[s] = (share, n, int(j))
    return {s: (n, j) for s, (_, n, j) in best.items()}


def plan_embeddings(binary: np.ndarray, shift_frames: float, stride: int,
                    min_agreement: float = MIN_AGREEMENT) -> EmbeddingPlan:
    """Plan which (chunk, speaker) pairs to embed.

    ``binary``: (chunks, frames, speakers) binarised segmentation (NaN read as inactive);
    ``shift_frames``: segmentation frames between the starts of two consecutive chunks.
    Chunks ``0, stride, 2·stride, …`` and the last are anchors, embedded in full.  Every other
    active speaker is matched to the speakers of the anchors before and after it (one-to-one,
    most frames in common first); the better match of the two, if it covers ``min_agreement``
    of the speaker's frames, is followed, otherwise the speaker is embedded."""
    data = np.nan_to_num(np.asarray(binary, dtype=np.float64), nan=0.0) > 0
    chunks, _, speakers = data.shape
    embed = np.zeros((chunks, speakers), dtype=bool)
    plan = EmbeddingPlan(embed)
    anchors = sorted(set(range(0, chunks, max(1, stride))) | ({chunks - 1} if chunks else set()))
    embed[anchors] = True
    if stride <= 1:
        return plan
    active = data.any(axis=1)
    for before, after in zip(anchors, anchors[1:]):
        for c in range(before + 1, after):
            matches = _best_matches(data, c, (before, after), shift_frames, min_agreement)
            for s in np.flatnonzero(active[c]):
                if s in matches:
                    plan.follows[(c, int(s))] = matches[s]
                else:
                    embed[c, s] = True
    return plan


def drop_orphans(plan: EmbeddingPlan, embeddings: np.ndarray) -> np.ndarray:
    """Followers whose anchor speaker got no embedding (NaN: active under 0.2 s there) have nothing
    to follow: they leave ``plan.follows`` and are returned as a (chunks, speakers) mask to embed."""
    orphans = np.zeros_like(plan.embed)
    for (c, s), (n, j) in list(plan.follows.items()):
        if np.isnan(embeddings[n, j]).any():
            orphans[c, s] = True
            del plan.follows[(c, s)]
    return orphans


@lru_cache(maxsize=1)
def tracked_diarization_class():
    """pyannote's ``SpeakerDiarization`` with :func:`plan_embeddings` between segmentation and
    clustering (built on first use: importing pyannote costs seconds)."""
    from pyannote.audio.pipelines import SpeakerDiarization
    from pyannote.core import SlidingWindowFeature

    class TrackedSpeakerDiarization(SpeakerDiarization):
        """Embeds anchors and unmatched speakers only; clustering sees exactly those embeddings
        (the followers' are NaN, which its filter leaves out), and before the segmentation is
        turned into turns each follower takes the cluster of the anchor speaker it follows."""

        def __init__(self, *args, embedding_stride: int = 2, **kwargs):
            super().__init__(*args, **kwargs)
            self.embedding_stride = embedding_stride
            self._call = threading.local()  # one call's plan per thread: calls may run side by side

        def get_embeddings(self, file, binary_segmentations, exclude_overlap: bool = False, hook=None):
            self._call.follows = {}
            if self.embedding_stride <= 1 or self.training:
                return super().get_embeddings(file, binary_segmentations, exclude_overlap=exclude_overlap, hook=hook)
            shift = binary_segmentations.sliding_window.step / self._segmentation.model.receptive_field.step
            plan = plan_embeddings(binary_segmentations.data, shift, self.embedding_stride)

            def embed(which: np.ndarray) -> np.ndarray:
                # pyannote embeds every (chunk, speaker); a mask emptied here gives NaN without
                # running CAM++ (models.speaker_embedding skips masks under 0.2 s).  With
                # exclude_overlap (tried in the bench only) a speaker embedded in a window between
                # anchors no longer sees its overlap with that window's followers.
                masked = np.where(which[:, None, :], binary_segmentations.data, 0.0)
                return super(TrackedSpeakerDiarization, self).get_embeddings(
                    file, SlidingWindowFeature(masked, binary_segmentations.sliding_window),
                    exclude_overlap=exclude_overlap, hook=hook)

            embeddings = embed(plan.embed)
            orphans = drop_orphans(plan, embeddings)
            if orphans.any():
                embeddings[orphans] = embed(orphans)[orphans]
            self._call.follows = plan.follows
            return embeddings

        def reconstruct(self, segmentations, hard_clusters, count):
            # pyannote calls this after clustering, with inactive speakers set to -2
            for (c, s), (n, j) in getattr(self._call, "follows", {}).items():
                if hard_clusters[c, s] != -2 and hard_clusters[n, j] >= 0:
                    hard_clusters[c, s] = hard_clusters[n, j]
            return super().reconstruct(segmentations, hard_clusters, count)

    return TrackedSpeakerDiarization
