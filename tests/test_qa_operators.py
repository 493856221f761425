"""Each operator on hand-made calls: a passing, a failing and an N/A case (zh and en)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fixtures_qa.build import T, call
from qa_rules.context import CallContext, Occurrence
from qa_rules.operators import OPERATORS, TRIGGERS


def run(name: str, conv_meas, params: dict, scope: str = "agent", trigger: list[Occurrence] | None = None):
    """Run an operator; ``trigger``: the occurrences of the rule's situation (situational rules)."""
    conv, meas = conv_meas
    op = OPERATORS[name]
    ctx = CallContext(conv, meas)
    if trigger is not None:
        ctx = ctx.focus(trigger)
    return op.fn(ctx, scope, op.params.model_validate(params))


def detect(name: str, conv_meas, params: dict, scope: str = "any") -> list[Occurrence]:
    conv, meas = conv_meas
    trig = TRIGGERS[name]
    return trig.fn(CallContext(conv, meas), scope, trig.params.model_validate(params))


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
    for name in TRIGGERS:
        assert f'detect("{name}"' in source, name


# ============================================================================= situations: triggers
def occ(start: float, end: float, what: str = "test", value: str | None = None, speaker: str | None = None) -> Occurrence:
    return Occurrence(start, end, speaker, None, what, value)


def test_said_trigger_spans_the_turn_captures_a_value_and_needs_its_confirmation():
    c = call([T("agent", 0, 5, "您好,请问有什么可以帮您"), T("customer", 5.5, 9, "你好,我姓王,是自来水公司吗?"), T("agent", 9.5, 12, "不是,您打错了")])
    found = detect("said", c, {"phrases": [{"regex": "我姓(?P<value>[\\u4e00-\\u9fff])"}]}, "customer")
    assert [(o.start, o.end, o.value) for o in found] == [(5.5, 9, "王")]
    asked = {"phrases": [{"regex": "是.{1,12}公司"}], "confirmed_by": {"speaker": "agent", "within_s": 10, "phrases": ["不是", "打错"]}}
    assert len(detect("said", c, asked, "customer")) == 1
    right_place = call([T("customer", 0, 3, "是星河通信公司吗?"), T("agent", 3.5, 6, "是的,请问有什么可以帮您")])
    assert detect("said", right_place, asked, "customer") == []
    assert detect("said", c, {"phrases": ["打错了"]}, "customer") == []  # only the agent said it


def test_said_trigger_exact_sound_does_not_take_a_near_miss():
    c = call([T("agent", 0, 5, "这个需要的时间稍长一点,请您稍等")])
    assert detect("said", c, {"phrases": ["需要核实"]}, "agent") != []  # fuzzy by default: a near miss
    assert detect("said", c, {"phrases": ["需要核实"], "similarity": 1.0}, "agent") == []
    homophone = call([T("agent", 0, 5, "退款需要合适一下")])  # 核实 heard as 合适: same sound
    assert detect("said", homophone, {"phrases": ["需要核实"], "similarity": 1.0}, "agent") != []


def test_silent_party_from_voice_activity():
    silent = call([T("agent", 0.5, 8, "您好,欢迎致电,请问有什么可以帮您?"), T("agent", 13, 15, "您好,请问有什么可以帮您?")], duration=20)
    found = detect("silent_party", silent, {}, "customer")
    assert len(found) == 1 and found[0].start == 8 and found[0].end == 20
    answered = call([T("agent", 0.5, 8, "您好,请问有什么可以帮您?"), T("customer", 8.5, 10, "我想查话费")])
    assert detect("silent_party", answered, {}, "customer") == []
    no_agent = call([T("customer", 0.5, 3, "喂?")])
    assert detect("silent_party", no_agent, {}, "customer") == []


def test_quiet_party_absolute_and_relative_to_the_agent():
    c = call([T("agent", 0, 5, "您好,请问有什么可以帮您", loudness=-20), T("customer", 5.5, 9, "我想查一下宽带", loudness=-45),
              T("agent", 9.5, 12, "对不起,请您大声一点好吗", loudness=-20), T("customer", 12.5, 15, "我想查一下宽带", loudness=-23)])
    found = detect("quiet_party", c, {"max_level_dbfs": -38, "below_other_db": 15}, "customer")
    assert [o.start for o in found] == [5.5] and found[0].value == "-45.0"
    hot_line = call([T("agent", 0, 5, "您好", loudness=-6), T("customer", 5.5, 9, "我想查一下宽带", loudness=-25)])
    assert detect("quiet_party", hot_line, {"max_level_dbfs": -38, "below_other_db": 15}, "customer") != []
    assert detect("quiet_party", hot_line, {"max_level_dbfs": -38, "below_other_db": None}, "customer") == []


