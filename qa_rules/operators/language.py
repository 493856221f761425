"""``language_mix``: the agent speaks the call's language only (「工作中必须讲普通话」, 「不可以转换成
用户的方言」).

Per-utterance language is not in the conversation, so it is read from the text of each agent
turn: the share of words in a foreign script (Latin words in a Mandarin call, Chinese characters
in an English one) and dialect marker characters (Cantonese 嘅/咗/冇/佢/喺/啲/嘢/唔…).  Brand and
technical words (APP, WiFi, 5G) are allowed by a list."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from ..context import CallContext, Evidence, Outcome
from ..matching import clean
from ..spec import Scope, Strict
from .registry import register

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[a-z]+(?:'[a-z]+)?")


class LanguageMixParams(Strict):
    foreign: Literal["latin", "cjk"] = "latin"
    """The script that is foreign to the call's language."""
    max_share: float = Field(default=0.5, ge=0, le=1)
    """A turn with at least this share of foreign words (and ``min_foreign`` of them) is in
    another language."""
    min_foreign: int = Field(default=3, ge=1)
    allow: list[str] = Field(default_factory=list)
    """Foreign words that are normal here (product names, APP, WiFi…), lower case."""
    dialect_markers: list[str] = Field(default_factory=list)
    """Characters or words of a dialect (Cantonese 嘅 咗 冇…): ``min_markers`` in a turn fail it."""
    min_markers: int = Field(default=2, ge=1)
    min_units: int = Field(default=3, ge=1)
    """Shorter turns are not judged (“OK”)."""


@register("language_mix", LanguageMixParams)
def language_mix(ctx: CallContext, scope: Scope, p: LanguageMixParams) -> Outcome:
    """Every turn of the scope in the call's language: each turn in another script or with
    dialect markers is evidence; N/A without turns long enough to judge."""
    allow = {w.lower() for w in p.allow}
    judged = 0
    evidence: list[Evidence] = []
    for i in ctx.indices(scope):
        u = ctx.utterance(i)
        text = clean(u.text)
        cjk = len(_CJK.findall(text))
        latin = [w for w in _LATIN_WORD.findall(text) if w not in allow]
        units = cjk + len(latin)
        if units < p.min_units:
            continue
        judged += 1
        foreign = len(latin) if p.foreign == "latin" else cjk
        share = foreign / units
        markers = [m for m in p.dialect_markers if m in text]
        if foreign >= p.min_foreign and share >= p.max_share:
            evidence.append(Evidence(u.start, u.end, u.speaker, u.text, round(share, 2), f"share of {p.foreign} words < {p.max_share:g}"))
        elif len(markers) >= p.min_markers:
            evidence.append(Evidence(u.start, u.end, u.speaker, u.text, "/".join(markers), f"fewer than {p.min_markers} dialect markers"))
    if not judged:
        return Outcome("na", note=f"no {scope} turn of {p.min_units}+ words")
    return Outcome("fail" if evidence else "pass", evidence)
