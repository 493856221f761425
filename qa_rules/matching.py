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
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Sequence

from rapidfuzz import fuzz, process

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_DIGITS = "零一二三四五六七八九"


def clean(text: str) -> str:
    """NFKC (full-width → ASCII punctuation), lower case, one space between runs."""
    text = unicodedata.normalize("NFKC", text).lower()
    return re.sub(r"\s+", " ", text)


def has_cjk(text: str) -> bool:
    return bool(_CJK.search(text))


@lru_cache(maxsize=1)
def _pypinyin():
    """pypinyin's segmenter, ``lazy_pinyin`` and its toneless style, imported on the first reading:
    its dictionaries take ~0.2 s to load, and a re-score whose every outcome is remembered
    (:mod:`qa_rules.memo`) reads no pinyin at all."""
    from pypinyin import Style, lazy_pinyin
    from pypinyin.core import Pinyin

    return Pinyin(), lazy_pinyin, Style.NORMAL


def _keep(chars: str) -> list[str]:
    return list(chars)


@lru_cache(maxsize=4096)
def _pinyin_run(run: str) -> tuple[str, ...]:
    """Toneless pinyin of a run of Chinese characters, one syllable per character.

    What ``lazy_pinyin(run)`` returns, worked out word by word: pypinyin cuts the run into words
    (its phrase dictionary, longest match first) and reads each word on its own, so a word's
    reading is kept once per process.  Cutting is cheap; reading is four fifths of the cost, and
    the words of one call recur in the next while its runs do not."""
    segmenter, lazy_pinyin, normal = _pypinyin()
    syllables = [syllable for word in segmenter.seg(run) for syllable in _pinyin_word(word)]
    if len(syllables) != len(run):  # defensive: pypinyin keeps one item per Han character
        return tuple(lazy_pinyin(ch, style=normal)[0] for ch in run)
    return tuple(syllables)


@lru_cache(maxsize=1 << 16)
def _pinyin_word(word: str) -> tuple[str, ...]:
    """A word as pypinyin cut it reads the same alone: it is its own longest match."""
    _, lazy_pinyin, normal = _pypinyin()
    return tuple(lazy_pinyin(word, style=normal, errors=_keep))


_TOKEN = re.compile(r"(?P<cjk>[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+)|[a-z0-9]+(?:'[a-z]+)?")
"""A run of adjacent Chinese characters (one unit per character), or a word of Latin letters and
digits (one unit)."""


