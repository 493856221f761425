"""Triggers: detectors of the situations the seeds prescribe a script for.

Each returns the `Occurrence`s of its situation on one call, from what the pipeline already
knows — words and their times, voice activity per speaker, levels, who is who:

- ``said``: someone says one of the phrases (打错了, 转接, 暂时不能…), optionally only when
  another speaker confirms it soon after (the agent answers 不是 to “是自来水公司吗?”);
- ``silent_party``: a party says nothing after the other side's first turn (silent caller);
- ``quiet_party``: a party's active speech level is far below normal (too quiet to hear);
- ``noisy_party``: a party's speech barely rises over a loud noise floor (noisy line);
- ``long_number``: a long digit string is read out (phone, order, account number);
- ``new_voice``: a speaker of a given kind appears (the receiver of a transfer).
"""

from __future__ import annotations

from functools import cached_property

import re
from dataclasses import dataclass
from statistics import median

from pydantic import Field
from rapidfuzz import fuzz

from ..context import CallContext, Hit, Occurrence
from ..matching import clean, has_cjk
from ..spec import Phrase, PhraseSearch, Scope, Strict, Window, compile_regex
from .registry import register_trigger


# ----------------------------------------------------------------------------- said
class Confirmation(Strict):
    """Another speaker must answer in kind soon after (``within_s`` from the end of the turn)."""

    speaker: Scope = "agent"
    within_s: float = Field(default=10.0, gt=0)
    phrases: list[Phrase] = Field(min_length=1)


class SaidParams(PhraseSearch):
    window: Window | None = None
    confirmed_by: Confirmation | None = None
    """Only count the phrase when this confirmation follows (e.g. the customer asks for another
    organisation *and* the agent answers 不是 / 打错了, not 是的)."""


def _alternatives(element: Phrase) -> list[Phrase]:
    if element.any is None:
        return [element]
    return [leaf for alt in element.any for leaf in _alternatives(alt)]


def _captured(alt: Phrase, hit: Hit) -> str | None:
    """The ``(?P<value>…)`` group of a regex phrase, re-read from the matched text."""
    if alt.regex is None or "(?P<value>" not in alt.regex:
        return None
    m = compile_regex(alt.regex).search(hit.text)
    return m.group("value") if m and m.group("value") else None


@register_trigger("said", SaidParams)
def said(ctx: CallContext, scope: Scope, p: SaidParams) -> list[Occurrence]:
    """Each turn of the scope holding one of the phrases is an occurrence (spanning that turn);
    a regex with a ``(?P<value>…)`` group captures a value (the surname in 我姓王)."""
    indices, span = ctx.windowed(scope, p.window)
    out: dict[int, Occurrence] = {}
    for element in p.phrases:
        for alt in _alternatives(element):
            for hit in ctx.find(alt, indices, p, span):
                if hit.utterance in out:
                    continue
                u = ctx.utterance(hit.utterance)
                if p.confirmed_by is not None and not _confirmed(ctx, u.end, u.speaker, p.confirmed_by, p):
                    continue
                out[hit.utterance] = Occurrence(u.start, u.end, u.speaker, u.text, f"said: {hit.text}", _captured(alt, hit))
    return sorted(out.values(), key=lambda o: o.start)


def _confirmed(ctx: CallContext, after: float, speaker: str, c: Confirmation, search: PhraseSearch) -> bool:
    idx = [i for i in ctx.indices(c.speaker) if ctx.utterance(i).speaker != speaker
           and after - 0.5 <= ctx.utterance(i).start <= after + c.within_s]
    return any(ctx.find(e, idx, search) for e in c.phrases)


# ----------------------------------------------------------------------------- voice activity
def _speakers_of(ctx: CallContext, scope: Scope) -> set[str]:
    if scope == "any":
        return {s.id for s in ctx.conversation.speakers}
    if scope == "receiver":
        return {s.id for s in ctx.conversation.speakers if s.kind == "receiver"}
    return {s.id for s in ctx.conversation.speakers if s.role == scope}


def _other(scope: Scope) -> Scope:
    return "customer" if scope in ("agent", "receiver") else "agent"


