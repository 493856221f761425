"""The default rulebooks' situational scripts and the rest of the checkable rulebook, rule by rule
on hand-built calls (pass / fail / na), in Mandarin and English; how situations make a call a
non-conversation; the scorecard's categories, situations and measures; rulebook errors."""

from __future__ import annotations

import textwrap

import pytest

from fixtures_qa.build import T, call
from qa_rules.records import SpeakerMeasures
from qa_rules import CATEGORIES, RulebookError, default_rulebook_path, load_rulebook, score
from qa_rules.context import CallContext
from qa_rules.engine import run_rule

ZH = load_rulebook(default_rulebook_path("zh"))
EN = load_rulebook(default_rulebook_path("en"))


def verdict(book, rule_id: str, c) -> str:
    rule = next(r for _, r in book.rules if r.id == rule_id)
    return run_rule(CallContext(*c, rulebook=book), rule).verdict


def zh(turns, **kw):
    return call(turns, language="zh", **kw)


def en(turns, **kw):
    return call(turns, language="en", **kw)


GREET = T("agent", 0.8, 8.0, "您好,欢迎致电星河通信客服中心,工号一零二四为您服务,请问有什么可以帮您?")
BYE = [T("agent", 60, 62, "请问您还有什么问题吗?"), T("customer", 62.5, 64, "没有了,谢谢"), T("agent", 64.5, 69, "不客气,感谢您的来电,欢迎您再次来电,再见!")]
NORMAL = [GREET, T("customer", 8.5, 12, "你好,我想查一下这个月的话费"), T("agent", 12.5, 16, "好的,您这个月的话费是八十六元"),
          T("customer", 16.5, 18, "好的,知道了")] + [T(t.role, t.start - 40, t.end - 40, t.text) for t in BYE]

# ----------------------------------------------------------------------------- the calls
SILENT_OK = zh([GREET, T("agent", 13.2, 15.8, "您好,请问有什么可以帮您?"),
                T("agent", 21.1, 27.4, "对不起,您的电话没有声音,请您换一部电话再次打来,好吗?再见!")], duration=32.9)
SILENT_HANGUP = zh([GREET], duration=9.2)
SILENT_RUSHED = zh([GREET, T("agent", 9.5, 11, "您好,请问有什么可以帮您?"), T("agent", 12.5, 16, "对不起,听不到您的声音,请稍后再拨")], duration=17)

QUIET_TURN = T("customer", 8.8, 11.9, "你好,我想查一下宽带还有几天到期", loudness=-45)
QUIET_OK = zh([GREET, QUIET_TURN, T("agent", 12.8, 17, "对不起,您的声音有点小,请您大声一点好吗?"),
               T("customer", 17.6, 20, "我想查一下宽带还有几天到期"), T("agent", 20.6, 25, "您的宽带还有十二天到期")]
              + [T(t.role, t.start - 30, t.end - 30, t.text) for t in BYE])
QUIET_SHOUT = zh([GREET, QUIET_TURN, T("agent", 12.8, 17, "对不起,请您大声一点好吗?", loudness=-12),
                  T("customer", 17.6, 20, "我想查一下宽带"), T("agent", 20.6, 25, "您的宽带还有十二天到期")]
                 + [T(t.role, t.start - 30, t.end - 30, t.text) for t in BYE])
QUIET_HANGUP = zh([GREET, QUIET_TURN, T("agent", 13.3, 14.1, "听不清。")], duration=14.9)
QUIET_LINE_THEN_WAIT = zh([GREET, QUIET_TURN, T("agent", 12.8, 17, "对不起,请您大声一点好吗?"), T("customer", 17.6, 19, "喂", loudness=-46),
                           T("agent", 19.5, 24, "对不起,您的电话声音太小,请您换一部电话挂来或我给您打过去,好吗?")], duration=29.5)


def noisy(turns, duration=None):
    conv, meas = zh(turns, duration=duration)
    return conv, meas.model_copy(update={"speakers": [SpeakerMeasures(speaker="C", role="customer", voiced_s=3, level_dbfs=-30, noise_dbfs=-36, snr_db=6)]})


