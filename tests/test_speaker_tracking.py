"""Diarization with CAM++ embeddings on every other window only (models/speaker_tracking.py): the
plan of what to embed on made-up segmentations, then the real pipeline on pyannote's telephone
sample beside pyannote's every-window embedding."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from models.speaker_tracking import EmbeddingPlan, drop_orphans, plan_embeddings

FRAMES = 100
SHIFT = 10  # frames between two chunk starts


def _chunks(voices: list[list[tuple[int, int, int]]], count: int) -> np.ndarray:
    """(chunks, FRAMES, 3) segmentation from each chunk's (local speaker, first, last) frames, in
    the chunk's own frame numbers."""
    data = np.zeros((count, FRAMES, 3))
    for c, spans in enumerate(voices):
        for speaker, first, last in spans:
            data[c, first:last, speaker] = 1.0
    return data


def _two_voices(count: int, swap_at: set[int]) -> np.ndarray:
    """Voice A speaks audio frames 0–40, voice B 40–400; in the chunks of ``swap_at`` the
    segmentation names them in the other order (local speaker labels mean nothing across chunks)."""
    voices = []
    for c in range(count):
        start = c * SHIFT
        a, b = (1, 0) if c in swap_at else (0, 1)
        spans = []
        if start < 40:
            spans.append((a, 0, 40 - start))
        spans.append((b, max(0, 40 - start), min(FRAMES, 400 - start)))
        voices.append(spans)
    return _chunks(voices, count)


def test_every_other_chunk_follows_the_speaker_it_overlaps_whatever_its_label():
    data = _two_voices(7, swap_at={1, 4, 5})
    plan = plan_embeddings(data, SHIFT, stride=2)
    assert plan.embed[[0, 2, 4, 6]].all()  # anchors: every second chunk, and the last
    assert not plan.embed[[1, 3, 5]].any()
    # chunk 1 (swapped) follows chunk 0 or 2 with its labels swapped back; chunk 5 matches its
    # neighbour 4, which is swapped too
    assert plan.follows[(1, 1)] in {(0, 0), (2, 0)} and plan.follows[(1, 0)] in {(0, 1), (2, 1)}
    assert plan.follows[(3, 0)] in {(2, 0), (4, 1)} and plan.follows[(3, 1)] in {(2, 1), (4, 0)}
    assert plan.follows[(5, 0)] in {(4, 0), (6, 1)} and (5, 1) not in plan.follows  # A is done by then
    assert all(s != 2 for _, s in plan.follows)  # a silent local speaker follows nobody


def test_a_speaker_no_neighbour_hears_is_embedded():
    data = _two_voices(5, swap_at=set())
    data[1, 60:90, 2] = 1.0  # a third voice only the segmentation of chunk 1 picked up
    data[3, :, 0] = 0.0  # in chunk 3, "voice A" is heard at its last frames only: chunk 2 does not
    data[3, 95:100, 0] = 1.0  # reach them, and chunk 4 hears B there, already matched to chunk 3's B
    data[4, :, 2] = np.nan  # NaN (pyannote's partial stitching) reads as silence
    plan = plan_embeddings(data, SHIFT, stride=2)
    assert plan.embed[1, 2] and (1, 2) not in plan.follows
    assert plan.embed[3, 0] and (3, 0) not in plan.follows
    assert (1, 0) in plan.follows and (1, 1) in plan.follows


def test_stride_one_embeds_every_chunk_as_pyannote_does():
    data = _two_voices(6, swap_at={2})
    plan = plan_embeddings(data, SHIFT, stride=1)
    assert plan.embed.all() and not plan.follows
    single = plan_embeddings(data[:1], SHIFT, stride=2)
    assert single.embed.all() and not single.follows


def test_a_follower_of_an_anchor_speaker_without_embedding_is_embedded_itself():
    plan = EmbeddingPlan(np.zeros((3, 3), dtype=bool), {(1, 0): (0, 1), (1, 1): (2, 0)})
    embeddings = np.ones((3, 3, 4))
    embeddings[0, 1] = np.nan  # that anchor speaker was active under 0.2 s: CAM++ gave nothing
    orphans = drop_orphans(plan, embeddings)
    assert orphans[1, 0] and orphans.sum() == 1
    assert plan.follows == {(1, 1): (2, 0)}


def test_the_tracked_pipeline_embeds_fewer_windows_for_the_same_turns(engines):
    """On pyannote's telephone sample: stride 2 runs CAM++ on far fewer (window, speaker) pairs than
    every-window embedding, and its turns agree with those of every-window embedding."""
    import pyannote.audio.sample as sample_pkg
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    from models.diarization import Diarizer
    from pipelines.stages.audio import decode_audio

    signal = decode_audio(Path(sample_pkg.__file__).parent / "sample.wav").mono()
    tracked = engines.diarizer  # the default: a 0.1 step, stride 2
    assert (tracked.options.segmentation_step, tracked.options.embedding_stride) == (0.1, 2)
    every_window = Diarizer(tracked.segmentation_path, tracked.embedding_path, tracked.device,
                            replace(tracked.options, embedding_stride=1))
    turns, runs = {}, {}
    for stride, diarizer in ((1, every_window), (2, tracked)):
        count = [0]
        hook = diarizer._pipeline._embedding.model_.network.register_forward_hook(
            lambda *_: count.__setitem__(0, count[0] + 1))
        annotation = Annotation()
        try:
            for span in diarizer.diarize(signal):
                annotation[Segment(span.start, span.end)] = span.speaker
        finally:
            hook.remove()
        turns[stride], runs[stride] = annotation, count[0]
    print(f"CAM++ runs: every window {runs[1]}, stride 2 {runs[2]}")
    assert runs[2] <= 0.6 * runs[1]
    disagreement = DiarizationErrorRate(collar=0.5)(turns[1], turns[2])
    print(f"stride 2 against every-window embedding: {disagreement:.3f}")
    assert disagreement <= 0.02


def test_cam_plus_plus_bounds_onednn_shape_cache_unless_the_operator_set_one():
    """CAM++ sees a new input length for nearly every window speaker; oneDNN's default cache of
    1024 compiled shapes held 740 MB after a 20-min mono call (README).  Loading the embedding
    module bounds it, and leaves an operator's own value alone."""
    import os
    import subprocess
    import sys

    probe = "import os, models.speaker_embedding; print(os.environ['ONEDNN_PRIMITIVE_CACHE_CAPACITY'], os.environ['LRU_CACHE_CAPACITY'])"
    root = Path(__file__).resolve().parents[1]
    env = {k: v for k, v in os.environ.items() if k not in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY")}
    bounded = subprocess.run([sys.executable, "-c", probe], cwd=root, env=env, capture_output=True, text=True, check=True)
    assert bounded.stdout.split() == ["16", "16"]
    chosen = subprocess.run([sys.executable, "-c", probe], cwd=root, capture_output=True, text=True, check=True,
                            env={**env, "ONEDNN_PRIMITIVE_CACHE_CAPACITY": "256", "LRU_CACHE_CAPACITY": "64"})
    assert chosen.stdout.split() == ["256", "64"]
