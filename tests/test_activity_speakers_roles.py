"""Channel analysis, voice activity, word attribution, utterances and roles (no models)."""

from __future__ import annotations

import numpy as np

from models.transcription import RecognisedSegment, RecognisedWord
from pipelines.activity import voice_activity
from pipelines.roles import phrase_hits, roles_from_channel_map, roles_from_content, AGENT_PHRASES_EN, AGENT_PHRASES_ZH
from pipelines.speakers import AttributedWord, analyse_channels, assign_speakers, group_utterances
from pipelines.text import join_words, normalise_word, to_simplified
from tests.audio_fixtures import silence, tone

SR = 16000


def test_voice_activity_is_relative_to_the_channel_level():
    # a quiet agent (-45 dBFS speech over a -80 dBFS floor) is still found
    quiet = np.concatenate([silence(1.0, level_db=-80), tone(1.0, level_db=-45), silence(2.0, level_db=-80), tone(0.5, level_db=-45)])
    spans = voice_activity(quiet, SR)
    assert len(spans) == 2
    assert abs(spans[0][0] - 1.0) < 0.05 and abs(spans[0][1] - 2.0) < 0.05
    assert abs(spans[1][0] - 4.0) < 0.05


def test_voice_activity_of_a_silent_channel_is_empty():
    assert voice_activity(silence(3.0, level_db=-70), SR) == []


def test_channel_analysis():
    a = tone(2.0, 200)
    b = np.concatenate([silence(1.0, level_db=-70), tone(1.0, 330)])
    assert analyse_channels(a[None]).mode == "diarization"
    assert analyse_channels(np.stack([a, a * 0.9])).mode == "diarization"  # same mix on both sides
    dead = analyse_channels(np.stack([a, silence(2.0, level_db=-90)]))
    assert dead.mode == "diarization" and dead.live_channels == (0,)
    distinct = analyse_channels(np.stack([a, b]))
    assert distinct.mode == "channels" and distinct.live_channels == (0, 1)


def _seg(words):
    return RecognisedSegment(words[0][0], words[-1][1], "", -0.2, 0.01, [RecognisedWord(s, e, t, 0.9) for s, e, t in words])


def test_words_go_to_the_speaker_active_around_them():
    segments = [_seg([(0.1, 0.5, "您好"), (0.5, 0.9, "请讲"), (1.2, 1.6, "我的"), (1.6, 2.0, "宽带"), (2.6, 2.8, "好")])]
    spans = [("A", 0.0, 1.0), ("B", 1.1, 2.1), ("A", 2.9, 3.5)]
    words = assign_speakers(segments, spans)
    assert [w.speaker for w in words] == ["A", "A", "B", "B", "A"]  # last word: nearest turn


def test_utterances_are_runs_and_overlaps_are_kept():
    w = lambda spk, s, e, t: AttributedWord(spk, s, e, t, 0.9)  # noqa: E731
    words = [
        w("cust", 0.0, 0.5, "我"), w("cust", 0.5, 1.0, "想"), w("cust", 1.0, 3.0, "问一下"),
        w("agent", 2.0, 2.5, "您好"),  # starts while the customer still speaks
        w("agent", 2.5, 3.2, "请讲"),
        w("cust", 5.0, 5.5, "好的"),  # after a long pause: a new utterance
    ]
    runs = group_utterances(words)
    assert [(r[0].speaker, len(r)) for r in runs] == [("cust", 3), ("agent", 2), ("cust", 1)]
    assert runs[1][0].start < runs[0][-1].end  # overlap survives


def test_traditional_becomes_simplified_and_words_join():
    assert to_simplified("廣州市房地產中介協會") == "广州市房地产中介协会"
    assert normalise_word(" 讓您久等了", "zh") == "让您久等了"
    assert join_words(["Thank", "you,", "sir."], "en") == "Thank you, sir."
    assert join_words(["您好", ",", "欢迎"], "zh") == "您好,欢迎"


def test_agent_phrases_survive_homophone_errors():
    hits = phrase_hits("您好,欢迎制电星河通信,公号1024为您服务", AGENT_PHRASES_ZH, AGENT_PHRASES_EN)
    assert {"欢迎致电", "工号", "为您服务"} <= set(hits)
    assert phrase_hits("喂,你说。", AGENT_PHRASES_ZH, AGENT_PHRASES_EN) == []


def test_roles_from_content_prefer_phrases_over_who_spoke_first():
    roles = roles_from_content({"s0": "喂,我家宽带坏了", "s1": "您好,欢迎致电星河通信,请问有什么可以帮您"}, {"s0": 0.2, "s1": 1.0})
    assert roles["s1"].role == "agent" and "欢迎致电" in roles["s1"].reason
    assert roles["s0"].role == "customer"


def test_roles_fall_back_to_first_speaker():
    roles = roles_from_content({"s0": "hello", "s1": "hi there"}, {"s0": 3.0, "s1": 0.5})
    assert roles["s1"].role == "agent" and "speaks first" in roles["s1"].reason


def test_roles_from_channel_map():
    roles = roles_from_channel_map({"ch0": 0, "ch1": 1}, agent_channel=1)
    assert roles["ch1"].role == "agent" and roles["ch0"].role == "customer"
    assert "right" in roles["ch1"].reason