class SilentParams(Strict):
    max_voiced_s: float = Field(default=1.0, ge=0)
    """The party counts as silent with at most this much voice activity after the other side's
    first turn (a cough or line click is not an answer)."""
    max_words: int = Field(default=1, ge=0)
    min_after_s: float = Field(default=1.0, ge=0)
    """The other side's first turn must end at least this long before the call does."""
    other_side_phrases: list[Phrase] = Field(default_factory=list)
    """Turns of the party made only of these (the agent's offer of help, 请问有什么可以帮您…) are the
    other side's voice that mono diarization split off — a silent call has one voice, often cut
    in two — not an answer.  A turn counts as such when the phrases cover ``other_side_share`` of
    its characters and one of them is at least 4 characters long (a bare 喂/您好 is an answer)."""
    other_side_share: float = Field(default=0.8, gt=0, le=1)

    @cached_property
    def exact_search(self) -> PhraseSearch:
        """The exact-match search over ``other_side_phrases``, validated once per rulebook
        instead of once per utterance and phrase."""
        return PhraseSearch(phrases=self.other_side_phrases, similarity=1.0)


@register_trigger("silent_party", SilentParams)
def silent_party(ctx: CallContext, scope: Scope, p: SilentParams) -> list[Occurrence]:
    """The scope (normally the customer) is silent from the end of the other side's first turn
    to the end of the call: one occurrence over that stretch.  Voice activity comes from
    ``Conversation.turns`` (per speaker), so a silence is measured, not inferred from ASR."""
    others = ctx.indices(_other(scope))
    if not others:
        return []
    t0 = ctx.utterance(others[0]).end
    end = ctx.conversation.duration_s
    if end - t0 < p.min_after_s:
        return []
    speakers = _speakers_of(ctx, scope)
    mine = [i for i in ctx.indices(scope) if ctx.utterance(i).end > t0]
    split_off = [i for i in mine if _only_phrases(ctx, i, p)]
    spans = [(ctx.utterance(i).start, ctx.utterance(i).end) for i in split_off]
    voiced = sum(max(min(t.end, end) - max(t.start, t0), 0.0) for t in ctx.conversation.turns
                 if t.speaker in speakers and not any(a - 0.3 <= t.start and t.end <= b + 0.3 for a, b in spans))
    words = sum(len(ctx.utterance(i).words) or len(clean(ctx.utterance(i).text).split()) for i in mine if i not in split_off)
    if voiced > p.max_voiced_s or words > p.max_words:
        return []
    return [Occurrence(t0, end, None, None, f"{scope} silent for {end - t0:.1f} s after the first {_other(scope)} turn "
                                             f"({voiced:.1f} s of voice, {words} words)")]


def _only_phrases(ctx: CallContext, i: int, p: SilentParams) -> bool:
    if not p.other_side_phrases:
        return False
    doc = ctx.doc(i)
    search = p.exact_search
    hits = [h for e in p.other_side_phrases for h in ctx.find(e, [i], search)]
    if not hits or max(len(h.text) for h in hits) < 4:
        return False
    covered: set[int] = set()
    text = doc.chars
    for h in hits:
        start = text.find(h.text)
        while start >= 0:
            covered.update(range(start, start + len(h.text)))
            start = text.find(h.text, start + 1)
    letters = [k for k, ch in enumerate(text) if ch.isalnum()]
    return bool(letters) and sum(1 for k in letters if k in covered) / len(letters) >= p.other_side_share


class QuietParams(Strict):
    max_level_dbfs: float | None = -38.0
    """A turn at or below this active-speech level is too quiet (absolute)."""
    below_other_db: float | None = 15.0
    """…or this far below the other side's median level (relative: survives a hot or cold gain)."""
    min_voiced_s: float = Field(default=0.5, ge=0)
    untranscribed_s: float | None = Field(default=None, gt=0)
    """Also: voice activity of the party this long with no words recognised (heard, unreadable)."""