NOISY_OK = noisy([GREET, T("customer", 8.5, 11, "喂,我想问一下宽带"),
                  T("agent", 11.5, 17, "对不起,您的电话杂音太大,听不清,请您换一部电话再次打来好吗?再见!")], duration=22.5)
NOISY_HANGUP = noisy([GREET, T("customer", 8.5, 11, "喂,我想问一下宽带"), T("agent", 11.5, 12, "喂?")], duration=12.6)

TRANSFER_OK = zh([GREET, T("customer", 8.5, 13, "你好,我姓王,我想开具去年的增值税发票"),
                  T("agent", 13.5, 23, "王女士您好,增值税发票需要财务专员为您办理,我现在为您转接财务专员,请您稍候不要挂机,可以吗?"),
                  T("customer", 23.5, 24, "可以"),
                  T("receiver", 29.5, 41, "王女士您好,我是财务专员小赵,工号三零零九,感谢您的耐心等待。关于您要开具去年增值税发票的事情,我来为您办理"),
                  T("customer", 41.5, 43, "好的,麻烦你了")])
TRANSFER_UNTOLD = zh([GREET, T("customer", 8.5, 13, "你好,我想开具去年的增值税发票"),
                      T("agent", 13.5, 23, "增值税发票需要财务专员为您办理,我现在为您转接,请您稍候不要挂机,可以吗?"), T("customer", 23.5, 24, "可以"),
                      T("agent", 29.5, 41, "您好,我是财务专员小赵,让您久等了,关于您要开的发票,我来为您办理")])
TRANSFER_BLIND = zh([GREET, T("customer", 8.5, 12.5, "你好,我想开具去年全年的增值税发票"), T("agent", 13.3, 15.9, "发票的事找财务,转过去了。"),
                     T("receiver", 19.4, 19.8, "喂?"), T("customer", 20.3, 23.7, "你好,我想开具去年全年的增值税发票"),
                     T("receiver", 24.3, 27.4, "好的,请您提供一下纳税人识别号")])

UNRESOLVED_OK = zh([GREET, T("customer", 8.5, 14, "你好,我申请的靓号退款到现在还没到账,已经两个星期了"),
                    T("agent", 14.8, 26, "非常抱歉,退款需要财务部门核实,我暂时不能给您准确答复。我跟您确认一下:您两个星期前申请的靓号退款还没有到账,是吗?"),
                    T("customer", 26.5, 27, "是的"), T("agent", 28, 30.5, "请留一个方便联系您的电话号码"),
                    T("customer", 31, 33, "一五八零零一二六六八八"), T("agent", 34, 39, "好的,已经登记,我们会在两个工作日内给您回复处理结果")])
UNRESOLVED_SOON = zh([GREET, T("customer", 8.5, 14, "你好,我申请的靓号退款到现在还没到账"),
                      T("agent", 14.8, 20, "退款需要财务部门核实,我暂时不能给您答复,您的问题我复述一遍:靓号退款没到账,对吗?"),
                      T("customer", 20.5, 21, "对"), T("agent", 21.5, 24, "请留一个联系电话"), T("customer", 24.5, 26, "一五八零零一二六六八八"),
                      T("agent", 26.5, 30, "好的,我们会尽快给您回复")])

DICTATION_OK = zh([GREET, T("customer", 8.5, 12, "你好,我想知道你们营业厅的投诉电话"), T("agent", 12.6, 14.6, "好的,请您记录一下"),
                   T("customer", 15.4, 16.6, "好,你说吧"), T("agent", 17.4, 22, "号码是,零二八,六六五五,七七八八")])
DICTATION_RUSHED = zh([GREET, T("customer", 8.5, 12, "你好,我想知道你们营业厅的投诉电话"), T("agent", 13, 15, "零二八六六五五七七八八"),
                       T("customer", 15.7, 18.4, "啊?太快了,没听清"), T("agent", 19, 21, "零二八六六五五七七八八")])

WRONG_OK = zh([GREET, T("customer", 8.8, 12.6, "你好,是自来水公司吗?我家停水了"),
               T("agent", 13.2, 22, "您好,对不起,这里是星河通信客服热线,您拨错号码了,自来水公司的电话您可以拨打一一四查询"),
               T("customer", 22.7, 25.2, "哦,打错了,不好意思"), T("agent", 25.7, 27.2, "没关系,再见!")])
