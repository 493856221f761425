"""Phrase matching by sound: homophones pass, near-misses on short phrases do not."""

from __future__ import annotations

import re
from pathlib import Path

from qa_rules.matching import Doc, Match, find_regex, find_text


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


# --- the call-wide search (DocSet) against the plain per-utterance sliding window it replaced ---
def _reference_find(d: Doc, phrase: str, similarity: float) -> list[tuple[int, int, str, float]]:
    """The straightforward definition: at each start, the best of the windows of the phrase's
    length, one shorter and one longer (ties in that order), then non-overlapping best first."""
    from rapidfuzz import fuzz

    from qa_rules.matching import _non_overlapping, clean, has_cjk, units_of

    phrase_clean = clean(phrase).strip()
    cjk = has_cjk(phrase_clean)
    p_units, _ = units_of(phrase_clean)
    if not p_units or not d.units:
        return []
    n = len(p_units)
    exact_only = n < (3 if cjk else 2) or similarity >= 1.0
    join = "".join if cjk else " ".join
    target = join(p_units)
    found = []
    for i in range(len(d.units)):
        best = None
        for size in [n] if exact_only else [n, n - 1, n + 1]:
            if size < 1 or i + size > len(d.units):
                continue
            cand = join(d.units[i : i + size])
            score = 1.0 if cand == target else (0.0 if exact_only else fuzz.ratio(cand, target) / 100.0)
            if score >= (1.0 if exact_only else similarity) and (best is None or score > best[0]):
                best = (score, size)
        if best is not None:
            s, e = d.spans[i][0], d.spans[i + best[1] - 1][1]
            found.append(Match(s, e, d.chars[s:e], best[0]))
    return [(m.char_start, m.char_end, m.text, m.score) for m in _non_overlapping(found)]


def _rulebook_phrases() -> set[str]:
    import qa_rules

    phrases: set[str] = set()

    def walk(node):  # phrases are strings in lists or {text: ...}; other strings only add cases
        if isinstance(node, dict):
            if isinstance(node.get("text"), str):
                phrases.add(node["text"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                phrases.update([value] if isinstance(value, str) and value.strip() else [])
                walk(value)

    for language in ("zh", "en"):
        walk(qa_rules.load_rulebook(qa_rules.default_rulebook_path(language)).model_dump())
    return phrases


def test_call_wide_search_finds_exactly_what_the_per_utterance_window_finds():
    """Every phrase of both default rulebooks in every utterance of the saved fixture calls, exact
    and fuzzy (the default bar and exact): the batched search (runs sliced from joined pinyin, rapidfuzz's batch scorer with a
    cut-off) returns the same matches, scores included — one phrase at a time, and all of them in
    one batch as a rulebook's calls are searched."""
    from qa_rules.matching import DocSet
    from qa_rules.records import Conversation

    phrases = sorted(_rulebook_phrases())
    assert len(phrases) > 100
    docs = [
        Doc.build(u.text, u.start, u.end, [(w.start, w.end, w.text) for w in u.words])
        for path in sorted((Path(__file__).parent / "fixtures" / "calls").glob("*.conversation.json"))
        for u in Conversation.read(path).utterances
    ]
    together = DocSet(docs)
    # as a rulebook's calls search: every key answered in one batch on the first search
    batched = DocSet(docs, expect={(phrase, similarity, True, None) for phrase in phrases for similarity in (0.85, 1.0)})
    compared = hits = 0
    for phrase in phrases:
        for similarity in (0.85, 1.0):
            by_doc = together.find(phrase, similarity)
            by_doc_batched = batched.find(phrase, similarity)
            for k, d in enumerate(docs):
                got = [(m.char_start, m.char_end, m.text, m.score) for m in by_doc.get(k, [])]
                expected = _reference_find(d, phrase, similarity)
                assert got == expected, (phrase, similarity, d.chars)
                assert [(m.char_start, m.char_end, m.text, m.score) for m in by_doc_batched.get(k, [])] == expected, \
                    ("batched", phrase, similarity, d.chars)
                compared += 1
                hits += len(got)
    assert hits > 50 and compared > 10_000


def test_pinyin_read_word_by_word_is_pypinyins_reading_of_the_whole_run():
    """``_pinyin_run`` keeps each word's reading (words recur across calls, runs do not); it must
    read every run exactly as ``lazy_pinyin`` reads it whole — polyphones decided by the words
    around them (银行 / 行走, 重庆 / 重要), runs cut inside a dictionary phrase, the seeds' text,
    and random joins of dictionary phrases and characters."""
    import random

    from pypinyin import Style, lazy_pinyin
    from pypinyin.constants import PHRASES_DICT, PINYIN_DICT

    from qa_rules import matching
    from bench.shared_data import SHARED

    cjk = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+")
    runs = {"银行行长走在行人中间", "重庆的重要会议", "长大后的长度", "中华人多", "还还给你", "我们还是得还钱"}
    for path in sorted((SHARED / "seeds").glob("*.txt")) + sorted(Path("qa_rules").glob("*.yaml")):
        runs.update(cjk.findall(path.read_text(encoding="utf-8", errors="ignore")))
    rng = random.Random(7)
    phrases = sorted(PHRASES_DICT)
    chars = [chr(k) for k in sorted(PINYIN_DICT) if cjk.fullmatch(chr(k))]
    for _ in range(3000):
        run = "".join(rng.choice(phrases) if rng.random() < 0.6 else rng.choice(chars) for _ in range(rng.randint(1, 5)))
        a, b = rng.choice(phrases), rng.choice(phrases)
        runs.update(r for r in (run, a[rng.randint(0, len(a) - 1):] + b[: rng.randint(1, len(b))]) if cjk.fullmatch(r))
    assert len(runs) > 5000
    for run in sorted(runs):
        assert matching._pinyin_run(run) == tuple(lazy_pinyin(run, style=Style.NORMAL, errors=lambda c: list(c))), run
