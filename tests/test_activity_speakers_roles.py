"""Channel analysis, voice activity, word attribution, utterances and roles (no models)."""

from __future__ import annotations

import numpy as np
import pytest

from models.transcription import RecognisedSegment, RecognisedWord
from pipelines.stages.activity import voice_activity
from pipelines.stages.roles import (
    ROLE_UNCERTAIN_BELOW, SpokenRun, find_cues, roles_from_channel_map, roles_from_content, transfer_run,
)
from pipelines.stages.speakers import AttributedWord, analyse_channels, assign_speakers, group_utterances
from pipelines.stages.text import join_words, normalise_word, to_simplified
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


def test_a_word_stretched_over_a_pause_goes_to_the_speaker_after_it():
    # 「谢谢不 / 客气」: Whisper starts 不 where 谢谢 ended; it is said after the pause, by the agent
    segments = [_seg([(29.11, 29.59, "谢谢"), (29.59, 30.43, "不"), (30.43, 30.61, "客"), (30.61, 30.83, "气")])]
    spans = [("C", 28.25, 29.8), ("A", 30.3, 30.91)]
    assert [w.speaker for w in assign_speakers(segments, spans)] == ["C", "A", "A", "A"]
    # no pause inside the word: the largest overlap decides as before
    overlapping = [_seg([(1.0, 2.0, "好的")])]
    assert [w.speaker for w in assign_speakers(overlapping, [("C", 0.0, 1.7), ("A", 1.7, 3.0)])] == ["C"]


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


def _runs(*turns):
    return [SpokenRun(speaker, start, text) for speaker, start, text in turns]


def test_agent_cues_survive_homophone_errors():
    cues = {cue.name for cue, _ in find_cues("您好,欢迎制电星河通信,公号1024为您服务")}
    assert {"greets with the hotline's name", "gives a staff number"} <= cues
    assert find_cues("喂,你说。") == []


def test_a_hotline_name_inside_a_question_is_customer_evidence():
    found = find_cues("喂,是星河通信客服热线吗?我的手机突然没信号了。")
    assert [c.side for c, _ in found] == ["customer", "customer"]
    assert "客服热线吗" in found[0][1]
    en = find_cues("Hi, is this the Acme customer service line? My order never arrived.")
    assert {c.side for c, _ in en} == {"customer"}


def test_customer_who_names_the_service_and_agent_who_answers_informally():
    roles = roles_from_content(_runs(
        ("s0", 0.8, "喂,你好,请问是星河通信客服吗?我要查话费。"),
        ("s1", 6.3, "是的,手机号多少?"),
        ("s0", 8.9, "一三六零零一二三四五六。"),
        ("s1", 11.8, "您这个月话费是八十六元,已经扣款了。"),
        ("s0", 16.0, "好的,谢谢。"),
        ("s1", 17.9, "不客气,还有其他问题吗?"),
        ("s0", 20.8, "没了。"),
        ("s1", 21.8, "好,再见。"),
    ))
    assert roles["s1"].role == "agent" and roles["s0"].role == "customer"
    assert roles["s1"].confidence >= ROLE_UNCERTAIN_BELOW
    assert any("number" in e for e in roles["s1"].evidence)
    assert any("asks whether this is the service" in e for e in roles["s0"].evidence)
    en = roles_from_content(_runs(
        ("a", 0.8, "Hi, is this the Acme support line? My order never arrived."),
        ("b", 5.2, "Yes. What can I do for you?"),
        ("a", 8.0, "The order number is three three one eight."),
        ("b", 11.0, "I have sent a replacement today."),
        ("a", 14.0, "Thanks a lot."),
    ))
    assert en["b"].role == "agent" and en["a"].role == "customer"