WRONG_CURT = zh([GREET, T("customer", 9.1, 12.8, "你好,是自来水公司吗?我家停水了"), T("agent", 13.2, 13.7, "不是。")])

CASES_ZH = {
    # rule: (passing call, failing call)
    "novoice.sequence_5s": (SILENT_OK, SILENT_HANGUP),
    "canthear.low_volume": (QUIET_OK, QUIET_HANGUP),
    "canthear.agent_level_steady": (QUIET_OK, QUIET_SHOUT),
    "canthear.hang_up_after_line": (QUIET_LINE_THEN_WAIT, QUIET_HANGUP),
    "canthear.noisy_line": (NOISY_OK, NOISY_HANGUP),
    "canthear.noisy_hang_up": (NOISY_OK, NOISY_HANGUP),
    "transfer.explain_consent": (TRANSFER_OK, TRANSFER_BLIND),
    "transfer.name_announced": (TRANSFER_OK, TRANSFER_BLIND),
    "transfer.receiver_greeting": (TRANSFER_OK, TRANSFER_BLIND),
    "unresolved.record_readback_commit": (UNRESOLVED_OK, UNRESOLVED_SOON),
    "info.dictation_prompt": (DICTATION_OK, DICTATION_RUSHED),
    "opening.wrong_number": (WRONG_OK, WRONG_CURT),
}


@pytest.mark.parametrize("rule_id", sorted(CASES_ZH))
def test_zh_situational_scripts_pass_fail_na(rule_id):
    passing, failing = CASES_ZH[rule_id]
    assert verdict(ZH, rule_id, passing) == "pass"
    assert verdict(ZH, rule_id, failing) == "fail"
    assert verdict(ZH, rule_id, zh(NORMAL)) == "na"  # the situation did not occur


def test_transfer_judged_when_the_receiver_is_not_told_apart():
    for rule_id in ("transfer.explain_consent", "transfer.name_announced", "transfer.receiver_greeting"):
        assert verdict(ZH, rule_id, TRANSFER_UNTOLD) == "pass", rule_id


def test_silent_caller_variants_and_timing():
    assert verdict(ZH, "novoice.sequence_5s", SILENT_RUSHED) == "fail"  # 1.5 s gaps
    card = score(*SILENT_OK, ZH)
    rule = {r.id: r for r in card.rules}["novoice.sequence_5s"]
    assert [e.measured for e in rule.evidence[1:]] == [5.2, 5.3, 5.5]


# ----------------------------------------------------------------------------- conversation or not
@pytest.mark.parametrize("c", [SILENT_OK, SILENT_HANGUP, WRONG_OK, WRONG_CURT], ids=["silent_ok", "silent_hangup", "wrong_ok", "wrong_curt"])
def test_no_service_part_makes_closing_and_body_rules_na(c):
    card = score(*c, ZH)
    rules = {r.id: r for r in card.rules}
    for rule_id in ("closing.anything_else", "closing.thanks_for_calling", "closing.welcome_again", "polite.courtesy_terms",
                    "hold.announce_10s", "respond.latency", "hold.no_dead_air"):
        assert rules[rule_id].verdict == "na", rule_id
        assert "not a conversation" in (rules[rule_id].note or ""), rule_id
    assert card.categories["closing"] == "na"
    assert rules["greeting.standard"].verdict == "pass"


def test_a_normal_call_is_a_conversation_with_every_category_and_no_situation():
    card = score(*zh(NORMAL), ZH)
    assert set(card.categories) == set(CATEGORIES)
    for category in ("silent_caller", "cant_hear", "transfer", "unresolved", "dictation", "wrong_number"):
        assert card.categories[category] == "na", category
    assert card.categories["closing"] == "pass"
    assert not any(s.occurred for s in card.situations)
    assert {s.id for s in card.situations} >= {"silent_caller", "customer_too_quiet", "noisy_line", "transfer", "unresolved", "long_number", "wrong_number"}
    assert card.measures["response_gap_median_s"] == 0.5 and card.measures["longest_dead_air_s"] == 2.0  # 18 s → 20 s