def units_of(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Sound units of a cleaned text and the character span of each.

    A Chinese character is one unit (its pinyin); a run of Latin letters/digits is one unit.
    Digits next to Chinese are read the Chinese way, digit by digit, so 工号1024 and 工号一零二四
    sound alike.  Pinyin is taken per run of adjacent Chinese characters, so a character reads as
    the words around it make it read.
    """
    units: list[str] = []
    spans: list[tuple[int, int]] = []
    zh_context = has_cjk(text)
    for m in _TOKEN.finditer(text):
        tok = m.group(0)
        s = m.start()
        if m.lastgroup == "cjk":
            units.extend(_pinyin_run(tok))
            spans.extend([(k, k + 1) for k in range(s, s + len(tok))])
        elif zh_context and tok.isdigit():
            for k, ch in enumerate(tok):
                units.append(_pinyin_run(_DIGITS[int(ch)])[0])
                spans.append((s + k, s + k + 1))
        else:
            units.append(tok)
            spans.append((s, m.end()))
    return units, spans


@lru_cache(maxsize=1 << 16)
def _clean_word(text: str) -> tuple[str, bool, bool]:
    """:func:`clean` of one ASR word, whether it may take a space before it (it starts with
    neither a space nor a Chinese character) and whether it ends with a Chinese character: words
    repeat across utterances and calls, so each is cleaned and looked at once."""
    piece = clean(text)
    return piece, bool(piece) and not piece.startswith(" ") and not has_cjk(piece[:1]), has_cjk(piece[-1:])


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
            pieces: list[str] = []
            times: list[tuple[float, float]] = []
            after_cjk: bool | None = None  # whether the text so far ends with a Chinese character (None: no text yet)
            for w_start, w_end, w_text in words:
                piece, spaced, ends_cjk = _clean_word(w_text)
                if not piece:
                    continue
                if spaced and after_cjk is False:
                    piece = " " + piece  # keep English words apart when the ASR gave no space
                pieces.append(piece)
                times.extend([(w_start, w_end)] * len(piece))
                after_cjk = ends_cjk
            text = "".join(pieces)
            lead = len(text) - len(text.lstrip())  # Whisper words start with a space
            return cls(text[lead:], times[lead:])
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


@dataclass(frozen=True)
class _Plan:
    """How one search key (phrase, similarity, pinyin, min_fuzzy_units) is looked for, worked out
    once per process: a rulebook's keys are few and are searched in every call."""

    mode: int
    """0: nothing to find; 1: exact characters (``pattern``); 2: exact sound; 3: fuzzy sound."""
    cjk: bool = False
    target: str = ""
    """The phrase's sound units joined as :func:`_joiner` does."""
    n: int = 0
    similarity: float = 1.0
    pattern: re.Pattern[str] | None = None


_NOTHING, _CHARACTERS, _EXACT, _FUZZY = 0, 1, 2, 3
_FILTER_MARGIN = 1.0
"""rapidfuzz's batch scorer only preselects candidates, with a bar this many points lower than the
phrase's; each candidate is then scored again with ``fuzz.ratio``, which decides."""


@lru_cache(maxsize=8192)
def _plan(phrase: str, similarity: float, pinyin: bool, min_fuzzy_units: int | None) -> _Plan:
    if not pinyin:
        phrase_clean = clean(phrase).strip()
        if has_cjk(phrase_clean):
            return _Plan(_CHARACTERS, pattern=re.compile(re.escape(re.sub(r"[^\w]", "", phrase_clean))))
        similarity = 1.0  # English without sound matching: whole words, exact.
    cjk, p_units = _phrase_sound(phrase)
    if not p_units:
        return _Plan(_NOTHING)
    n = len(p_units)
    if min_fuzzy_units is None:
        min_fuzzy_units = 3 if cjk else 2
    exact_only = n < min_fuzzy_units or similarity >= 1.0
    return _Plan(_EXACT if exact_only else _FUZZY, cjk, _joiner(p_units, cjk), n, similarity)


SearchKey = tuple[str, float, bool, "int | None"]
"""What :meth:`DocSet.find` is asked: phrase, similarity, pinyin, min_fuzzy_units."""


@dataclass(frozen=True)
class _FuzzyBatch:
    """The fuzzy phrases of one script searched together."""

    targets: list[str]
    by_size: list[tuple[int, list[int], list[str]]]
    """Per run length: the rows of the targets that need runs of that length, and those targets."""
    bar: float
    """The pre-filter's bar: the lowest of the phrases' bars less :data:`_FILTER_MARGIN`."""
    members: list[tuple[SearchKey, _Plan, int]]
    """Each key, its plan and its target's row."""


@dataclass(frozen=True)
class _Layout:
    """A set of search keys sorted by how they are searched; the same set comes back for every call
    of a rulebook, so it is worked out once."""

    simple: list[tuple[SearchKey, _Plan]]
    exact: list[tuple[bool, int, frozenset[str], list[tuple[SearchKey, str]]]]
    fuzzy: list[tuple[bool, _FuzzyBatch]]


@lru_cache(maxsize=64)
def _layout(keys: frozenset[SearchKey]) -> _Layout:
    simple: list[tuple[SearchKey, _Plan]] = []
    exact: dict[tuple[bool, int], list[tuple[SearchKey, str]]] = {}
    fuzzy: dict[bool, list[tuple[SearchKey, _Plan]]] = {}
    for key in sorted(keys, key=repr):
        plan = _plan(*key)
        if plan.mode == _FUZZY:
            fuzzy.setdefault(plan.cjk, []).append((key, plan))
        elif plan.mode == _EXACT:
            exact.setdefault((plan.cjk, plan.n), []).append((key, plan.target))
        else:
            simple.append((key, plan))
    batches = []
    for cjk, group in fuzzy.items():
        targets = sorted({plan.target for _, plan in group})
        row = {t: r for r, t in enumerate(targets)}
        units: dict[str, set[int]] = {}  # one sound string can be split two ways (xian / xi an)
        for _, plan in group:
            units.setdefault(plan.target, set()).add(plan.n)
        by_size = []
        for size in sorted({size for _, plan in group for size in (plan.n - 1, plan.n, plan.n + 1) if size >= 1}):
            rows = [r for r, t in enumerate(targets) if any(abs(n - size) <= 1 for n in units[t])]
            by_size.append((size, rows, [targets[r] for r in rows]))
        bar = max(min(plan.similarity for _, plan in group) * 100.0 - _FILTER_MARGIN, 0.0)
        batches.append((cjk, _FuzzyBatch(targets, by_size, bar, [(key, plan, row[plan.target]) for key, plan in group])))
    return _Layout(simple, [(cjk, n, frozenset(t for _, t in members), members) for (cjk, n), members in exact.items()],
                   batches)


class DocSet:
    """The utterances of one call made searchable together.

    A phrase is looked for in all of them at once: the runs of sound units of every utterance are
    joined once per length and kept, exact phrases are a dictionary lookup, and fuzzy ones go
    through rapidfuzz's batch scorer in C — every fuzzy phrase of one length against every run of
    that length ±1 in one call, as a pre-filter with a lower bar, then ``fuzz.ratio`` on the few
    candidates.  The result per utterance is what :func:`find_text` returns for it alone.

    ``expect`` is a set of search keys shared by the calls of one rulebook: the first search of a
    call answers every key in it at once (their results are what each search alone returns), and
    each new key asked for is added to it, so from the second call on a call is searched in one
    batch."""

    def __init__(self, docs: Sequence[Doc], expect: set[SearchKey] | None = None) -> None:
        self.docs = list(docs)
        self._expect = expect
        self._windows: dict[tuple[int, bool], tuple[list[str], list[int]]] = {}
        self._joined: dict[bool, list[tuple[str, list[int]]]] = {}
        self._flat: list[tuple[str, list[int]]] | None = None
        self._found: dict[SearchKey, dict[int, list[Match]]] = {}

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

    def _runs(self, size: int, cjk: bool) -> tuple[list[str], list[int]]:
        """Every run of ``size`` units (joined as :func:`_joiner` does), and the number of the
        first run of each doc (doc ``d``'s run at unit ``i`` is run ``firsts[d] + i``)."""
        key = (size, cjk)
        if key not in self._windows:
            trim = 0 if cjk else 1  # the separator after a run's last word is not part of it
            texts: list[str] = []
            firsts: list[int] = []
            for text, starts in self._joined_units(cjk):
                firsts.append(len(texts))
                if len(starts) > size:
                    texts += [text[a : b - trim] for a, b in zip(starts, starts[size:])]
            self._windows[key] = (texts, firsts)
        return self._windows[key]

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
        found = self._found.get(key)
        if found is None:
            if self._expect is None:
                self._search([key])
            else:
                self._expect.add(key)
                self._search([k for k in self._expect if k not in self._found])
            found = self._found[key]
        return found

    def _search(self, keys: Sequence[SearchKey]) -> None:
        """Answer ``keys`` into ``_found``: exact ones by phrase length, fuzzy ones by run length in
        one rapidfuzz call each (see :func:`_layout`)."""
        layout = _layout(frozenset(keys))
        found = self._found
        for key, plan in layout.simple:
            found[key] = self._exact_characters(plan.pattern) if plan.mode == _CHARACTERS else {}
        for cjk, n, wanted, members in layout.exact:
            texts = self._runs(n, cjk)[0]
            present = wanted.intersection(texts)
            at: dict[str, list[int]] = {}
            if present:  # the runs holding one, in order (a comprehension: most runs hold none)
                for k in [k for k, text in enumerate(texts) if text in present]:
                    at.setdefault(texts[k], []).append(k)
            for key, target in members:
                ks = at.get(target)
                found[key] = self._matches_at({self._where(n, cjk, k): (1.0, n) for k in ks}) if ks else {}
        for cjk, batch in layout.fuzzy:
            self._search_fuzzy(cjk, batch)

    def _search_fuzzy(self, cjk: bool, batch: "_FuzzyBatch") -> None:
        """Fuzzy phrases: at each start the best of the runs of the phrase's length, one unit
        shorter, one longer (ties: in that order), at or above the phrase's bar.  The runs of each
        length are scored against every phrase that needs them in one rapidfuzz call, as a
        pre-filter; ``fuzz.ratio`` then decides on the few candidates."""
        candidates: list[list[tuple[int, int]]] = [[] for _ in batch.targets]  # per target: (size, run)
        runs: dict[int, list[str]] = {}  # run texts by size, looked up once per search, not per candidate
        for size, rows, queries in batch.by_size:
            texts = runs[size] = self._runs(size, cjk)[0]
            if not texts:
                continue
            # the array's own nonzero(): np.nonzero() wraps it in Python dispatch on every call
            # (numpy is imported here, by the first fuzzy search: a re-score whose outcomes are all
            # remembered, :mod:`qa_rules.memo`, never searches and never loads it)
            import numpy as np

            hit_rows, hit_cols = process.cdist(queries, texts, scorer=fuzz.ratio, score_cutoff=batch.bar,
                                               dtype=np.uint8).nonzero()
            for q, k in zip(hit_rows.tolist(), hit_cols.tolist()):
                candidates[rows[q]].append((size, k))
        for key, plan, row in batch.members:
            mine = candidates[row]
            if not mine:
                self._found[key] = {}
                continue
            n, target, similarity = plan.n, plan.target, plan.similarity
            order = {n: 0, n - 1: 1, n + 1: 2}
            cutoff = similarity * 100.0 - 1e-6  # the bar is checked again below on the 0–1 scale
            best: dict[tuple[int, int], tuple[float, int]] = {}
            for _, size, k in sorted((order[size], size, k) for size, k in mine if size in order):
                text = runs[size][k]
                ratio = fuzz.ratio(target, text)
                if ratio < cutoff:
                    continue
                score = 1.0 if text == target else ratio / 100.0
                if score < similarity:
                    continue
                at = self._where(size, cjk, k)
                if at not in best or score > best[at][0]:
                    best[at] = (score, size)
            self._found[key] = self._matches_at(best) if best else {}

    def _where(self, size: int, cjk: bool, k: int) -> tuple[int, int]:
        """(doc, unit) where run ``k`` of ``size`` units starts."""
        firsts = self._runs(size, cjk)[1]
        d = bisect_right(firsts, k) - 1
        return d, k - firsts[d]

    def _matches_at(self, best: dict[tuple[int, int], tuple[float, int]]) -> dict[int, list[Match]]:
        per_doc: dict[int, list[Match]] = {}
        for (d, i), (score, size) in sorted(best.items()):
            doc = self.docs[d]
            s, e = doc.spans[i][0], doc.spans[i + size - 1][1]
            per_doc.setdefault(d, []).append(Match(s, e, doc.chars[s:e], score))
        return {d: _non_overlapping(found) for d, found in per_doc.items()}

    def _exact_characters(self, pattern: re.Pattern[str]) -> dict[int, list[Match]]:
        """The phrase's characters, letters and digits only, exactly as written."""
        out: dict[int, list[Match]] = {}
        for d, (flat_text, where) in enumerate(self._alphanumeric()):
            chars = self.docs[d].chars
            for m in pattern.finditer(flat_text):
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