@register_trigger("quiet_party", QuietParams)
def quiet_party(ctx: CallContext, scope: Scope, p: QuietParams) -> list[Occurrence]:
    """Turns of the scope (normally the customer) whose active level is far below normal."""
    other = [m.loudness_dbfs for m in ctx.measures.utterances
             if m.role == _other(scope) and m.loudness_dbfs is not None and m.voiced_s >= p.min_voiced_s]
    other_level = median(other) if other else None
    limits = [x for x in (p.max_level_dbfs, other_level - p.below_other_db if other_level is not None and p.below_other_db is not None else None)
              if x is not None]
    out: list[Occurrence] = []
    if limits:
        limit = max(limits)
        for m in ctx.measures.utterances:
            if m.role != scope or m.loudness_dbfs is None or m.voiced_s < p.min_voiced_s or m.loudness_dbfs > limit:
                continue
            u = ctx.utterance(m.index)
            out.append(Occurrence(m.start, m.end, m.speaker, u.text, f"{scope} level {m.loudness_dbfs:.1f} dBFS ≤ {limit:.1f}",
                                  f"{m.loudness_dbfs:.1f}"))
    if p.untranscribed_s is not None:
        speakers = _speakers_of(ctx, scope)
        spans = [(ctx.utterance(i).start, ctx.utterance(i).end) for i in ctx.indices(scope)]
        for t in ctx.conversation.turns:
            if t.speaker in speakers and t.end - t.start >= p.untranscribed_s and not any(a < t.end and b > t.start for a, b in spans):
                out.append(Occurrence(t.start, t.end, t.speaker, None, f"{scope} voice for {t.end - t.start:.1f} s, no words recognised"))
    return sorted(out, key=lambda o: o.start)


class NoisyParams(Strict):
    max_snr_db: float = 12.0
    """The party's speech rises less than this over its channel's noise floor…"""
    min_noise_dbfs: float = -45.0
    """…and the floor itself is loud (a quiet caller on a clean line is not a noisy line)."""


@register_trigger("noisy_party", NoisyParams)
def noisy_party(ctx: CallContext, scope: Scope, p: NoisyParams) -> list[Occurrence]:
    """A noisy line: from `Measures.speakers` (speech level and noise floor per speaker, on its
    own channel).  The occurrence spans the party's first turn."""
    out: list[Occurrence] = []
    for s in ctx.measures.speakers:
        if s.speaker not in _speakers_of(ctx, scope) or s.snr_db is None or s.noise_dbfs is None:
            continue
        if s.snr_db < p.max_snr_db and s.noise_dbfs >= p.min_noise_dbfs:
            first = [i for i in ctx.indices(scope) if ctx.utterance(i).speaker == s.speaker]
            start, end = (ctx.utterance(first[0]).start, ctx.utterance(first[0]).end) if first else (0.0, 0.0)
            out.append(Occurrence(start, end, s.speaker, None, f"{scope} SNR {s.snr_db:.1f} dB over a {s.noise_dbfs:.1f} dBFS noise floor",
                                  f"{s.snr_db:.1f}"))
    return out


# ----------------------------------------------------------------------------- digits
_ZH_DIGITS = {"零": "0", "〇": "0", "一": "1", "幺": "1", "二": "2", "两": "2", "三": "3", "四": "4", "五": "5",
              "六": "6", "七": "7", "八": "8", "九": "9"}
_EN_DIGITS = {"zero": "0", "oh": "0", "o": "0", "one": "1", "two": "2", "three": "3", "four": "4", "five": "5",
              "six": "6", "seven": "7", "eight": "8", "nine": "9"}
_SEP = r"[\s,.\-、:;/]*"
_ZH_RUN = re.compile(rf"[0-9{''.join(_ZH_DIGITS)}](?:{_SEP}[0-9{''.join(_ZH_DIGITS)}])*")
_EN_TOKEN = r"(?:zero|oh|o|one|two|three|four|five|six|seven|eight|nine|double|triple|\d+)"
_EN_RUN = re.compile(rf"\b{_EN_TOKEN}\b(?:{_SEP}\b{_EN_TOKEN}\b)*")


def digits_of(text: str) -> str:
    """The digit string a run of spoken digits stands for: 零二八 → 028, "double five" → 55."""
    out: list[str] = []
    repeat = 1
    for tok in re.findall(rf"[{''.join(_ZH_DIGITS)}]|\d+|[a-z]+", text.lower()):
        if tok in ("double", "triple"):
            repeat = 2 if tok == "double" else 3
            continue
        digit = _ZH_DIGITS.get(tok) or _EN_DIGITS.get(tok) or (tok if tok.isdigit() else "")
        out.append(digit * repeat)
        repeat = 1
    return "".join(out)


