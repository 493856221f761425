"""Phrase matching that survives ASR errors.

Whisper hears 久等 as 就等, 工号 as 公号, 欢迎致电 as 欢迎制电: the *sound* is right and the
characters are wrong.  So Chinese text is compared as pinyin syllables (toneless, with jieba-free
context from pypinyin's phrase dictionary), English as lower-case words, and longer phrases are
accepted when the rapidfuzz ratio of the sound strings reaches a configurable similarity.

Every searchable text is a `Doc`: the cleaned characters of an utterance, each with the time of
the word it came from, so a hit can be placed by word timestamps rather than by the (sometimes
stretched) segment span.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

from pypinyin import Style, lazy_pinyin
from rapidfuzz import fuzz, process

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_UNIT = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]|[a-z0-9]+(?:'[a-z]+)?")
_DIGITS = "零一二三四五六七八九"


def clean(text: str) -> str:
    """NFKC (full-width → ASCII punctuation), lower case, one space between runs."""
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"\s+", " ", text)


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


@lru_cache(maxsize=4096)
def _pinyin_run(run: str) -> tuple[str, ...]:
    """Toneless pinyin of a run of Chinese characters, one syllable per character."""
    syllables = lazy_pinyin(run, style=Style.NORMAL, errors=lambda chars: list(chars))
    if len(syllables) != len(run):  # defensive: pypinyin keeps one item per Han character
        return tuple(lazy_pinyin(ch, style=Style.NORMAL)[0] for ch in run)
    return tuple(syllables)


def units_of(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Sound units of a cleaned text and the character span of each.

    A Chinese character is one unit (its pinyin); a run of Latin letters/digits is one unit.
    Digits next to Chinese are read the Chinese way, digit by digit, so 工号1024 and 工号一零二四
    sound alike.
    """
    raw: list[tuple[str, int, int]] = [(m.group(0), m.start(), m.end()) for m in _UNIT.finditer(text)]
    units: list[str] = []
    spans: list[tuple[int, int]] = []
    zh_context = has_cjk(text)
    i = 0
    while i < len(raw):
        tok, s, e = raw[i]
        if _CJK.fullmatch(tok):
            j = i
            while j < len(raw) and _CJK.fullmatch(raw[j][0]) and (j == i or raw[j][1] == raw[j - 1][2]):
                j += 1
            run = "".join(t for t, _, _ in raw[i:j])
            units.extend(_pinyin_run(run))
            spans.extend((ss, ee) for _, ss, ee in raw[i:j])
            i = j
            continue
        if zh_context and tok.isdigit():
            for k, ch in enumerate(tok):
                units.append(_pinyin_run(_DIGITS[int(ch)])[0])
                spans.append((s + k, s + k + 1))
        else:
            units.append(tok)
            spans.append((s, e))
        i += 1
    return units, spans


