"""Batched transcription: chunks never mix channels and words map back to their own channel and
time; end to end, a real sample call gives the same verdicts in batched and sequential mode."""

from __future__ import annotations

import numpy as np
import pytest

from models.transcription import SAMPLE_RATE, SpeechChunk, TranscriptionOptions, lay_out_chunks, plan_chunks

S = SAMPLE_RATE


def test_chunks_hold_at_most_30_s_of_speech_and_split_an_overlong_span():
    spans = [(0, 10 * S), (12 * S, 25 * S), (40 * S, 50 * S), (60 * S, 135 * S)]
    chunks = plan_chunks(spans, 30 * S)
    assert chunks == [
        [(0, 10 * S), (12 * S, 25 * S)],  # 23 s of speech; the next 10 s would make 33
        [(40 * S, 50 * S)],
        [(60 * S, 90 * S)], [(90 * S, 120 * S)], [(120 * S, 135 * S)],
    ]
    assert plan_chunks([], 30 * S) == []


def test_word_times_map_back_to_their_own_channel_and_span():
    # channel 0 speaks at 1-3 s and 10-12 s, channel 1 at 5-6 s; a tone marks each span
    ch0, ch1 = np.zeros(15 * S, np.float32), np.zeros(15 * S, np.float32)
    ch0[1 * S:3 * S], ch0[10 * S:12 * S], ch1[5 * S:6 * S] = 0.1, 0.2, 0.3
    chunks = [SpeechChunk(0, [(1 * S, 3 * S), (10 * S, 12 * S)]), SpeechChunk(1, [(5 * S, 6 * S)])]
    joined, placed = lay_out_chunks(chunks, [ch0, ch1])
    assert [c.at for c in placed] == [0, 4 * S]  # each chunk starts on a whole second
    assert len(joined) == 5 * S
    assert np.all(joined[:2 * S] == 0.1) and np.all(joined[2 * S:4 * S] == 0.2) and np.all(joined[4 * S:] == 0.3)
    first, second = placed
    assert first.original_span(0.5, 1.0) == (1.5, 2.0)  # in the first span
    assert first.original_span(2.5, 3.0) == (10.5, 11.0)  # in the second: the 7 s silence put back
    assert first.original_span(1.9, 2.3) == (9.9, 10.3)  # middle past the cut: both ends by the later span
    assert first.original_span(3.9, 4.4) == (11.9, 12.0)  # clamped to the chunk's own speech
    assert second.original_span(4.2, 4.6) == (5.2, 5.6)  # times of the laid-out signal → channel 1's own


def test_the_mode_is_in_the_cache_key_and_the_batch_size_is_not():
    batched, sequential = TranscriptionOptions(mode="batched"), TranscriptionOptions(mode="sequential")
    assert batched.as_dict() != sequential.as_dict()
    assert TranscriptionOptions(batch_size=2).as_dict() == TranscriptionOptions(batch_size=16).as_dict()


def test_batched_and_sequential_give_the_same_verdicts_on_a_real_call(engines, settings, sample_calls):
    """A short stereo sample call through the whole chain in each mode, on the one loaded model:
    both channels' words come back on their own channel, and every category verdict agrees."""
    from dataclasses import replace

    import qa_rules

    from pipelines.stages.analysis import analyse_call
    from pipelines.stages.scoring import load_rulebook_for
    from qa_rules.records import CallSource

    call = CallSource(call_id="en_no_closing", path=sample_calls / "en_no_closing.wav", channel_map="right")
    results = {}
    for mode in ("sequential", "batched"):
        transcriber = engines.transcriber.with_options(replace(engines.transcriber.options, mode=mode))
        mode_engines = replace(engines, transcriber=transcriber)
        analysed = analyse_call(call, settings.model_copy(update={"asr_mode": mode, "language": "en"}), mode_engines)
        conversation = analysed.conversation
        assert conversation.speaker_mode == "channels"
        assert {u.speaker for u in conversation.utterances} == {"ch0", "ch1"}
        assert all(w.start <= w.end <= conversation.duration_s for u in conversation.utterances for w in u.words)
        results[mode] = qa_rules.score(conversation, analysed.measures, load_rulebook_for("en", None)).categories
    assert results["batched"] == results["sequential"]