def test_scorecard_lists_the_situations_that_occurred_with_evidence():
    card = score(*TRANSFER_OK, ZH)
    occurred = {s.id: s for s in card.situations if s.occurred}
    assert set(occurred) >= {"transfer", "name_given"}
    assert occurred["transfer"].evidence[0].start == 13.5  # the turn with the transfer phrase (merged with the receiver's voice)
    assert occurred["name_given"].evidence[0].measured == "王"
    assert card.categories["transfer"] == "pass"


# ----------------------------------------------------------------------------- the rest of the rulebook
CASES_REST = {
    # rule: (passing call, failing call, na call)
    "respond.latency": (zh(NORMAL), zh([GREET, T("customer", 8.5, 12, "我想查话费"), T("agent", 16, 18, "好的"), T("customer", 18.5, 20, "多少钱"),
                                          T("agent", 24, 26, "八十六元"), T("customer", 26.5, 27, "好"), T("agent", 31, 33, "再见")]), SILENT_OK),
    "hold.no_dead_air": (zh(NORMAL), zh([GREET, T("customer", 8.5, 12, "我想查话费"), T("agent", 12.5, 14, "请您稍等"), T("agent", 50, 52, "让您久等了")]), WRONG_OK),
    "address.name_title": (TRANSFER_OK, zh([GREET, T("customer", 8.5, 12, "我叫周强,我想查话费"), T("agent", 12.5, 16, "好的,您的话费是八十六元")]), zh(NORMAL)),
    "address.ask_surname": (zh([GREET, T("customer", 8.5, 12, "我想查话费"), T("agent", 12.5, 16, "先生您好,请问您贵姓?")]),
                            zh([GREET, T("customer", 8.5, 12, "我想查话费"), T("agent", 12.5, 14, "你是谁?")]), zh(NORMAL)),
    "clarify.confirm_understanding": (zh([GREET, T("customer", 8.5, 12, "那个套餐的事"), T("agent", 12.5, 14, "不太明白,您是指哪个套餐?"),
                                          T("customer", 14.5, 17, "五十八的那个"), T("agent", 17.5, 21, "您是说五十八元的套餐,对吗?")]),
                                      zh([GREET, T("customer", 8.5, 12, "我要退那个套餐"), T("agent", 12.5, 14, "好的已经退了"), T("customer", 14.5, 17, "你理解错了,我说的是流量包"),
                                          T("agent", 17.5, 21, "流量包也退了")]), zh(NORMAL)),
    "canthear.repeat_request": (zh([GREET, T("customer", 8.5, 12, "我想查话费"), T("agent", 12.5, 16, "对不起,麻烦您再说一遍好吗?")]),
                                zh([GREET, T("customer", 8.5, 12, "我想查话费"), T("agent", 12.5, 14, "再说一遍")]), zh(NORMAL)),
    "info.confident_wording": (zh(NORMAL), zh([GREET, T("customer", 8.5, 12, "要等多久"), T("agent", 12.5, 14, "这个说不准")]), SILENT_OK),
    "complaint.unfriendly_response": (zh([GREET, T("customer", 8.5, 12, "你们什么破服务,我要投诉"), T("agent", 12.5, 18, "非常抱歉,谢谢您的宝贵意见,我们会及时向领导反映")]),
                                      zh([GREET, T("customer", 8.5, 12, "你们什么破服务,我要投诉"), T("agent", 12.5, 14, "那你投诉吧")]), zh(NORMAL)),
    "followup.callback_script": (zh([T("agent", 0.5, 9, "您好,这里是星河通信客服热线,您上次咨询的关于退款的问题,现在给您回复"), T("customer", 9.5, 11, "好的")]),
                                 zh([T("agent", 0.5, 4, "喂,上次你问的退款那个事"), T("customer", 4.5, 6, "嗯")]), zh(NORMAL)),
    "language.mandarin_only": (zh(NORMAL), zh([GREET, T("customer", 8.5, 12, "我想查话费"), T("agent", 12.5, 16, "OK, let me check that for you")]), zh([T("customer", 0, 3, "喂?")])),
    "attitude.patience_respect": (zh(NORMAL), zh([GREET, T("customer", 8.5, 12, "多少钱?"), T("agent", 12.5, 15, "我不是说了吗,八十六")]), zh([T("customer", 0, 3, "喂?")])),
    "attitude.patience_voice": (zh(NORMAL), zh([GREET, T("customer", 8.5, 12, "我想查话费"), T("agent", 12.5, 16, "好的,请您提供一下手机号码"),
                                                 T("customer", 16.5, 18, "多少钱?"), T("agent", 18.5, 22, "我刚才已经告诉您了八十六", loudness=-10),
                                                 T("agent", 30, 33, "请问还有什么问题吗")]), SILENT_OK),
}