def test_agent_who_never_greets_is_still_the_agent():
    roles = roles_from_content(_runs(
        ("s0", 0.5, "喂。"),
        ("s1", 1.5, "喂,我家宽带坏了,我想报修。"),
        ("s0", 5.0, "您的宽带账号是多少?"),
        ("s1", 7.0, "我的账号是八八六二。"),
        ("s0", 9.0, "好的,请稍等,我帮您查一下。"),
    ))
    assert roles["s0"].role == "agent" and roles["s1"].role == "customer"


def test_both_sides_thank_and_the_agent_side_still_wins():
    roles = roles_from_content(_runs(
        ("c", 0.2, "你好,我想问一下我的套餐。"),
        ("a", 3.0, "您好,请问有什么可以帮您?"),
        ("c", 6.0, "好的谢谢。"),
        ("a", 8.0, "不客气,感谢您的来电。"),
        ("c", 10.0, "谢谢你,再见。"),
    ))
    assert roles["a"].role == "agent" and roles["c"].role == "customer"
    assert "感谢您的来电" in " ".join(roles["a"].evidence)  # the agent's thanks, not a customer's 谢谢您


def test_silent_customer_leaves_one_voice_taken_for_the_agent():
    roles = roles_from_content(_runs(
        ("s0", 0.8, "您好,欢迎致电星河通信客服中心,工号一零二四为您服务,请问有什么可以帮您?"),
        ("s0", 13.4, "您好,请问有什么可以帮您?"),
    ), heard_at={"s0": 0.8})
    assert list(roles) == ["s0"] and roles["s0"].role == "agent"


def test_no_evidence_either_way_is_uncertain():
    roles = roles_from_content(_runs(("s0", 3.0, "hello"), ("s1", 0.5, "hi there")))
    assert roles["s1"].role == "agent" and "speaks first" in roles["s1"].reason
    assert roles["s1"].confidence < ROLE_UNCERTAIN_BELOW


def test_a_third_voice_after_the_transfer_is_the_receiver():
    roles = roles_from_content(_runs(
        ("a", 0.8, "您好,欢迎致电星河通信客服中心,工号一零二四为您服务,请问有什么可以帮您?"),
        ("c", 8.8, "你好,我想开具去年全年的增值税发票。"),
        ("a", 13.9, "我现在为您转接财务专员,请您稍候不要挂机,可以吗?"),
        ("c", 23.9, "可以。"),
        ("r", 29.5, "王女士您好,我是财务专员小赵,工号三零零九,感谢您的耐心等待。"),
        ("c", 42.1, "好的,麻烦你了。"),
        ("r", 52.3, "请问您还有什么问题吗?"),
    ))
    assert roles["a"].kind == "agent" and roles["c"].kind == "customer"
    assert roles["r"].role == "agent" and roles["r"].kind == "receiver"


@pytest.mark.parametrize("heard", ["我现在为您转机财务专员", "我現在為您轉機財務專員", "我帮你转一下财务专员"])
def test_a_transfer_phrase_is_found_whatever_whisper_made_of_the_word_after_zhuan(heard):
    runs = _runs(("a", 0.8, "您好,工号一零二四为您服务"), ("a", 13.9, heard + ",请您稍候不要挂机"), ("c", 23.9, "可以。"))
    assert transfer_run(runs, "a").start == 13.9


@pytest.mark.parametrize("said", ["我帮您转账到这个卡上", "我给您转发一条短信", "我帮您转达给经理", "我为您转告他"])
def test_moving_money_or_messages_is_no_transfer(said):
    assert transfer_run(_runs(("a", 0.8, said)), "a") is None


def test_roles_from_channel_map():
    roles = roles_from_channel_map({"ch0": 0, "ch1": 1, "ch1_2": 1}, agent_channel=1, receivers=["ch1_2"])
    assert roles["ch1"].role == "agent" and roles["ch0"].role == "customer"
    assert roles["ch1_2"].role == "agent" and roles["ch1_2"].kind == "receiver"
    assert "right" in roles["ch1"].reason and roles["ch1"].confidence == 1.0