def test_quiet_party_voice_without_words():
    conv, meas = call([T("agent", 0, 5, "您好,请问有什么可以帮您")], duration=12)
    from qa_rules.records import SpeakerTurn

    conv = conv.model_copy(update={"turns": [*conv.turns, SpeakerTurn(speaker="C", start=6, end=9)]})
    assert [o.start for o in detect("quiet_party", (conv, meas), {"untranscribed_s": 2.0}, "customer")] == [6]
    assert detect("quiet_party", (conv, meas), {"untranscribed_s": 4.0}, "customer") == []


def test_noisy_party_needs_low_snr_over_a_loud_floor():
    from qa_rules.records import SpeakerMeasures

    conv, meas = call([T("agent", 0, 5, "您好"), T("customer", 5.5, 9, "我想查一下宽带")])
    noisy = meas.model_copy(update={"speakers": [SpeakerMeasures(speaker="C", role="customer", voiced_s=3, level_dbfs=-28, noise_dbfs=-35, snr_db=7)]})
    found = detect("noisy_party", (conv, noisy), {"max_snr_db": 12, "min_noise_dbfs": -45}, "customer")
    assert [(o.start, o.end) for o in found] == [(5.5, 9)]
    quiet_clean = meas.model_copy(update={"speakers": [SpeakerMeasures(speaker="C", role="customer", voiced_s=3, level_dbfs=-50, noise_dbfs=-60, snr_db=10)]})
    assert detect("noisy_party", (conv, quiet_clean), {"max_snr_db": 12, "min_noise_dbfs": -45}, "customer") == []


@pytest.mark.parametrize("text, digits", [
    ("号码是,零二八,六六五五,七七八八。", "02866557788"),
    ("号码是0 28 66 55 77 88", "02866557788"),
    ("请拨打幺三九一二三四五六七八", "13912345678"),
    ("电话是028-6655-7788", "02866557788"),
])
def test_long_number_in_numerals_or_digits(text, digits):
    c = call([T("agent", 0, 4, text)])
    assert [o.value for o in detect("long_number", c, {"min_digits": 7}, "agent")] == [digits]


def test_long_number_across_turns_not_amounts_not_read_backs():
    split = call([T("agent", 0, 2, "号码是零二八六六"), T("agent", 2.5, 4, "五五七七八八")])
    assert [o.value for o in detect("long_number", split, {"min_digits": 7}, "agent")] == ["02866557788"]
    amounts = call([T("agent", 0, 6, "您现在有八千积分,可以兑换八十元话费,一一四查询")])
    assert detect("long_number", amounts, {"min_digits": 7}, "agent") == []
    readback = call([T("customer", 0, 3, "我的号码是一三九一二三四五六七八"), T("agent", 3.5, 7, "一三九一二三四五六七八,好的")])
    assert detect("long_number", readback, {"min_digits": 7}, "agent") == []
    check = call([T("agent", 0, 5, "您的号码是一三九一二三四五六七八,对吗?")])
    assert detect("long_number", check, {"min_digits": 7}, "agent") == []
    english = call([T("agent", 0, 5, "The number is five five five, one two three, four five six seven.")], language="en")
    assert [o.value for o in detect("long_number", english, {"min_digits": 7}, "agent")] == ["5551234567"]


def test_new_voice_marks_the_receivers_first_words():
    c = call([T("agent", 0, 5, "我为您转接财务"), T("customer", 5.5, 6, "好"), T("receiver", 12, 16, "您好,我是财务小赵"), T("receiver", 20, 22, "好的")])
    found = detect("new_voice", c, {"kind": "receiver"})
    assert [(o.start, o.end, o.speaker) for o in found] == [(12, 12, "R")]
    assert detect("new_voice", call([T("agent", 0, 5, "您好")]), {"kind": "receiver"}) == []


# ============================================================================= situations: rule operators
RESPOND_AFTER = {"after_s": 15, "phrases": [{"name": "大声一点", "any": ["大声一点", "换一部电话"]}]}


def test_respond_after_the_occurrence():
    ok = call([T("customer", 0, 3, "我想查宽带"), T("agent", 4, 7, "对不起,请您大声一点好吗")])
    assert run("respond", ok, RESPOND_AFTER, trigger=[occ(0, 3)]).verdict == "pass"
    late = call([T("customer", 0, 3, "我想查宽带"), T("agent", 4, 7, "听不清"), T("agent", 30, 33, "请您大声一点")])
    out = run("respond", late, RESPOND_AFTER, trigger=[occ(0, 3)])
    assert out.verdict == "fail" and "missing: 大声一点" in out.evidence[0].expected
    assert run("respond", ok, RESPOND_AFTER, trigger=[]).verdict == "na"