@dataclass
class Doc:
    """One utterance made searchable: cleaned characters, their times, and their sound units."""

    chars: str
    times: list[tuple[float, float]]
    units: list[str] = field(default_factory=list)
    spans: list[tuple[int, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.units, self.spans = units_of(self.chars)

    @classmethod
    def build(cls, text: str, start: float, end: float, words: Sequence[tuple[float, float, str]] = ()) -> "Doc":
        """From word timings when there are words, else spread the utterance span evenly."""
        if words:
            chars: list[str] = []
            times: list[tuple[float, float]] = []
            for w_start, w_end, w_text in words:
                piece = clean(w_text)
                if chars and piece and not piece.startswith(" ") and not has_cjk(piece[:1]) and not has_cjk(chars[-1]):
                    piece = " " + piece  # keep English words apart when the ASR gave no space
                chars.extend(piece)
                times.extend([(w_start, w_end)] * len(piece))
            lead = len(chars) - len("".join(chars).lstrip())  # Whisper words start with a space
            return cls("".join(chars[lead:]), times[lead:])
        text = clean(text).strip()
        n = max(len(text), 1)
        step = (end - start) / n
        return cls(text, [(start + i * step, start + (i + 1) * step) for i in range(len(text))])

    def time_of(self, char_start: int, char_end: int) -> tuple[float, float]:
        if not self.times:
            return (0.0, 0.0)
        char_end = max(char_end, char_start + 1)
        return self.times[min(char_start, len(self.times) - 1)][0], self.times[min(char_end, len(self.times)) - 1][1]


@dataclass(frozen=True)
class Match:
    """A phrase found in a `Doc`: character span, matched text and similarity (1.0 = exact)."""

    char_start: int
    char_end: int
    text: str
    score: float


def _joiner(units: Sequence[str], cjk: bool) -> str:
    return "".join(units) if cjk else " ".join(units)


@lru_cache(maxsize=4096)
def _phrase_sound(phrase: str) -> tuple[bool, tuple[str, ...]]:
    """Whether a phrase is Chinese, and its sound units: a rulebook's phrases are few and are
    looked for in every utterance of every call, so each is turned into pinyin once."""
    phrase_clean = clean(phrase).strip()
    return has_cjk(phrase_clean), tuple(units_of(phrase_clean)[0])


class DocSet:
    """The utterances of one call made searchable together.

    A phrase is looked for in all of them at once: the runs of sound units of every utterance are
    joined once per length and kept, exact phrases are a dictionary lookup, and fuzzy ones go
    through rapidfuzz's batch scorer in C — instead of a Python loop per utterance, phrase and
    start position.  The result per utterance is what :func:`find_text` returns for it alone."""

    def __init__(self, docs: Sequence[Doc]) -> None:
        self.docs = list(docs)
        self._windows: dict[tuple[int, bool], tuple[list[str], list[tuple[int, int]]]] = {}
        self._indexes: dict[tuple[int, bool], dict[str, list[int]]] = {}
        self._joined: dict[bool, list[tuple[str, list[int]]]] = {}
        self._flat: list[tuple[str, list[int]]] | None = None
        self._found: dict[tuple, dict[int, list[Match]]] = {}

    def _joined_units(self, cjk: bool) -> list[tuple[str, list[int]]]:
        """Per doc: its units joined (no separator for Chinese, a space for words) and where each
        unit starts in that string, so any run of units is one slice."""
        if cjk not in self._joined:
            sep = "" if cjk else " "
            joined = []
            for doc in self.docs:
                starts, at = [], 0
                for unit in doc.units:
                    starts.append(at)
                    at += len(unit) + len(sep)
                starts.append(at)
                joined.append((sep.join(doc.units), starts))
            self._joined[cjk] = joined
        return self._joined[cjk]

    def _runs(self, size: int, cjk: bool) -> tuple[list[str], list[tuple[int, int]]]:
        """Every run of ``size`` units (joined as :func:`_joiner` does) and where it starts (doc, unit)."""
        key = (size, cjk)
        if key not in self._windows:
            trim = 0 if cjk else 1  # the separator after a run's last word is not part of it
            texts: list[str] = []
            where: list[tuple[int, int]] = []
            for d, (text, starts) in enumerate(self._joined_units(cjk)):
                for i in range(len(starts) - 1 - size + 1):
                    texts.append(text[starts[i] : starts[i + size] - trim])
                    where.append((d, i))
            self._windows[key] = (texts, where)
        return self._windows[key]

    def _index(self, size: int, cjk: bool) -> dict[str, list[int]]:
        """Runs of ``size`` units by their text, for exact phrases."""
        key = (size, cjk)
        if key not in self._indexes:
            index: dict[str, list[int]] = {}
            for k, text in enumerate(self._runs(size, cjk)[0]):
                index.setdefault(text, []).append(k)
            self._indexes[key] = index
        return self._indexes[key]

    def _alphanumeric(self) -> list[tuple[str, list[int]]]:
        """Per doc: its letters and digits only, and where each stands in the doc's characters."""
        if self._flat is None:
            self._flat = []
            for doc in self.docs:
                where = [i for i, c in enumerate(doc.chars) if c.isalnum()]
                self._flat.append(("".join(doc.chars[i] for i in where), where))
        return self._flat

    def find(self, phrase: str, similarity: float = 0.85, pinyin: bool = True,
             min_fuzzy_units: int | None = None) -> dict[int, list[Match]]:
        """Doc index → occurrences of a literal phrase (see :func:`find_text`); docs without
        one are absent."""
        key = (phrase, similarity, pinyin, min_fuzzy_units)
        if key not in self._found:
            self._found[key] = self._find(phrase, similarity, pinyin, min_fuzzy_units)
        return self._found[key]

    def _find(self, phrase: str, similarity: float, pinyin: bool, min_fuzzy_units: int | None) -> dict[int, list[Match]]:
        if not pinyin:
            phrase_clean = clean(phrase).strip()
            if has_cjk(phrase_clean):
                return self._exact_characters(phrase_clean)
            similarity = 1.0  # English without sound matching: whole words, exact.
        cjk, p_units = _phrase_sound(phrase)
        if not p_units:
            return {}
        n = len(p_units)
        if min_fuzzy_units is None:
            min_fuzzy_units = 3 if cjk else 2
        exact_only = n < min_fuzzy_units or similarity >= 1.0
        target = _joiner(p_units, cjk)
        best: dict[tuple[int, int], tuple[float, int]] = {}
        # at each start the best of the phrase's length, one unit shorter, one longer (ties: in
        # that order)
        for size in [n] if exact_only else [n, n - 1, n + 1]:
            if size < 1:
                continue
            texts, where = self._runs(size, cjk)
            if exact_only:
                scored = [(k, 1.0) for k in self._index(size, cjk).get(target, [])]
            else:
                cutoff = similarity * 100.0 - 1e-6  # the bar is checked again below on the 0–1 scale
                scored = [(k, 1.0 if texts[k] == target else score / 100.0)
                          for _, score, k in process.extract(target, texts, scorer=fuzz.ratio, score_cutoff=cutoff, limit=None)]
                scored = [(k, score) for k, score in scored if score >= similarity]
            for k, score in scored:
                at = where[k]
                if at not in best or score > best[at][0]:
                    best[at] = (score, size)
        per_doc: dict[int, list[Match]] = {}
        for (d, i), (score, size) in sorted(best.items()):
            doc = self.docs[d]
            s, e = doc.spans[i][0], doc.spans[i + size - 1][1]
            per_doc.setdefault(d, []).append(Match(s, e, doc.chars[s:e], score))
        return {d: _non_overlapping(found) for d, found in per_doc.items()}

    def _exact_characters(self, phrase_clean: str) -> dict[int, list[Match]]:
        """The phrase's characters, letters and digits only, exactly as written."""
        target = re.escape(re.sub(r"[^\w]", "", phrase_clean))
        out: dict[int, list[Match]] = {}
        for d, (flat_text, where) in enumerate(self._alphanumeric()):
            chars = self.docs[d].chars
            for m in re.finditer(target, flat_text):
                s, e = where[m.start()], where[m.end() - 1] + 1
                out.setdefault(d, []).append(Match(s, e, chars[s:e], 1.0))
        return out


def find_text(doc: Doc, phrase: str, similarity: float = 0.85, pinyin: bool = True, min_fuzzy_units: int | None = None) -> list[Match]:
    """Occurrences of a literal phrase, exact or by sound.

    Short phrases (under ``min_fuzzy_units``: 3 Chinese syllables, 2 English words) must sound
    exactly the same, because a fuzzy ratio on two syllables accepts 你 for 您.  With
    ``pinyin=False`` only the exact characters count (for profanity lists, where a near-homophone
    is more likely an innocent word than a slur).  A whole call is searched at once with
    :class:`DocSet`.
    """
    return DocSet([doc]).find(phrase, similarity, pinyin, min_fuzzy_units).get(0, [])


def find_regex(doc: Doc, pattern: re.Pattern[str]) -> list[Match]:
    """Regex over the cleaned characters (punctuation kept, so ``^什么[?!]`` can work)."""
    return [Match(m.start(), m.end(), m.group(0), 1.0) for m in pattern.finditer(doc.chars) if m.end() > m.start()]


def _non_overlapping(matches: list[Match]) -> list[Match]:
    """Best-scoring matches first, dropping any that overlap one already kept."""
    kept: list[Match] = []
    for m in sorted(matches, key=lambda m: (-m.score, m.char_start)):
        if all(m.char_end <= k.char_start or m.char_start >= k.char_end for k in kept):
            kept.append(m)
    return sorted(kept, key=lambda m: m.char_start)
