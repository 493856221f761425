"""Role accuracy and DER of pipeline conversations against labelled calls (``labels.json`` of
``../shared/data/calls*``): what share of words went to the right role, whether any call has its
agent and customer swapped, and how well mono diarization found the voices.

Used by ``make bench`` (bench/bench_roles.py) and by the tests, so that the figures the README
states and the bars the tests assert come from the same code.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from qa_rules.records import Conversation
from pipelines.stages.roles import RoleDecision, SpokenRun, pinyin_key, roles_from_content

DER_COLLAR_S = 0.5
"""pyannote.metrics collar: 0.5 s in all, ±0.25 s around each reference boundary."""
JOIN_PAUSES_S = 1.0
"""The labels mark whole utterances, pauses between phrases included; one speaker's hypothesis
turns closer than this are joined before scoring, so that a comma pause is not a missed detection."""


@dataclass(frozen=True)
class RoleScore:
    call_id: str
    words: int
    right: int
    swapped: bool
    receiver_found: bool | None
    """On a call with a labelled receiver: whether a speaker of kind ``receiver`` was found."""

    @property
    def accuracy(self) -> float:
        return self.right / self.words if self.words else 1.0


WORD_COLLAR_S = 0.25
"""Whisper's word times can run a little into the next turn: a word within this of turns of both
roles is not scored, as DER's collar leaves boundaries out."""


def label_role(turns: list[dict], start: float, end: float) -> str | None:
    """The labelled role of the turns around a word (``receiver`` is an agent); ``None`` when the
    word is near turns of both roles or further than 1 s from any turn."""
    near = {t["role"] for t in turns if t["start"] - WORD_COLLAR_S < end and start < t["end"] + WORD_COLLAR_S}
    if len(near) == 1:
        return near.pop()
    if near:
        return None
    mid = (start + end) / 2
    best = min(turns, key=lambda t: min(abs(t["start"] - mid), abs(t["end"] - mid)), default=None)
    if best is None or min(abs(best["start"] - mid), abs(best["end"] - mid)) > 1.0:
        return None
    return best["role"]


def score_roles(conversation: Conversation, label: dict, decisions: dict[str, RoleDecision] | None = None) -> RoleScore:
    """Word-level role accuracy of a conversation (or of other ``decisions`` for its speakers)."""
    role_of = {s.id: s.role for s in conversation.speakers}
    kind_of = {s.id: s.speaker_kind for s in conversation.speakers}
    if decisions is not None:
        role_of = {s: d.role for s, d in decisions.items()}
        kind_of = {s: (d.kind or d.role) for s, d in decisions.items()}
    words = right = 0
    per_speaker: dict[str, dict[str, int]] = {}
    for u in conversation.utterances:
        for w in u.words:
            expected = label_role(label["turns"], w.start, w.end)
            if expected is None:
                continue
            got = role_of.get(u.speaker, "unknown")
            words += 1
            right += got == expected
            per_speaker.setdefault(u.speaker, {}).setdefault(expected, 0)
            per_speaker[u.speaker][expected] += 1
    # Swapped: the voice whose words are mostly the agent's was called the customer, or vice versa.
    swapped = False
    for speaker, counts in per_speaker.items():
        majority = max(counts, key=counts.get)
        if {majority, role_of.get(speaker)} == {"agent", "customer"}:
            swapped = True
    has_receiver = any(t.get("speaker") == "receiver" for t in label["turns"])
    receiver_found = any(k == "receiver" for k in kind_of.values()) if has_receiver else None
    return RoleScore(conversation.call_id, words, right, swapped, receiver_found)


def content_roles(conversation: Conversation) -> dict[str, RoleDecision]:
    """The content decision for a conversation's speakers, ignoring any channel map (what the
    pipeline decides when the recorder's channel map is unknown)."""
    runs = [SpokenRun(u.speaker, u.start, u.text) for u in conversation.utterances]
    heard = {}
    for t in conversation.turns:
        heard[t.speaker] = min(heard.get(t.speaker, t.start), t.start)
    return roles_from_content(runs, heard)


# The rule used before whole-call evidence, kept here only as the bench's baseline: agent phrases
# counted in each speaker's first 30 s, else whoever speaks first.
_OLD_ZH = ["欢迎致电", "工号", "为您服务", "有什么可以帮您", "有什么可以帮你", "很高兴为您服务", "客服中心",
           "请问有什么", "感谢您的来电", "欢迎再次来电"]
_OLD_EN = ["thank you for calling", "thanks for calling", "how can i help", "how may i help", "my name is",
           "how can i assist", "speaking", "customer service", "customer support", "is there anything else"]


def _old_hits(text: str) -> int:
    key = f" {pinyin_key(text)} "
    n = sum(1 for p in _OLD_ZH if p in text or (pinyin_key(p) and f" {pinyin_key(p)} " in key))
    lowered = re.sub(r"[^a-z' ]+", " ", text.lower())
    return n + sum(1 for p in _OLD_EN if re.search(rf"\b{re.escape(p)}\b", lowered))


def old_opening_roles(conversation: Conversation) -> dict[str, RoleDecision]:
    first: dict[str, float] = {}
    opening: dict[str, str] = {}
    for u in sorted(conversation.utterances, key=lambda u: u.start):
        first.setdefault(u.speaker, u.start)
        if u.start <= first[u.speaker] + 30.0:
            opening[u.speaker] = opening.get(u.speaker, "") + u.text
    if not first:
        return {}
    speakers = sorted(first, key=first.get)
    ranked = sorted(speakers, key=lambda s: (-_old_hits(opening.get(s, "")), first[s]))
    agent = ranked[0]
    if not (_old_hits(opening.get(agent, "")) and (len(ranked) == 1 or _old_hits(opening[agent]) > _old_hits(opening.get(ranked[1], "")))):
        agent = speakers[0]
    return {s: RoleDecision("agent" if s == agent else "customer", "old rule") for s in speakers}


def _annotations(conversation: Conversation, label: dict):
    from pyannote.core import Annotation, Segment

    reference, hypothesis = Annotation(uri=conversation.call_id), Annotation(uri=conversation.call_id)
    for turn in label["turns"]:
        reference[Segment(turn["start"], turn["end"])] = turn.get("speaker", turn["role"])
    for i, turn in enumerate(conversation.turns):
        hypothesis[Segment(turn.start, turn.end), str(i)] = turn.speaker
    return reference, hypothesis.support(JOIN_PAUSES_S)


def diarization_der(conversation: Conversation, label: dict, collar: float = DER_COLLAR_S) -> float:
    """DER of the conversation's voice-activity turns against the labelled turns (by ``speaker``:
    agent, customer, receiver), overlap scored."""
    from pyannote.metrics.diarization import DiarizationErrorRate

    return float(DiarizationErrorRate(collar=collar)(*_annotations(conversation, label)))


def pooled_der(pairs: Iterable[tuple[Conversation, dict]], collar: float = DER_COLLAR_S) -> float:
    """DER over several calls together: total error over total labelled speech."""
    from pyannote.metrics.diarization import DiarizationErrorRate

    metric = DiarizationErrorRate(collar=collar)
    for conversation, label in pairs:
        metric(*_annotations(conversation, label))
    return float(abs(metric))


def pooled(scores: Iterable[RoleScore]) -> float:
    scores = list(scores)
    words = sum(s.words for s in scores)
    return sum(s.right for s in scores) / words if words else 1.0
