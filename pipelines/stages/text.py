"""Text clean-up after recognition: Whisper writes Mandarin in Traditional characters.

QA rulebooks, reviewers and references are in Simplified Chinese, so Chinese output is converted
with OpenCC (``t2s``); punctuation is kept.  Languages written without spaces join words directly.
"""

from __future__ import annotations

import re
from functools import lru_cache

CHINESE_LANGUAGES = {"zh", "yue"}
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")


@lru_cache(maxsize=1)
def _t2s():
    import opencc

    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    return _t2s().convert(text) if _CJK.search(text) else text


def normalise_word(text: str, language: str) -> str:
    """A recognised word as stored: stripped, and Simplified for Chinese."""
    text = text.strip()
    return to_simplified(text) if language in CHINESE_LANGUAGES or _CJK.search(text) else text


def join_words(words: list[str], language: str) -> str:
    """Join stored words into an utterance's text: no spaces between CJK characters."""
    out = ""
    for word in words:
        if not word:
            continue
        if out and not (_CJK.match(word[0]) or _CJK.match(out[-1]) or word[0] in ",.?!:;，。？！：；、"):
            out += " "
        out += word
    return out


def count_cjk(text: str) -> int:
    return len(_CJK.findall(text))