@dataclass
class _Run:
    utterance: int
    start: float
    end: float
    digits: str
    at_start: bool
    at_end: bool
    tail: str


def _runs(ctx: CallContext, i: int) -> list[_Run]:
    doc = ctx.doc(i)
    text = doc.chars
    out = []
    for pattern in ((_ZH_RUN,) if has_cjk(text) else (_EN_RUN,)):
        for m in pattern.finditer(text):
            digits = digits_of(m.group(0))
            if not digits:
                continue
            start, end = doc.time_of(m.start(), m.end())
            out.append(_Run(i, start, end, digits, not re.search(r"\w", text[: m.start()]),
                            not re.search(r"\w", text[m.end():]), text[m.end():]))
    return sorted(out, key=lambda r: r.start)


class LongNumberParams(Strict):
    min_digits: int = Field(default=7, ge=2)
    join_within_s: float = Field(default=1.5, ge=0)
    """A number split over two turns of the same speaker this close is one number."""
    not_repeating: Scope | None = "customer"
    """Skip numbers this party said earlier (reading the customer's own number back is a check,
    not information to write down)."""
    same_number_similarity: float = Field(default=0.8, gt=0, le=1)
    not_followed_by: list[Phrase] = Field(default_factory=lambda: [Phrase(regex=r"(^[\s,.]*吗|对吗|是吗|对不对|是不是|没错吧|对吧|right\?|correct\?|is that right)")])
    """A number followed by a check question in the same turn is a read-back, not dictation."""


@register_trigger("long_number", LongNumberParams)
def long_number(ctx: CallContext, scope: Scope, p: LongNumberParams) -> list[Occurrence]:
    """Digit strings of at least ``min_digits`` digits read out by the scope, in Chinese numerals
    (一二三…幺两) or digits, with pauses or punctuation between groups, across a turn boundary."""
    merged: list[_Run] = []
    for i in ctx.indices(scope):
        for run in _runs(ctx, i):
            last = merged[-1] if merged else None
            if (last is not None and last.at_end and run.at_start and last.utterance != run.utterance
                    and ctx.utterance(last.utterance).speaker == ctx.utterance(run.utterance).speaker
                    and run.start - last.end <= p.join_within_s):
                merged[-1] = _Run(run.utterance, last.start, run.end, last.digits + run.digits, last.at_start, run.at_end, run.tail)
            else:
                merged.append(run)
    earlier: list[tuple[float, str]] = []
    if p.not_repeating is not None:
        earlier = [(r.start, r.digits) for i in ctx.indices(p.not_repeating) for r in _runs(ctx, i) if len(r.digits) >= 4]
    checks = [compile_regex(e.regex) for e in p.not_followed_by if e.regex] + [
        re.compile(re.escape(clean(e.text))) for e in p.not_followed_by if e.text]
    out = []
    for run in merged:
        if len(run.digits) < p.min_digits:
            continue
        if any(t < run.start and (d in run.digits or run.digits in d or fuzz.ratio(d, run.digits) / 100 >= p.same_number_similarity)
               for t, d in earlier):
            continue
        if any(c.search(run.tail[:20]) for c in checks):
            continue
        u = ctx.utterance(run.utterance)
        out.append(Occurrence(run.start, run.end, u.speaker, u.text, f"{len(run.digits)}-digit number read out", run.digits))
    return out


# ----------------------------------------------------------------------------- speakers
class NewVoiceParams(Strict):
    kind: str = "receiver"
    """Speaker kind that marks the situation (``receiver``: the agent who took a transfer)."""


@register_trigger("new_voice", NewVoiceParams)
def new_voice(ctx: CallContext, scope: Scope, p: NewVoiceParams) -> list[Occurrence]:
    """Each speaker of the kind: an occurrence at the start of its first words (a point in
    time, so a transfer phrase before it merges with it into one transfer)."""
    out = []
    utts = ctx.conversation.utterances
    for s in ctx.conversation.speakers:
        if s.kind != p.kind:
            continue
        mine = sorted((u for u in utts if u.speaker == s.id), key=lambda u: u.start)
        if mine:
            out.append(Occurrence(mine[0].start, mine[0].start, s.id, mine[0].text, f"new {p.kind} voice {s.id}"))
    return sorted(out, key=lambda o: o.start)
