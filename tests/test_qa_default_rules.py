"""Every default rule on hand-made calls (pass / fail / N/A), the constructed calls' labelled
category verdicts end to end, and the scorecard contract."""

from __future__ import annotations

import json

import pytest

from fixtures_qa.build import T, call, from_labels, labelled_calls
from qa_rules import Scorecard, default_rulebook_path, load_rulebook, score
from qa_rules.context import CallContext
from qa_rules.engine import run_rule

ZH = load_rulebook(default_rulebook_path("zh"))
EN = load_rulebook(default_rulebook_path("en"))


def verdict(book, rule_id, c) -> str:
    rule = next(r for _, r in book.rules if r.id == rule_id)
    return run_rule(CallContext(*c), rule).verdict


# A complete good Mandarin call, with the homophone errors Whisper makes, and variants.
GREET = T("agent", 0.5, 7, "您好,欢迎制电星河通信,公号10 24位您服务,请问有什么可以帮您?")
ASK = T("customer", 7.5, 11, "你好,我的宽带上不了网了")
HOLD_ANN = T("agent", 11.5, 16, "好的,我帮您查询一下,大约需要一分钟,请您稍等好吗?")
OK = T("customer", 16.4, 17, "好的")
BACK = T("agent", 30, 32, "对不起,让您就等了")
ANSWER = T("agent", 32.3, 38, "经查询,您所在的小区线路检修,现在已经恢复了")
ELSE = T("agent", 39, 41, "请问您还有什么问题吗?")
THANKS = T("customer", 41.5, 43, "没有了,谢谢")
BYE = T("agent", 43.5, 48, "不客气,感谢您的来电,欢迎您再次来电,再见!")
ZH_GOOD = [GREET, ASK, HOLD_ANN, OK, BACK, ANSWER, ELSE, THANKS, BYE]
ZH_NO_HOLD = [GREET, ASK, T("agent", 11.5, 17, "经查询,您所在的小区线路检修"), T("agent", 17.5, 19.5, "请问您还有什么问题吗?"),
              T("customer", 20, 21.5, "没有了,谢谢"), T("agent", 22, 26, "不客气,感谢您的来电,欢迎您再次来电,再见!")]


def zh(turns):
    return call(turns, language="zh")


def replace(turns, old, new):
    return [new if t is old else t for t in turns]


CASES_ZH = {
    # rule: (failing call, N/A call)
    "greeting.standard": (replace(ZH_GOOD, GREET, T("agent", 0.5, 2, "喂,你说")), [ASK]),
    "hold.announce_10s": (replace(ZH_GOOD, HOLD_ANN, T("agent", 11.5, 16, "好的,请问您的手机号码是多少?")), ZH_NO_HOLD),
    "hold.return_apology": (replace(ZH_GOOD, BACK, T("agent", 30, 32, "好的")), ZH_NO_HOLD),
    "hold.reason_consent_timelimit": (replace(ZH_GOOD, HOLD_ANN, T("agent", 11.5, 16, "请稍等")), ZH_NO_HOLD),
    "closing.anything_else": (ZH_GOOD[:6], [ASK]),
    "closing.thanks_for_calling": (ZH_GOOD[:6], [ASK]),
    "closing.welcome_again": (ZH_GOOD[:6], [ASK]),
    "closing.reply_to_thanks": (ZH_GOOD[:7] + [THANKS, T("agent", 43.5, 46, "感谢您的来电")], [GREET, ASK, ANSWER]),
    "forbidden.rude_repeat_request": (ZH_GOOD[:2] + [T("agent", 11.3, 13, "喂,什么?你说什么?")] + ZH_GOOD[2:], [ASK]),
    "forbidden.profanity": (ZH_GOOD[:2] + [T("agent", 11.3, 13, "你有病吧,他妈的")] + ZH_GOOD[2:], [ASK]),
    "polite.courtesy_terms": ([GREET, ASK, T("agent", 11.5, 16, "你的号码是多少,你自己看看你的套餐"), OK, T("agent", 20, 24, "你的宽带好了,你重启"), BYE], [ASK]),
    "polite.no_blame_shifting": (ZH_GOOD[:6] + [T("agent", 38.2, 38.9, "这不归我管")] + ZH_GOOD[6:], [ASK]),
}


@pytest.mark.parametrize("rule_id", sorted(CASES_ZH))
def test_zh_text_rules_pass_fail_na(rule_id):
    failing, na = CASES_ZH[rule_id]
    assert verdict(ZH, rule_id, zh(ZH_GOOD)) == "pass"
    assert verdict(ZH, rule_id, zh(failing)) == "fail"
    assert verdict(ZH, rule_id, zh(na)) == "na"


def _with(turns, **kw):
    return [T(t.role, t.start, t.end, t.text, **kw) if t.role == "agent" else t for t in turns]