def test_respond_before_the_occurrence_and_each():
    params = {"before_s": 10, "phrases": ["请您记录"], "occurrence": "each"}
    c = call([T("agent", 0, 2, "好的,请您记录一下"), T("agent", 4, 8, "号码是零二八六六五五七七八八"), T("agent", 40, 44, "另一个号码是幺三九一二三四五六七八")])
    assert run("respond", c, params, trigger=[occ(5, 8)]).verdict == "pass"
    out = run("respond", c, params, trigger=[occ(5, 8), occ(41, 44)])
    assert out.verdict == "fail"
    assert run("respond", c, {**params, "occurrence": "first"}, trigger=[occ(5, 8), occ(41, 44)]).verdict == "pass"
    after_number = call([T("agent", 0, 4, "号码是零二八六六五五七七八八"), T("agent", 5, 7, "请您记录一下")])
    assert run("respond", after_number, params, trigger=[occ(1, 4)]).verdict == "fail"


def test_respond_fills_the_captured_value():
    params = {"after_s": 600, "phrases": [{"any": ["{value}先生", "{value}女士"]}]}
    c = call([T("customer", 0, 3, "我姓王"), T("agent", 4, 7, "王女士您好,关于您的问题")])
    assert run("respond", c, params, trigger=[occ(0, 3, value="王")]).verdict == "pass"
    assert run("respond", c, params, trigger=[occ(0, 3, value="周")]).verdict == "fail"


def test_respond_from_the_next_turn_and_fallback_speaker():
    params = {"from_next_turn": True, "after_s": 12, "match": {"at_least": 2},
              "phrases": [{"any": ["先生", "女士"]}, {"any": ["久等", "耐心等待"]}, {"any": ["关于您", "您要"]}]}
    good = call([T("agent", 0, 4, "我为您转接财务专员,可以吗"), T("customer", 4.5, 5, "可以"),
                 T("receiver", 25, 30, "王女士您好,让您久等了,关于您的发票")])
    assert run("respond", good, params, scope="receiver", trigger=[occ(0, 4)]).verdict == "pass"
    blind = call([T("agent", 0, 4, "转过去了"), T("receiver", 8, 8.5, "喂?"), T("customer", 9, 12, "你好,我想开发票")])
    assert run("respond", blind, params, scope="receiver", trigger=[occ(0, 4)]).verdict == "fail"
    untold = call([T("agent", 0, 4, "我为您转接财务专员,可以吗"), T("customer", 4.5, 5, "可以"), T("agent", 25, 30, "王女士您好,让您久等了")])
    out = run("respond", untold, {**params, "fallback_speaker": "agent"}, scope="receiver", trigger=[occ(0, 4)])
    assert out.verdict == "pass" and "judged the agent" in out.note


SILENT_STEPS = {
    "steps": [
        {"name": "问候", "phrases": [{"any": ["有什么可以帮您", "您好"]}]},
        {"name": "再次问候", "gap_s": {"min": 4, "max": 8}, "phrases": [{"any": ["有什么可以帮您", "您好"]}]},
        {"name": "无声结束语", "gap_s": {"min": 4, "max": 8}, "phrases": [{"any": ["听不到您的声音", "没有声音"]}]},
    ],
    "hang_up_s": {"min": 4, "max": 8},
}


def test_steps_silent_caller_script():
    ok = call([T("agent", 0.8, 8, "您好,欢迎致电,请问有什么可以帮您?"), T("agent", 13.2, 15.8, "您好,请问有什么可以帮您?"),
               T("agent", 21.1, 27.4, "对不起,听不到您的声音,请您换一部电话再打过来,好吗?再见!")], duration=32.9)
    out = run("steps", ok, SILENT_STEPS)
    assert out.verdict == "pass"
    assert [e.measured for e in out.evidence[1:]] == [5.2, 5.3, 5.5]
    hung_up = call([T("agent", 0.8, 8.5, "您好,欢迎致电,请问有什么可以帮您?")], duration=9.7)
    out = run("steps", hung_up, SILENT_STEPS)
    assert out.verdict == "fail" and "再次问候" in out.evidence[-1].expected
    rushed = call([T("agent", 0.8, 8, "您好,请问有什么可以帮您?"), T("agent", 9.5, 11, "您好,请问有什么可以帮您?"),
                   T("agent", 12.5, 15, "对不起,听不到您的声音")], duration=21)
    out = run("steps", rushed, SILENT_STEPS)
    assert out.verdict == "fail" and out.evidence[-1].measured == 1.5
    quick_release = call([T("agent", 0.8, 8, "请问有什么可以帮您?"), T("agent", 13, 15, "您好,请问有什么可以帮您?"),
                          T("agent", 20, 24, "对不起,听不到您的声音")], duration=25)
    out = run("steps", quick_release, SILENT_STEPS)
    assert out.verdict == "fail" and out.evidence[-1].measured == 1.0
    assert run("steps", call([T("customer", 0, 2, "喂")]), SILENT_STEPS).verdict == "na"