@pytest.mark.parametrize("rule_id", sorted(CASES_REST))
def test_zh_rest_of_the_rulebook_pass_fail_na(rule_id):
    passing, failing, na = CASES_REST[rule_id]
    assert verdict(ZH, rule_id, passing) == "pass"
    assert verdict(ZH, rule_id, failing) == "fail"
    assert verdict(ZH, rule_id, na) == "na"


# ----------------------------------------------------------------------------- English
E_GREET = T("agent", 0.5, 6, "Thank you for calling Acme support, this is Joe, agent 1024, how can I help you today?")
E_NORMAL = [E_GREET, T("customer", 6.5, 10, "Hi, what is my balance?"), T("agent", 10.5, 14, "Your balance is forty dollars."),
            T("customer", 14.5, 16, "Thanks."), T("agent", 16.5, 19, "Is there anything else I can help you with?"),
            T("customer", 19.5, 20.5, "No, thanks."), T("agent", 21, 23, "Thank you for calling, goodbye.")]
CASES_EN = {
    "novoice.sequence_5s": (en([E_GREET, T("agent", 11, 13, "Hello? How can I help you?"), T("agent", 18.5, 23, "Sorry, I can't hear you, please call again. Goodbye.")], duration=28.5),
                            en([E_GREET], duration=7)),
    "transfer.explain_consent": (en([E_GREET, T("customer", 6.5, 10, "I need a copy of my invoice."),
                                     T("agent", 10.5, 16, "Our billing team handles invoices, may I transfer you to them?"), T("customer", 16.5, 17, "Sure."),
                                     T("receiver", 25, 31, "Hello Mr. Smith, this is Anna from billing, thank you for waiting. I understand you need a copy of your invoice.")]),
                                 en([E_GREET, T("customer", 6.5, 10, "I need a copy of my invoice."), T("agent", 10.5, 12, "Transferring you."),
                                     T("receiver", 15, 15.5, "Hello?")])),
    "unresolved.record_readback_commit": (en([E_GREET, T("customer", 6.5, 10, "My refund never arrived."),
                                              T("agent", 10.5, 18, "I'm sorry, I can't confirm that right now, billing needs to check this. Just to confirm, your refund from May has not arrived, is that right?"),
                                              T("customer", 18.5, 19, "Yes."), T("agent", 19.5, 22, "What is the best number to reach you?"), T("customer", 22.5, 25, "Five five five, one two three, four five six seven."),
                                              T("agent", 25.5, 30, "Thank you, we will call you back within two business days.")]),
                                          en([E_GREET, T("customer", 6.5, 10, "My refund never arrived."),
                                              T("agent", 10.5, 15, "I can't resolve that, we will get back to you as soon as possible.")])),
    "info.dictation_prompt": (en([E_GREET, T("customer", 6.5, 9, "What's your fax number?"), T("agent", 9.5, 11, "Do you have a pen? Please write this down."),
                                  T("customer", 11.5, 12, "Go ahead."), T("agent", 12.5, 18, "It's five five five, one two three, four five six seven.")]),
                              en([E_GREET, T("customer", 6.5, 9, "What's your fax number?"), T("agent", 9.5, 13, "Five five five one two three four five six seven.")])),
    "opening.wrong_number": (en([E_GREET, T("customer", 6.5, 9, "Hi, is this the city water company?"),
                                 T("agent", 9.5, 16, "I'm sorry, this is Acme support, you have the wrong number. You can call the water company at their number in the directory.")]),
                             en([E_GREET, T("customer", 6.5, 9, "Hi, is this the city water company?"), T("agent", 9.5, 10, "No.")])),
}