@pytest.mark.parametrize(
    "rule_id, bad",
    [
        ("voice.loudness", {"loudness": -8.0}),
        ("voice.loudness", {"loudness": -48.0}),
        ("voice.clipping", {"clipping": 0.02}),
        ("voice.speech_rate", {"rate": 8.7}),
        ("voice.speech_rate", {"rate": 1.5}),
        ("voice.pitch_intonation", {"pitch_range": 0.8}),
    ],
)
def test_zh_voice_rules_pass_fail_na(rule_id, bad):
    assert verdict(ZH, rule_id, zh(_with(ZH_GOOD, rate=5.0))) == "pass"
    assert verdict(ZH, rule_id, zh(_with(ZH_GOOD, **bad))) == "fail"
    assert verdict(ZH, rule_id, zh([ASK])) == "na"


def test_zh_no_interrupt_pass_fail_na():
    assert verdict(ZH, "listen.no_interrupt", zh(ZH_GOOD)) == "pass"
    barge = [GREET, T("customer", 7.5, 19, "网速特别慢,晚上看视频一直卡,打了好几次电话都没人来"), T("agent", 16.5, 22, "非常抱歉,我马上帮您登记报修"), BYE]
    assert verdict(ZH, "listen.no_interrupt", zh(barge)) == "fail"
    assert verdict(ZH, "listen.no_interrupt", zh([GREET])) == "na"


# ----------------------------------------------------------------------------- English
E_GREET = T("agent", 0.5, 6, "Thank you for calling Acme support, this is Joe, agent 1024, how can I help you today?")
E_ASK = T("customer", 6.5, 11, "Hi, I was charged twice for my subscription.")
E_HOLD = T("agent", 11.5, 15, "Let me check that for you, it will take about a minute, may I put you on hold?")
E_OK = T("customer", 15.4, 16, "Yes, that's fine.")
E_BACK = T("agent", 30, 31.5, "Thank you for holding.")
E_ANSWER = T("agent", 31.8, 37, "I have issued a refund, it should reach your card in three days.")
E_ELSE = T("agent", 38, 40, "Is there anything else I can help you with?")
E_THANKS = T("customer", 40.5, 42, "No, that's all. Thanks.")
E_BYE = T("agent", 42.5, 44.5, "Thank you for calling, goodbye.")
EN_GOOD = [E_GREET, E_ASK, E_HOLD, E_OK, E_BACK, E_ANSWER, E_ELSE, E_THANKS, E_BYE]
EN_NO_HOLD = [E_GREET, E_ASK, T("agent", 11.5, 16, "I have issued a refund."), T("customer", 16.5, 18, "Thanks."), T("agent", 18.5, 20, "You're welcome, goodbye.")]

CASES_EN = {
    "greeting.standard": (replace(EN_GOOD, E_GREET, T("agent", 0.5, 1.5, "Yeah?")), [E_ASK]),
    "hold.announce_10s": (replace(EN_GOOD, E_HOLD, T("agent", 11.5, 15, "What is your email address?")), EN_NO_HOLD),
    "hold.return_apology": (replace(EN_GOOD, E_BACK, T("agent", 30, 31.5, "Okay.")), EN_NO_HOLD),
    "hold.reason_consent_timelimit": (replace(EN_GOOD, E_HOLD, T("agent", 11.5, 15, "Hold on.")), EN_NO_HOLD),
    "closing.anything_else": ([E_GREET, E_ASK, E_ANSWER, T("customer", 38, 40, "It works now."), T("agent", 40.5, 41, "Great.")], [E_ASK]),
    "closing.thanks_for_calling": ([E_GREET, E_ASK, E_ANSWER, T("customer", 38, 40, "It works now."), T("agent", 40.5, 41, "Great.")], [E_ASK]),
    "closing.welcome_again": ([E_GREET, E_ASK, E_ANSWER, T("customer", 38, 40, "It works now."), T("agent", 40.5, 41, "Great.")], [E_ASK]),
    "closing.reply_to_thanks": (EN_GOOD[:7] + [E_THANKS, T("agent", 42.5, 44, "Okay.")], [E_GREET, E_ASK, E_ANSWER]),
    "forbidden.rude_repeat_request": (EN_GOOD[:2] + [T("agent", 11.2, 11.4, "What?")] + EN_GOOD[2:], [E_ASK]),
    "forbidden.profanity": (EN_GOOD[:2] + [T("agent", 11.2, 11.4, "That's a stupid question.")] + EN_GOOD[2:], [E_ASK]),
    "polite.courtesy_terms": (EN_GOOD[:2] + [T("agent", 11.2, 11.4, "Calm down and listen to me.")] + EN_GOOD[2:], [E_ASK]),
    "polite.no_blame_shifting": (EN_GOOD[:2] + [T("agent", 11.2, 11.4, "That's not my problem.")] + EN_GOOD[2:], [E_ASK]),
}


@pytest.mark.parametrize("rule_id", sorted(CASES_EN))
def test_en_text_rules_pass_fail_na(rule_id):
    failing, na = CASES_EN[rule_id]
    assert verdict(EN, rule_id, call(EN_GOOD, language="en")) == "pass"
    assert verdict(EN, rule_id, call(failing, language="en")) == "fail"
    assert verdict(EN, rule_id, call(na, language="en")) == "na"