HANG_UP = {"within_s": 20, "min_wait_s": 4, "phrases": [{"any": ["换一部电话", "给您打过去"]}]}


def test_hang_up_needs_the_line_and_a_wait():
    curt = call([T("customer", 9, 12, "我想查宽带"), T("agent", 13, 14, "听不清。")], duration=15)
    out = run("hang_up", curt, HANG_UP, trigger=[occ(9, 12)])
    assert out.verdict == "fail" and "不可以直接挂机" in out.evidence[-1].expected
    polite = call([T("customer", 9, 12, "我想查宽带"), T("agent", 13, 17, "对不起,您的电话声音太小,请您换一部电话挂来好吗")], duration=22.5)
    assert run("hang_up", polite, HANG_UP, trigger=[occ(9, 12)]).verdict == "pass"
    abrupt = call([T("customer", 9, 12, "我想查宽带"), T("agent", 13, 17, "请您换一部电话挂来好吗")], duration=18)
    assert run("hang_up", abrupt, HANG_UP, trigger=[occ(9, 12)]).verdict == "fail"
    went_on = call([T("customer", 9, 12, "我想查宽带"), T("agent", 13, 17, "请您大声一点"), T("agent", 50, 55, "再见")], duration=56)
    assert run("hang_up", went_on, HANG_UP, trigger=[occ(9, 12)]).verdict == "na"


def test_level_steady_against_the_agents_own_baseline():
    base = [T("agent", 0, 5, "您好,请问有什么可以帮您", loudness=-20), T("customer", 5.5, 9, "我想查宽带", loudness=-45)]
    calm = call(base + [T("agent", 10, 13, "对不起,请您大声一点好吗", loudness=-19)])
    assert run("level_steady", calm, {"max_rise_db": 3}, trigger=[occ(5.5, 9)]).verdict == "pass"
    shouting = call(base + [T("agent", 10, 13, "对不起,请您大声一点好吗", loudness=-13)])
    out = run("level_steady", shouting, {"max_rise_db": 3}, trigger=[occ(5.5, 9)])
    assert out.verdict == "fail" and out.evidence[0].measured == 7.0
    assert run("level_steady", call(base), {"max_rise_db": 3}, trigger=[occ(5.5, 9)]).verdict == "na"


def test_jump_after_turn_level_and_rate():
    def turns(level_after: float, rate_after: float):
        return call([T("agent", 0, 5, "您好,请问有什么可以帮您", rate=5.0), T("customer", 5.5, 8, "我想查话费"),
                     T("agent", 8.5, 12, "好的,请您提供一下手机号码", rate=5.0), T("customer", 12.5, 15, "我不是说了吗"),
                     T("agent", 15.5, 19, "您的话费是八十六元已经扣款", loudness=level_after, rate=rate_after), T("agent", 25, 29, "请问还有什么问题吗", rate=5.0)])
    params = {"level_rise_db": 6, "rate_rise_ratio": 1.5, "rate_unit": "chars_per_s"}
    assert run("jump_after_turn", turns(-21, 5.5), params).verdict == "pass"
    out = run("jump_after_turn", turns(-12, 5.0), params)
    assert out.verdict == "fail" and out.evidence[0].measured == 10.0
    assert run("jump_after_turn", turns(-22, 8.5), params).verdict == "fail"
    assert run("jump_after_turn", call([T("agent", 0, 5, "您好")]), params).verdict == "na"


