"""Each operator on hand-made calls: a passing, a failing and an N/A case (zh and en)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fixtures_qa.build import T, call
from qa_rules.context import CallContext
from qa_rules.operators import OPERATORS


def run(name: str, conv_meas, params: dict, scope: str = "agent"):
    conv, meas = conv_meas
    op = OPERATORS[name]
    return op.fn(CallContext(conv, meas), scope, op.params.model_validate(params))


GREETING = {
    "match": {"at_least": 2},
    "window": {"first_turns": 1, "first_s": 15},
    "phrases": [
        {"any": ["您好", "下午好"], "name": "问候"},
        {"any": ["欢迎致电"], "name": "欢迎"},
        {"any": ["工号", "为您服务"], "name": "工号"},
        {"any": ["有什么可以帮您"], "name": "帮助"},
    ],
}


# ----------------------------------------------------------------------------- phrase
def test_phrase_n_of_passes_with_homophones():
    c = call([T("agent", 0.5, 6, "您好,欢迎制电星河,公号10 24位您服务"), T("customer", 6.5, 8, "你好")])
    out = run("phrase", c, GREETING)
    assert out.verdict == "pass"
    assert {e.expected for e in out.evidence} >= {"问候", "欢迎", "工号"}


def test_phrase_fails_with_too_few_elements_and_says_what_is_missing():
    out = run("phrase", call([T("agent", 0.5, 2, "喂,你说"), T("customer", 2.5, 5, "你好,我想查话费")]), GREETING)
    assert out.verdict == "fail"
    assert "missing" in out.evidence[-1].expected and "问候" in out.evidence[-1].expected


def test_phrase_window_first_seconds_excludes_late_hits():
    c = call([T("agent", 0.5, 2, "喂"), T("customer", 3, 5, "查话费"), T("agent", 30, 35, "您好,欢迎致电,工号一零二四")])
    assert run("phrase", c, {**GREETING, "window": {"first_s": 15}}).verdict == "fail"
    assert run("phrase", c, {**GREETING, "window": None}).verdict == "pass"


def test_phrase_all_and_negate_and_na():
    c = call([T("agent", 0, 3, "Thank you for calling, goodbye.")], language="en")
    assert run("phrase", c, {"match": "all", "phrases": ["thank you for calling", "goodbye"]}).verdict == "pass"
    assert run("phrase", c, {"match": "all", "phrases": ["thank you for calling", "anything else"]}).verdict == "fail"
    assert run("phrase", c, {"phrases": ["goodbye"], "negate": True}).verdict == "fail"
    only_customer = call([T("customer", 0, 3, "hello?")], language="en")
    assert run("phrase", only_customer, {"phrases": ["goodbye"]}).verdict == "na"


def test_phrase_last_turns_window():
    c = call([T("agent", 0, 3, "感谢您的来电"), T("customer", 4, 6, "我要查话费"), T("agent", 7, 9, "好的,已经查好了")])
    assert run("phrase", c, {"window": {"last_turns": 1}, "phrases": ["感谢您的来电"]}).verdict == "fail"
    assert run("phrase", c, {"window": {"last_turns": 2}, "phrases": ["感谢您的来电"]}).verdict == "pass"


# ----------------------------------------------------------------------------- absent
def test_absent_reports_each_hit():
    c = call([T("agent", 0, 2, "喂,什么?你说什么?"), T("customer", 3, 5, "我说开通漫游"), T("agent", 6, 8, "你说什么")])
    out = run("absent", c, {"phrases": [{"regex": "喂\\s*[,.!?]?\\s*什么"}, "你说什么"]})
    assert out.verdict == "fail"
    assert len(out.evidence) == 3
    assert [e.start for e in out.evidence] == sorted(e.start for e in out.evidence)


def test_absent_passes_and_na():
    c = call([T("agent", 0, 2, "对不起,麻烦您再复述一遍好吗?"), T("customer", 3, 5, "你说什么")])
    assert run("absent", c, {"phrases": ["你说什么"]}).verdict == "pass"  # the customer may say it
    assert run("absent", call([T("customer", 0, 2, "喂")]), {"phrases": ["你说什么"]}).verdict == "na"


def test_absent_english_regex():
    c = call([T("agent", 0, 2, "What? Speak up."), T("customer", 3, 5, "I said my account")], language="en")
    assert run("absent", c, {"phrases": [{"regex": "(^|[.!?,]\\s*)(what|huh)\\s*\\?"}]}).verdict == "fail"
    ok = call([T("agent", 0, 2, "What can I do for you?")], language="en")
    assert run("absent", ok, {"phrases": [{"regex": "(^|[.!?,]\\s*)(what|huh)\\s*\\?"}]}).verdict == "pass"


# ----------------------------------------------------------------------------- preference
PREF = {"phrases": ["您"], "avoid": [{"regex": "你(?!好)"}], "max_avoid_share": 0.5, "min_count": 2}


def test_preference_pass_fail_na():
    polite = call([T("agent", 0, 3, "喂,你说"), T("agent", 4, 7, "请您提供号码,我帮您查"), T("agent", 8, 10, "您本月有会员费")])
    assert run("preference", polite, PREF).verdict == "pass"
    rude = call([T("agent", 0, 3, "你说,你的号码"), T("agent", 4, 7, "你自己看,你的套餐"), T("agent", 8, 10, "请您稍等")])
    out = run("preference", rude, PREF)
    assert out.verdict == "fail" and out.evidence[-1].measured > 0.5
    assert run("preference", call([T("agent", 0, 3, "好的,已经办好了")]), PREF).verdict == "na"


# ----------------------------------------------------------------------------- sequence
SEQ = {"anchor": {"speaker": "customer", "phrases": ["谢谢"]}, "target": {"phrases": ["不客气", "不用谢"]}, "within_s": 8}


def test_sequence_pass_fail_na():
    ok = call([T("customer", 0, 2, "没有了,谢谢"), T("agent", 2.5, 5, "不客气,欢迎再次来电")])
    assert run("sequence", ok, SEQ).verdict == "pass"
    late = call([T("customer", 0, 2, "没有了,谢谢"), T("agent", 2.5, 5, "好的"), T("agent", 20, 22, "不客气")])
    assert run("sequence", late, SEQ).verdict == "fail"
    before = call([T("agent", 0, 2, "不客气"), T("customer", 3, 5, "谢谢")])
    assert run("sequence", before, SEQ).verdict == "fail"
    assert run("sequence", call([T("customer", 0, 2, "好的"), T("agent", 3, 5, "再见")]), SEQ).verdict == "na"


def test_sequence_before_relation_english():
    params = {"anchor": {"speaker": "agent", "phrases": ["goodbye"]}, "target": {"phrases": ["anything else"]}, "relation": "before"}
    ok = call([T("agent", 0, 2, "Anything else today?"), T("customer", 3, 4, "No"), T("agent", 5, 6, "Goodbye.")], language="en")
    assert run("sequence", ok, params).verdict == "pass"
    bad = call([T("agent", 0, 2, "Goodbye."), T("customer", 3, 4, "Anything else?")], language="en")
    assert run("sequence", bad, params).verdict == "fail"


# ----------------------------------------------------------------------------- hold
ANNOUNCE = {"min_wait_s": 10, "side": "before", "within_s": 15, "phrases": [{"any": ["请稍等", "稍等", "请您稍候"]}]}
RETURN = {"min_wait_s": 10, "side": "after", "within_s": 10, "phrases": ["让您久等了", "感谢您的耐心等待"]}


def announced_hold():
    return call([T("agent", 0, 5, "我帮您查询一下,大约需要一分钟,请您稍等好吗?"), T("customer", 5.4, 6, "好的"), T("agent", 19, 21, "对不起,让您就等了")])


def silent_hold():
    return call([T("agent", 0, 3, "请问您的手机号码是多少?"), T("customer", 3.5, 6, "一八八一二三四"), T("agent", 26, 30, "您的套餐是五十八元")])


def test_hold_announced_and_returned():
    out = run("hold", announced_hold(), ANNOUNCE)
    assert out.verdict == "pass"
    assert out.evidence[0].measured == pytest.approx(13.0)
    assert run("hold", announced_hold(), RETURN).verdict == "pass"


def test_hold_unannounced_fails_with_wait_length():
    out = run("hold", silent_hold(), ANNOUNCE)
    assert out.verdict == "fail"
    assert out.evidence[0].measured == pytest.approx(20.0) and out.evidence[0].start == pytest.approx(6.0)
    assert run("hold", silent_hold(), RETURN).verdict == "fail"


def test_hold_na_without_long_wait():
    short = call([T("agent", 0, 3, "好的"), T("customer", 8, 9, "嗯")])  # 5 s gap
    assert run("hold", short, ANNOUNCE).verdict == "na"


def test_hold_announcement_too_early_does_not_count():
    early = call([T("agent", 0, 2, "请稍等"), T("customer", 3, 20, "我的问题是" * 10), T("agent", 40, 42, "好了")])
    assert run("hold", early, ANNOUNCE).verdict == "fail"


def test_hold_after_agent_only_skips_customer_silences():
    c = silent_hold()
    assert run("hold", c, {**ANNOUNCE, "after_agent_only": True}).verdict == "na"


def test_hold_n_of_elements_english():
    params = {"min_wait_s": 10, "side": "before", "match": {"at_least": 2}, "grace_s": 0,
              "phrases": [{"any": ["let me check"]}, {"regex": "\\b(a|one|\\d+) (minute|moment)s?\\b"}, {"regex": "\\bmay i\\b"}]}
    good = call([T("agent", 0, 4, "Let me check that for you, it will take about a minute, may I put you on hold?"), T("customer", 4.5, 5, "Sure."), T("agent", 19, 20, "Thank you for holding.")], language="en")
    assert run("hold", good, params).verdict == "pass"
    bare = call([T("agent", 0, 1, "Hold on."), T("customer", 1.5, 2, "Ok."), T("agent", 19, 20, "Right.")], language="en")
    assert run("hold", bare, params).verdict == "fail"


# ----------------------------------------------------------------------------- band
def test_band_loudness_share_and_evidence():
    normal = call([T("agent", 0, 4, "您好", loudness=-22), T("customer", 5, 7, "你好"), T("agent", 8, 12, "好的", loudness=-24)])
    params = {"measure": "loudness_dbfs", "min": -40, "max": -13, "max_share_outside": 0.25}
    assert run("band", normal, params).verdict == "pass"
    loud = call([T("agent", 0, 4, "您好", loudness=-8), T("customer", 5, 7, "你好"), T("agent", 8, 12, "好的", loudness=-8)])
    out = run("band", loud, params)
    assert out.verdict == "fail" and out.evidence[0].measured == -8
    assert run("band", call([T("customer", 0, 4, "你好")]), params).verdict == "na"


def test_band_one_short_outlier_is_tolerated():
    c = call([T("agent", 0, 10, "一" * 50, loudness=-22), T("agent", 11, 12, "啊", loudness=-5)])
    assert run("band", c, {"measure": "loudness_dbfs", "max": -13, "max_share_outside": 0.25}).verdict == "pass"


def test_band_max_rise_catches_a_raised_voice():
    turns = [T("agent", i * 5, i * 5 + 4, "好的好的", loudness=lvl) for i, lvl in enumerate([-26, -26, -25, -22, -18, -17])]
    assert run("band", call(turns), {"measure": "loudness_dbfs", "min": -40, "max": -13, "max_rise": 6}).verdict == "fail"
    assert run("band", call(turns), {"measure": "loudness_dbfs", "min": -40, "max": -13, "max_rise": 10}).verdict == "pass"


def test_band_rate_units():
    fast = call([T("agent", 0, 4, "好" * 40), T("agent", 5, 9, "好" * 40)])  # ~10.9 chars/s
    params = {"measure": "rate", "unit": "chars_per_s", "min": 2.5, "max": 7.0}
    assert run("band", fast, params).verdict == "fail"
    normal = call([T("agent", 0, 4, "好" * 18), T("agent", 5, 9, "好" * 18)])  # ~4.9
    assert run("band", normal, params).verdict == "pass"
    english = call([T("agent", 0, 4, "hello " * 10)], language="en")
    assert run("band", english, params).verdict == "na"  # no chars_per_s utterances


def test_band_params_are_validated():
    with pytest.raises(ValidationError):
        OPERATORS["band"].params.model_validate({"measure": "rate"})
    with pytest.raises(ValidationError):
        OPERATORS["band"].params.model_validate({"measure": "rate", "min": 9, "max": 3})


# ----------------------------------------------------------------------------- interruption
INT = {"min_overlap_s": 1.0, "backchannel_max_s": 1.0, "backchannel_words": ["嗯", "好的", "对", "ok"]}


def test_interruption_barge_in_fails():
    c = call([T("customer", 9, 21.5, "网速特别慢" * 6), T("agent", 19, 24.5, "非常抱歉,我马上帮您登记报修")])
    out = run("interruption", c, INT)
    assert out.verdict == "fail" and out.evidence[0].measured == pytest.approx(2.5)


def test_interruption_backchannels_and_short_overlaps_pass():
    c = call([T("customer", 0, 10, "我的问题是" * 5), T("agent", 4, 4.5, "嗯"), T("agent", 6, 8, "嗯嗯,对"), T("customer", 12, 15, "好"), T("agent", 14.6, 18, "好的,我帮您查")])
    assert run("interruption", c, INT).verdict == "pass"


def test_interruption_na_without_customer_and_customer_barge_in_ignored():
    assert run("interruption", call([T("agent", 0, 3, "您好")]), INT).verdict == "na"
    c = call([T("agent", 0, 10, "您的套餐是" * 5), T("customer", 5, 12, "等一下,我不要这个套餐")])
    assert run("interruption", c, INT).verdict == "pass"


def test_every_registered_operator_is_tested_here():
    import sys

    source = open(sys.modules[__name__].__file__, encoding="utf-8").read()
    for name in OPERATORS:
        assert f'run("{name}"' in source, name