@pytest.mark.parametrize("rule_id, bad", [("voice.loudness", {"loudness": -8.0}), ("voice.clipping", {"clipping": 0.03}),
                                          ("voice.speech_rate", {"rate": 420.0}), ("voice.pitch_intonation", {"pitch_range": 20.0})])
def test_en_voice_rules_pass_fail_na(rule_id, bad):
    assert verdict(EN, rule_id, call(_with(EN_GOOD, rate=160.0), language="en")) == "pass"
    assert verdict(EN, rule_id, call(_with(EN_GOOD, **bad), language="en")) == "fail"
    assert verdict(EN, rule_id, call([E_ASK], language="en")) == "na"


def test_en_no_interrupt():
    barge = [E_GREET, T("customer", 6.5, 14, "Hi, I was charged twice and I want a refund right now"), T("agent", 11, 16, "I understand, I will refund you."), E_BYE]
    assert verdict(EN, "listen.no_interrupt", call(barge, language="en")) == "fail"
    assert verdict(EN, "listen.no_interrupt", call(EN_GOOD, language="en")) == "pass"


# ----------------------------------------------------------------------------- end to end
CONSTRUCTED = [cid for cid, c in labelled_calls().items() if c["variant_of"] == cid]


@pytest.mark.parametrize("call_id", CONSTRUCTED)
@pytest.mark.parametrize("asr_errors", [True, False])
def test_constructed_calls_category_verdicts(call_id, asr_errors):
    c, label = from_labels(call_id, asr_errors=asr_errors)
    book = load_rulebook(default_rulebook_path(label["language"]))
    card = score(*c, book)
    for category, expected in label["expected"].items():
        allowed = {expected, *label.get("acceptable", {}).get(category, [])}
        assert card.categories.get(category) in allowed, (category, card.categories.get(category), expected)


# ----------------------------------------------------------------------------- scorecard
def test_scorecard_totals_fatal_and_flags(tmp_path):
    good = score(*zh(ZH_GOOD), ZH)
    assert good.passed and good.percent == 100.0 and good.score == good.max_score > 0
    assert not good.fatal_failures and not good.flags
    na_points = sum(r.max_points for r in good.rules if r.verdict == "na")
    assert na_points == 0

    rude = ZH_GOOD[:2] + [T("agent", 11.3, 13, "喂,什么?你说什么?", prob=0.3)] + ZH_GOOD[2:]
    rude[1] = T("customer", 7.5, 11, "我要投诉你们", prob=0.3)
    card = score(*zh(rude), ZH)
    assert card.fatal_failures == ["forbidden.rude_repeat_request"]
    assert not card.passed and card.percent > 80  # fatal fails the call despite a high score
    reasons = " | ".join(f.reason for f in card.flags)
    assert "fatal" in reasons and "投诉" in reasons and "ASR confidence" not in reasons
    assert card.categories["forbidden_language"] == "fail" and card.categories["hold"] == "pass"

    low = score(*zh([T(t.role, t.start, t.end, t.text, prob=0.3) for t in ZH_GOOD]), ZH)
    assert any("ASR confidence" in f.reason for f in low.flags)

    path = card.write(tmp_path)
    assert path.name == "c1.scorecard.json"
    raw = path.read_text(encoding="utf-8")
    assert "喂,什么" in raw  # ensure_ascii=False
    data = json.loads(raw)
    for key in ("call_id", "rulebook", "score", "max_score", "percent", "passed", "fatal_failures", "flags", "rules", "categories"):
        assert key in data
    assert set(data["rules"][0]) >= {"id", "title", "category", "verdict", "points", "max_points", "evidence"}
    assert Scorecard.read(path) == card


def test_low_score_flag_and_section_weights(tmp_path):
    c = zh([T("agent", 0.5, 2, "喂,你说"), ASK, T("agent", 11.5, 16, "好的,已经恢复了")])
    card = score(*c, ZH)
    assert card.percent < 80 and not card.passed
    assert any(f.reason.startswith("low score") for f in card.flags)
    greeting = next(r for r in card.rules if r.id == "greeting.standard")
    assert greeting.verdict == "fail" and greeting.points == 0 and greeting.max_points == 10


def test_applies_when_makes_a_rule_na(tmp_path):
    text = (default_rulebook_path("zh").read_text(encoding="utf-8")
            .replace("        operator: sequence\n", "        operator: sequence\n        applies_when: {min_duration_s: 600}\n", 1)
            .replace("      - id: greeting.standard\n", "      - id: greeting.standard\n        applies_when: {said_by: customer, said: [投诉]}\n", 1))
    path = tmp_path / "zh_custom.yaml"
    path.write_text(text, encoding="utf-8")
    book = load_rulebook(path)
    card = score(*zh(ZH_GOOD), book)
    by_id = {r.id: r for r in card.rules}
    assert by_id["closing.reply_to_thanks"].verdict == "na" and by_id["closing.reply_to_thanks"].max_points == 0
    assert by_id["greeting.standard"].verdict == "na"
    complaint = [GREET, T("customer", 7.5, 11, "我要投诉")] + ZH_GOOD[2:]
    assert {r.id: r for r in score(*zh(complaint), book).rules}["greeting.standard"].verdict == "pass"