def test_response_gap_median_and_p90():
    fast = call([T("customer", 0, 2, "你好"), T("agent", 2.5, 4, "您好"), T("customer", 4.5, 6, "查话费"), T("agent", 6.6, 8, "好的"),
                 T("customer", 8.5, 10, "谢谢"), T("agent", 10.4, 12, "不客气")])
    out = run("response_gap", fast, {"max_median_s": 2, "max_p90_s": 5})
    assert out.verdict == "pass" and out.evidence[0].measured == 0.5
    slow = call([T("customer", 0, 2, "你好"), T("agent", 5, 6, "您好"), T("customer", 6.5, 8, "查话费"), T("agent", 11, 12, "好的"),
                 T("customer", 12.5, 14, "谢谢"), T("agent", 14.5, 15, "不客气")])
    out = run("response_gap", slow, {"max_median_s": 2, "max_p90_s": 5})
    assert out.verdict == "fail" and out.evidence[0].measured == 3.0
    held = call([T("customer", 0, 2, "你好"), T("agent", 2.5, 4, "请稍等"), T("customer", 4.5, 5, "好"), T("agent", 25, 27, "让您久等了")])
    assert run("response_gap", held, {"max_median_s": 2, "max_p90_s": 5, "max_gap_s": 10}).verdict == "na"  # one gap left


def test_dead_air_longest_silence():
    c = call([T("agent", 0, 3, "请您稍等"), T("agent", 20, 22, "让您久等了")])
    out = run("dead_air", c, {"max_s": 30, "report_over_s": 10})
    assert out.verdict == "pass" and out.evidence[0].measured == 17.0
    long_wait = call([T("agent", 0, 3, "请您稍等"), T("agent", 40, 42, "让您久等了")])
    assert run("dead_air", long_wait, {"max_s": 30}).verdict == "fail"
    assert run("dead_air", call([]), {"max_s": 30}).verdict == "na"


def test_language_mix_latin_words_and_dialect():
    params = {"foreign": "latin", "max_share": 0.5, "min_foreign": 3, "allow": ["app", "wifi"], "dialect_markers": ["嘅", "咗", "冇", "唔"], "min_markers": 2}
    ok = call([T("agent", 0, 4, "您好,请您打开APP,连上WiFi再试一下")])
    assert run("language_mix", ok, params).verdict == "pass"
    english = call([T("agent", 0, 4, "您好"), T("agent", 5, 9, "OK, let me check your account for you")])
    out = run("language_mix", english, params)
    assert out.verdict == "fail" and out.evidence[0].measured == 1.0
    cantonese = call([T("agent", 0, 4, "你部手机冇咗信号,唔使担心")])
    assert run("language_mix", cantonese, params).verdict == "fail"
    assert run("language_mix", call([T("agent", 0, 1, "好的")]), params).verdict == "na"
    zh_in_en = call([T("agent", 0, 4, "您好请问有什么可以帮您")], language="en")
    assert run("language_mix", zh_in_en, {"foreign": "cjk"}).verdict == "fail"


def test_silent_party_ignores_the_agents_voice_split_off_by_diarization():
    # mono silent call: diarization cut the agent's one voice in two; the "customer" only repeats the offer of help
    split = call([T("agent", 0.4, 6.1, "您好,欢迎致电星河通信,工号一零二四为您服务"), T("customer", 6.5, 8.0, "请问有什么可以帮您。"),
                  T("customer", 13.1, 15.7, "您好,请问有什么可以帮您。"), T("agent", 20.9, 27.2, "对不起,听不到您的声音,请您换一部电话再打过来")], duration=32.9)
    params = {"other_side_phrases": ["请问有什么可以帮您", "有什么可以帮您", "您好"]}
    assert detect("silent_party", split, {}, "customer") == []
    assert len(detect("silent_party", split, params, "customer")) == 1
    answer = call([T("agent", 0.4, 6.1, "您好,请问有什么可以帮您"), T("customer", 6.5, 8.0, "您好")])
    assert detect("silent_party", answer, params, "customer") == []  # a bare 您好 is an answer
    # and the script is judged on every voice: the repeated greeting after a 5 s pause counts
    out = run("steps", split, SILENT_STEPS, scope="any")
    assert out.verdict == "pass", [(e.expected, e.measured) for e in out.evidence]


def test_hang_up_is_na_once_the_customer_is_heard_again():
    solved = call([T("customer", 9, 12, "我想查宽带", loudness=-46), T("agent", 12.5, 15, "请您大声一点好吗"), T("customer", 15.5, 18, "我想查宽带"),
                   T("agent", 18.5, 21, "您的宽带还有十二天到期,再见")], duration=22)
    assert run("hang_up", solved, HANG_UP, trigger=[occ(9, 12)]).verdict == "na"
    assert run("hang_up", solved, {**HANG_UP, "unless_answered": False}, trigger=[occ(9, 12)]).verdict == "fail"
