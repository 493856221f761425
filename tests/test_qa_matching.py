"""Phrase matching by sound: homophones pass, near-misses on short phrases do not."""

from __future__ import annotations

import re

from qa_rules.matching import Doc, find_regex, find_text


def doc(text: str) -> Doc:
    return Doc.build(text, 0.0, 10.0)


def test_homophones_match_by_pinyin():
    d = doc("您好,欢迎制电星河通信,公号10 24位您服务,对不起让您就等了")
    assert find_text(d, "欢迎致电")[0].text == "欢迎制电"
    assert find_text(d, "工号")[0].text == "公号"
    assert find_text(d, "为您服务")[0].text == "位您服务"
    assert find_text(d, "让您久等了")[0].text == "让您就等了"


def test_near_homophone_of_long_phrase_is_fuzzy():
    hit = find_text(doc("欢迎这店星河通信"), "欢迎致电", similarity=0.85)
    assert hit and 0.85 <= hit[0].score < 1.0
    assert not find_text(doc("欢迎这店星河通信"), "欢迎致电", similarity=0.99)


def test_short_phrases_must_sound_the_same():
    assert not find_text(doc("喂,你说"), "您")
    assert not find_text(doc("你好"), "您好")
    assert len(find_text(doc("请您稍等,您的号码"), "您")) == 2


def test_pinyin_off_needs_exact_characters():
    assert find_text(doc("让您就等了"), "让您久等了", pinyin=False) == []
    assert find_text(doc("让您久等了"), "让您久等了", pinyin=False)[0].text == "让您久等了"


def test_digits_read_the_chinese_way():
    assert find_text(doc("工号1024为您服务"), "一零二四")


def test_english_words_fuzzy_and_exact():
    d = Doc.build("", 0, 3, [(0, 0.5, " Thanks"), (0.5, 1.0, " for"), (1.0, 2.0, " holding.")])
    assert find_text(d, "thank you for holding")
    assert not find_text(d, "thank you for calling")
    assert not find_text(doc("I will hold"), "holding")  # one word: exact


def test_hits_are_placed_by_word_times():
    d = Doc.build("", 0, 0, [(1.0, 1.5, "对不起"), (20.0, 20.4, "让您"), (20.4, 21.0, "久等了")])
    m = find_text(d, "让您久等了")[0]
    assert d.time_of(m.char_start, m.char_end) == (20.0, 21.0)


def test_regex_keeps_punctuation():
    d = doc("喂，什么？你说什么？")
    assert find_regex(d, re.compile(r"喂\s*[,.!?]?\s*什么"))
    assert find_regex(d, re.compile(r"(^|[,.!?])\s*什么\s*[?!]"))
    assert not find_regex(doc("请问您办理什么业务?"), re.compile(r"(^|[,.!?])\s*什么\s*[?!]"))