@pytest.mark.parametrize("rule_id", sorted(CASES_EN))
def test_en_situational_scripts_pass_fail_na(rule_id):
    passing, failing = CASES_EN[rule_id]
    assert verdict(EN, rule_id, passing) == "pass"
    assert verdict(EN, rule_id, failing) == "fail"
    assert verdict(EN, rule_id, en(E_NORMAL)) == "na"


def test_en_polite_repeat_request_is_not_forbidden():
    polite = en([E_GREET, T("customer", 6.5, 9, "mumble"), T("agent", 9.5, 12, "Sorry, could you say that again, please?")])
    assert verdict(EN, "forbidden.rude_repeat_request", polite) == "pass"
    rude = en([E_GREET, T("customer", 6.5, 9, "mumble"), T("agent", 9.5, 10, "Say that again?")])
    assert verdict(EN, "forbidden.rude_repeat_request", rude) == "fail"


# ----------------------------------------------------------------------------- rulebook errors
BOOK = """\
id: t
version: "1"
language: zh
situations:
  - id: transfer
    title: {zh: 转接, en: Transfer}
    detect:
      - operator: %(trigger)s
        params: {phrases: [转接]}
sections:
  - id: s
    rules:
      - id: transfer.explain_consent
        title: {zh: 转接, en: Transfer}
        category: transfer
        situation: %(situation)s
        operator: respond
        params: {after_s: 5, phrases: [可以吗]}
        source: "003 › x"
"""


def _load(tmp_path, **kw):
    path = tmp_path / "book.yaml"
    path.write_text(BOOK % ({"trigger": "said", "situation": "transfer"} | kw), encoding="utf-8")
    return load_rulebook(path)


def test_rulebook_situations_load_and_errors_name_the_line(tmp_path):
    assert _load(tmp_path).situations[0].id == "transfer"
    with pytest.raises(RulebookError, match=r"line 16: rule 'transfer.explain_consent': unknown situation 'transfr' \(known: transfer\)"):
        _load(tmp_path, situation="transfr")
    with pytest.raises(RulebookError, match=r"line 8: situation 'transfer': unknown trigger 'sayd' \(known: .*said"):
        _load(tmp_path, trigger="sayd")
    with pytest.raises(RulebookError, match=r"situation 'transfer': .*phrases"):
        _load(tmp_path, trigger="silent_party")  # silent_party takes no phrases
    text = textwrap.dedent("""\
        id: t
        version: "1"
        language: zh
        sections:
          - id: s
            rules:
              - {id: a, title: {zh: a, en: a}, category: closing, operator: phrase, params: {phrases: [再见]}, source: "003 › x",
                 applies_when: {conversation: maybe}}
    """)
    (tmp_path / "c.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(RulebookError, match="line 8"):
        load_rulebook(tmp_path / "c.yaml")


def test_a_quiet_customer_heard_after_the_request_in_a_short_call():
    short = zh([GREET, QUIET_TURN, T("agent", 12.8, 16, "不好意思,您那边声音比较小,麻烦您大点声好吗?"), T("customer", 16.5, 19, "我想问一下我的套餐"),
                T("agent", 19.5, 23, "好的,您的套餐是五十八元")] + [T(t.role, t.start - 36, t.end - 36, t.text) for t in BYE])
    card = score(*short, ZH)
    rules = {r.id: r for r in card.rules}
    assert rules["canthear.low_volume"].verdict == "pass" and rules["canthear.hang_up_after_line"].verdict == "na"
    assert card.categories["cant_hear"] == "pass"


def test_en_wrong_number_curt_answer():
    curt = en([E_GREET, T("customer", 6.5, 9, "Hi, is this Tony's Pizza?"), T("agent", 9.5, 10, "Nope.")])
    assert score(*curt, EN).categories["wrong_number"] == "fail"
    right = en([T("customer", 0.5, 4, "Hi, is this the Acme support line?"), T("agent", 4.5, 9, "Yes, thank you for calling Acme support, how can I help you?")])
    assert score(*right, EN).categories["wrong_number"] == "na"