def test_sequential_mode_decodes_a_long_channel_window_by_window_with_times_put_back():
    """A channel longer than ten minutes is decoded in windows (bounded feature memory); each
    window's segment and word times come back shifted to the channel's own clock."""
    from models.long_audio import window_bounds
    from models.transcription import RecognisedSegment, RecognisedWord, Transcriber

    signal = np.random.default_rng(0).normal(0, 0.1, 25 * 60 * S).astype(np.float32)
    signal[9 * 60 * S + 30 * S : 9 * 60 * S + 32 * S] = 0.0  # a pause inside the first cut's search minute
    seen: list[int] = []

    def window(audio, language):
        seen.append(len(audio))
        return [RecognisedSegment(1.0, 2.0, "x", -0.1, 0.0, [RecognisedWord(1.0, 1.5, "x", 0.9)])]

    transcriber = object.__new__(Transcriber)
    transcriber.options = TranscriptionOptions(mode="sequential")
    transcriber._transcribe_window = window
    segments = transcriber.transcribe(signal, "zh")
    bounds = window_bounds(signal, S)
    assert len(bounds) == 3 and seen == [b - a for a, b in bounds]
    assert 9 * 60 * S + 30 * S <= bounds[0][1] <= 9 * 60 * S + 32 * S
    assert [s.start for s in segments] == [pytest.approx(a / S + 1.0) for a, _ in bounds]
    assert [s.words[0].end for s in segments] == [pytest.approx(a / S + 1.5) for a, _ in bounds]


def test_a_chunk_left_after_its_last_heard_word_keeps_the_rest_of_its_speech():
    chunk = SpeechChunk(1, [(1 * S, 3 * S), (10 * S, 12 * S), (20 * S, 21 * S)])
    assert chunk.after(0.5).spans == [(int(1.5 * S), 3 * S), (10 * S, 12 * S), (20 * S, 21 * S)]
    assert chunk.after(2.5).spans == [(int(10.5 * S), 12 * S), (20 * S, 21 * S)]
    assert chunk.after(4.0).spans == [(20 * S, 21 * S)]
    assert chunk.after(5.0).spans == [] and chunk.after(0.5).signal == 1


def test_batched_mode_goes_on_after_a_quiet_phrase_that_ended_the_chunk_early(engines, calls2):
    """D03: the caller's first phrase is 25 dB quieter than the rest.  Decoded once, the caller's
    chunk ended after it and the caller's four later turns were lost; the batched mode decodes the
    rest of such a chunk again, so every caller turn is heard, as in sequential mode."""
    import json
    from dataclasses import replace

    from pipelines.stages.audio import decode_audio

    label = json.loads((calls2 / "labels.json").read_text(encoding="utf-8"))["calls"]["D03_quiet_ok"]
    caller_turns = [(t["start"], t["end"]) for t in label["turns"] if t["speaker"] == "customer"]
    audio = decode_audio(calls2 / "D03_quiet_ok.flac")
    batched = engines.transcriber.with_options(replace(engines.transcriber.options, mode="batched"))
    caller, agent = batched.transcribe_many([audio.samples[0], audio.samples[1]], "zh")
    words = [w for seg in caller for w in seg.words]
    for start, end in caller_turns:
        assert any(start - 0.5 <= (w.start + w.end) / 2 <= end + 0.5 for w in words), (start, end, [s.text for s in caller])
    assert agent and max(w.end for seg in agent for w in seg.words) > 38.0


def test_a_chunk_head_before_its_first_heard_word_keeps_that_speech():
    chunk = SpeechChunk(1, [(1 * S, 3 * S), (10 * S, 12 * S), (20 * S, 21 * S)])
    assert chunk.before(1.5).spans == [(1 * S, int(2.5 * S))]
    assert chunk.before(2.5).spans == [(1 * S, 3 * S), (10 * S, int(10.5 * S))]
    assert chunk.before(5.0).spans == chunk.spans and chunk.before(1.0).signal == 1


def test_batched_mode_hears_speech_that_starts_mid_phrase(engines, sample_calls):
    """A 5-s piece cut 2 s into the agent's greeting: decoded once without timestamps, Whisper
    skipped the first 2.3 s (half the greeting) and the rest was dropped as silence, so the call had
    no speech at all; the head before the first heard word is decoded again, as sequential decoding
    hears it."""
    from dataclasses import replace

    from pipelines.stages.audio import decode_audio

    audio = decode_audio(sample_calls / "zh_good_stereo.flac")
    piece = [channel[2 * S:7 * S] for channel in audio.samples]
    batched = engines.transcriber.with_options(replace(engines.transcriber.options, mode="batched"))
    customer, agent = batched.transcribe_many(piece, "zh")
    words = [w for seg in agent for w in seg.words]
    assert words and words[0].start < 1.0, [s.text for s in agent]
    assert "客服中心" in "".join(s.text for s in agent), [s.text for s in agent]
