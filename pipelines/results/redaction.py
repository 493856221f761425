"""Personal numbers in transcripts: phone numbers, Chinese ID numbers, bank-card numbers and e-mail
addresses — found so that what leaves the system (exports, coaching clips, the console) can carry
a placeholder (``[电话]`` / ``[PHONE]``) instead.

Callers read numbers out digit by digit, in whatever form the recogniser writes them: ``13912345678``,
``139 1234 5678``, ``一三九一二三四五六七八`` (幺 for 1, 两 for 2), "four four seven one…", split
over several recognised words.  Every character or word that stands for one digit is mapped to it,
separators between digits (spaces, dashes, commas) are allowed, and each run of digits is classified
by its length and shape:

- 11 digits starting with 1, or 10–12 starting with 0 (area code): a phone number; 7–8 digits only
  with a phone word nearby (电话, 手机, 号码, phone, number…) — a local landline;
- 18 characters, 17 digits and a digit or X: a Chinese ID number;
- 16–19 digits otherwise: a bank-card number.

What is *not* a personal number is what makes precision: a price (八十六元, 86.5), a date (2024年6月),
an amount with units (十/百/千/万 are never read digit by digit), a 工号 of 3–4 digits, a time of day.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Literal, Sequence

Kind = Literal["phone", "id", "card", "email"]

PLACEHOLDERS: dict[str, dict[Kind, str]] = {
    "zh": {"phone": "[电话]", "id": "[身份证]", "card": "[银行卡]", "email": "[邮箱]"},
    "en": {"phone": "[PHONE]", "id": "[ID]", "card": "[CARD]", "email": "[EMAIL]"},
}

_ZH_DIGITS = {"零": "0", "〇": "0", "洞": "0", "一": "1", "幺": "1", "么": "1", "二": "2", "两": "2", "三": "3",
              "四": "4", "五": "5", "六": "6", "七": "7", "拐": "7", "八": "8", "九": "9", "勾": "9"}
_FULLWIDTH = {chr(0xFF10 + i): str(i) for i in range(10)}
_EN_DIGITS = {"zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
              "six": "6", "seven": "7", "eight": "8", "nine": "9"}
_EN_REPEAT = {"double": 2, "triple": 3}
_SEPARATOR = re.compile(r"[\s\-‐–—,，、.·:：/]{1,3}$")
"""What may stand between two digits of one number (``139-1234 5678``, ``一三九，一二三四``)."""
_PHONE_WORDS = re.compile(r"(电话|手机|号码|座机|联系方式|联系|打给|拨打|phone|number|call|mobile|cell|landline)", re.IGNORECASE)
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+")
_SPOKEN_EMAIL = re.compile(
    r"\b[a-z0-9]+(?:\s+(?:dot|underscore|dash)\s+[a-z0-9]+)*\s+at\s+[a-z0-9]+(?:\s+dot\s+[a-z0-9]+)*\s+dot\s+"
    r"(?:com|cn|net|org|edu|gov|io|co)\b",
    re.IGNORECASE,
)
_ZH_SPOKEN_EMAIL = re.compile(r"[A-Za-z0-9._\-]+\s*(艾特|at|圈a|@)\s*[A-Za-z0-9\-]+\s*(点|dot|\.)\s*(com|cn|net|org)", re.IGNORECASE)


@dataclass(frozen=True)
class PiiSpan:
    """One personal number in a text: its kind and where it stands (character offsets)."""

    kind: Kind
    start: int
    end: int
    text: str
    digits: str = ""


@dataclass(frozen=True)
class _Digit:
    value: str
    start: int
    end: int


def _digit_tokens(text: str) -> list[_Digit]:
    """Every character or English word of ``text`` that stands for one or more digits."""
    out: list[_Digit] = []
    for i, ch in enumerate(text):
        if ch.isascii() and ch.isdigit():
            out.append(_Digit(ch, i, i + 1))
        elif ch in _FULLWIDTH:
            out.append(_Digit(_FULLWIDTH[ch], i, i + 1))
        elif ch in _ZH_DIGITS:
            out.append(_Digit(_ZH_DIGITS[ch], i, i + 1))
        elif ch in "Xx" and i > 0 and (text[i - 1].isdigit() or text[i - 1] in _ZH_DIGITS or text[i - 1] == " "):
            out.append(_Digit("X", i, i + 1))
    repeat, repeat_at = 1, None
    for m in re.finditer(r"[A-Za-z]+", text):
        word = m.group().lower()
        if word in _EN_REPEAT:
            repeat, repeat_at = _EN_REPEAT[word], m.start()
            continue
        if word in _EN_DIGITS and not (word in ("o", "oh") and not _near_digit_word(text, m)):
            start = repeat_at if repeat_at is not None else m.start()
            out.append(_Digit(_EN_DIGITS[word] * repeat, start, m.end()))
        repeat, repeat_at = 1, None
    return sorted(out, key=lambda d: d.start)


def _near_digit_word(text: str, m: re.Match[str]) -> bool:
    """'oh'/'o' means zero only between other spoken digits."""
    around = text[max(0, m.start() - 12) : m.end() + 12].lower()
    return sum(1 for w in re.findall(r"[a-z]+", around) if w in _EN_DIGITS and w not in ("o", "oh")) >= 1


def _runs(text: str) -> list[list[_Digit]]:
    """Digits that follow each other with at most a separator between them."""
    runs: list[list[_Digit]] = []
    for d in _digit_tokens(text):
        if runs:
            gap = text[runs[-1][-1].end : d.start]
            if gap == "" or _SEPARATOR.match(gap):
                runs[-1].append(d)
                continue
        runs.append([d])
    return runs


def _is_quantity(text: str, run: list[_Digit]) -> bool:
    """A Chinese-numeral run read as a quantity (八十六, 两千三百) rather than digit by digit, or a
    run followed by a unit that makes it an amount, a date or a time."""
    after = text[run[-1].end : run[-1].end + 2]
    before = text[max(0, run[0].start - 1) : run[0].start]
    if re.match(r"^\s?(十|百|千|万|亿|元|块|角|分钟|分|秒|点|号楼|岁|年|月|日|号|天|个|次|%|％|度|米|公里|小时|percent|dollars?|yuan|am|pm)", after, re.IGNORECASE):
        return True
    if before in ("十", "百", "千", "万", "$", "¥", "￥", "第"):
        return True
    return False


def _classify(digits: str, context: str) -> Kind | None:
    n = len(digits)
    if n == 18 and digits[:17].isdigit() and (digits[17].isdigit() or digits[17] == "X"):
        return "id"
    if "X" in digits:
        return None
    if n == 11 and digits[0] == "1":
        return "phone"
    if 10 <= n <= 12 and digits[0] == "0":
        return "phone"
    if 16 <= n <= 19:
        return "card"
    if n in (7, 8) and _PHONE_WORDS.search(context):
        return "phone"
    if 11 <= n <= 13 and _PHONE_WORDS.search(context):
        return "phone"  # with a country code or an extension
    return None


def find_pii(text: str) -> list[PiiSpan]:
    """Personal numbers and e-mail addresses in one text, in order, not overlapping."""
    spans: list[PiiSpan] = []
    for pattern in (_EMAIL, _SPOKEN_EMAIL, _ZH_SPOKEN_EMAIL):
        for m in pattern.finditer(text):
            if not any(s.start < m.end() and m.start() < s.end for s in spans):
                spans.append(PiiSpan("email", m.start(), m.end(), m.group()))
    for run in _runs(text):
        digits = "".join(d.value for d in run)
        if len(digits) < 7 or _is_quantity(text, run):
            continue
        start, end = run[0].start, run[-1].end
        context = text[max(0, start - 12) : end + 6]
        kind = _classify(digits, context)
        if kind is None and len(digits) >= 22:
            continue
        if kind is not None and not any(s.start < end and start < s.end for s in spans):
            spans.append(PiiSpan(kind, start, end, text[start:end], digits))
    return sorted(spans, key=lambda s: s.start)


def redact_text(text: str, language: str = "zh", spans: Sequence[PiiSpan] | None = None) -> str:
    """``text`` with each personal number replaced by its placeholder (``[电话]`` / ``[PHONE]``)."""
    names = PLACEHOLDERS["zh" if language.startswith("zh") else "en"]
    spans = find_pii(text) if spans is None else spans
    out, cursor = [], 0
    for span in spans:
        out.append(text[cursor : span.start])
        out.append(names[span.kind])
        cursor = span.end
    out.append(text[cursor:])
    return "".join(out)


def word_offsets(words: Iterable[str], text: str) -> list[tuple[int, int]]:
    """Where each recognised word's text stands in the utterance text built from the words
    (words are found in order; a word not found keeps the position of the one before)."""
    offsets, cursor = [], 0
    for word in words:
        token = word.strip()
        at = text.find(token, cursor) if token else -1
        if at < 0:
            offsets.append((cursor, cursor))
            continue
        offsets.append((at, at + len(token)))
        cursor = at + len(token)
    return offsets


def pii_word_indices(words: Sequence[str], text: str) -> list[tuple[Kind, list[int]]]:
    """For each personal number in ``text``, the indices of the recognised words that carry it —
    a number split over several words is covered by all of them (their times are what a clip
    must silence)."""
    offsets = word_offsets(words, text)
    out = []
    for span in find_pii(text):
        idx = [i for i, (a, b) in enumerate(offsets) if a < span.end and span.start < b]
        if idx:
            out.append((span.kind, idx))
    return out


def redact_json_text(value, language: str = "zh"):
    """Every string inside a JSON-like value (evidence lists, excerpts) with numbers replaced."""
    if isinstance(value, str):
        return redact_text(value, language)
    if isinstance(value, list):
        return [redact_json_text(v, language) for v in value]
    if isinstance(value, dict):
        return {k: redact_json_text(v, language) for k, v in value.items()}
    return value


def pii_time_spans(conversation) -> list[tuple[float, float, Kind]]:
    """When personal numbers are spoken in a call: the time spans of the recognised words that carry
    them (a number split over several words covers all of them), for silencing audio."""
    spans = []
    for u in conversation.utterances:
        for kind, idx in pii_word_indices([w.text for w in u.words], u.text):
            spans.append((min(u.words[i].start for i in idx), max(u.words[i].end for i in idx), kind))
    return spans
