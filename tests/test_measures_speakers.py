"""Per-speaker level, noise floor and SNR (`Measures.speakers`) from synthetic audio: the triggers
of the can't-hear scripts (a quiet caller, a noisy line) read these, so they must measure a voice
that ASR never transcribed."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from audio_fixtures import silence, tone
from pipelines.stages.audio import CallAudio
from pipelines.stages.measures import measure_call, measure_speakers
from qa_rules.records import Conversation, ModelsInfo, Speaker, SpeakerTurn, Utterance


def _stereo(customer_db: float, customer_noise_db: float) -> CallAudio:
    """10 s: agent (right) speaks 0–3 s at -20 dBFS, customer (left) 4–7 s; -60 dBFS noise on the agent line."""
    agent = np.concatenate([tone(3, 200, level_db=-20), silence(7, level_db=-60, seed=1)])
    customer = np.concatenate([silence(4, level_db=customer_noise_db, seed=2), tone(3, 300, level_db=customer_db),
                               silence(3, level_db=customer_noise_db, seed=3)])
    customer[: 4 * 16000] = silence(4, level_db=customer_noise_db, seed=4)
    return CallAudio(source=Path("x.wav"), samples=np.stack([customer, agent]), original_sample_rate=16000, codec="pcm")


def _conversation(words: bool = True) -> Conversation:
    utts = [Utterance(speaker="A", role="agent", start=0, end=3, text="您好,请问有什么可以帮您")]
    if words:
        utts.append(Utterance(speaker="C", role="customer", start=4, end=7, text="号码是0 28"))  # 3 characters + 3 digits read as syllables
    return Conversation(
        call_id="c", source="x.wav", duration_s=10, language="zh", channels=2, speaker_mode="channels",
        speakers=[Speaker(id="C", role="customer", role_reason="t", channel=0), Speaker(id="A", role="agent", role_reason="t", channel=1)],
        utterances=utts, turns=[SpeakerTurn(speaker="A", start=0, end=3), SpeakerTurn(speaker="C", start=4, end=7)],
        models=ModelsInfo(asr="t", diarization=None, device="cpu"),
    )


def test_quiet_caller_on_a_clean_line():
    out = {s.speaker: s for s in measure_speakers(_stereo(-45, -60), _conversation(words=False))}
    assert out["C"].level_dbfs == pytest.approx(-45, abs=0.5)
    assert out["C"].noise_dbfs == pytest.approx(-60, abs=1.0)
    assert out["C"].snr_db == pytest.approx(15, abs=1.5) and out["C"].voiced_s == 3.0
    assert out["A"].level_dbfs == pytest.approx(-20, abs=0.5)


def test_noisy_line_and_the_measures_record():
    measures = measure_call(_stereo(-28, -34), _conversation())
    customer = next(s for s in measures.speakers if s.speaker == "C")
    assert customer.noise_dbfs == pytest.approx(-34, abs=1.0) and customer.snr_db == pytest.approx(6, abs=1.5)
    assert measures.utterances[1].rate == pytest.approx(6 / measures.utterances[1].voiced_s, abs=0.01)
