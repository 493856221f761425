"""Personal numbers found in transcripts as a recogniser writes them (digits, Chinese numerals with
幺/两, English words, numbers split over several words) and near-misses left alone (prices, dates,
工号, times); the generated test set's figures are what `make bench` prints."""

from __future__ import annotations

import pytest

from bench.pii_corpus import evaluate, generate
from pipelines.results.redaction import find_pii, pii_word_indices, redact_text


def test_generated_mentions_recall_and_precision():
    items = generate()
    figures, problems = evaluate(items)
    print(figures, *problems, sep="\n")
    assert figures.mentions >= 200
    assert figures.recall >= 0.99, problems
    assert figures.precision >= 0.95, problems
    assert figures.near_misses >= 30 and figures.near_misses_flagged == 0, problems


@pytest.mark.parametrize("text, kind", [
    ("我的手机号是一三九，幺二三四，五六七八。", "phone"),
    ("号码是139 1234 5678", "phone"),
    ("身份证号11010519880412153X", "id"),
    ("卡号6222 0212 3456 7890 123", "card"),
    ("My number is four four seven one double five three two nine nine one.", "phone"),
    ("邮箱 wangli1988@163.com", "email"),
    ("Send it to jane dot doe at gmail dot com.", "email"),
])
def test_forms_are_found(text, kind):
    assert [s.kind for s in find_pii(text)] == [kind]


@pytest.mark.parametrize("text", [
    "您这个月话费是八十六元。", "工号一零二四为您服务。", "预计二零二四年六月一日恢复。", "一共是两千三百五十块。",
    "Agent 1024 speaking.", "Your plan costs 29.99 a month.", "The order number is three three one eight.",
])
def test_near_misses_are_left_alone(text):
    assert find_pii(text) == []


def test_placeholders_by_language():
    assert redact_text("请回拨13912345678好吗", "zh") == "请回拨[电话]好吗"
    assert redact_text("The card number is 6222021234567890123.", "en") == "The card number is [CARD]."


def test_a_number_split_over_recognised_words_covers_every_word():
    words = ["我的", "手机", "是", "一三", "九一二", "三四", "五六七八", "。"]
    text = "".join(words)
    assert pii_word_indices(words, text) == [("phone", [3, 4, 5, 6])]
