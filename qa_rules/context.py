"""What an operator sees of one call: utterances by role, searchable docs, phrase hits.

Built once per call and shared by all rules, so each utterance is cleaned and converted to
pinyin only once.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Literal

from qa_rules.records import Conversation, Measures, Utterance
from qa_rules.records import EvidenceItem as Evidence

from .matching import Doc, DocSet, find_regex
from .spec import Phrase, PhraseSearch, Scope, Window, compile_regex

if TYPE_CHECKING:  # the rulebook imports the operators, which import this module
    from .memo import KnownOutcomes
    from .rulebook import Rulebook, Situation

Verdict = Literal["pass", "fail", "na"]


@dataclass
class Outcome:
    """What an operator returns: the verdict and the evidence a reviewer needs to check it."""

    verdict: Verdict
    evidence: list[Evidence] = field(default_factory=list)
    note: str | None = None


@dataclass(frozen=True)
class Hit:
    """A phrase element found in an utterance, placed in time by word timestamps."""

    utterance: int
    element: str
    start: float
    end: float
    speaker: str
    text: str
    score: float


@dataclass(frozen=True)
class Occurrence:
    """One time a situation was detected on the call (a trigger fired): where, who, and why.

    ``start``/``end`` span what the trigger saw (the turn with the transfer phrase, the digit run,
    the quiet customer turn); rules of the situation judge what the agent did around it."""

    start: float
    end: float
    speaker: str | None
    text: str | None
    what: str
    """What fired, for the reviewer: ``said: 打错了``, ``customer level -46.1 dBFS``…"""
    value: str | None = None
    """A value the trigger captured (the customer's surname, the digits read out)."""


class CallContext:
    def __init__(self, conversation: Conversation, measures: Measures, rulebook: "Rulebook | None" = None,
                 known: "KnownOutcomes | None" = None) -> None:
        self.conversation = conversation
        self.measures = measures
        self.rulebook = rulebook
        self.known = known if rulebook is not None else None
        """Situations found by an earlier scoring of this call (:mod:`qa_rules.memo`)."""
        self._situations: dict[str, list[Occurrence]] = {}
        self._indices: dict[str, list[int]] = {}
        self._regex_matches: dict[tuple[str, int], list] = {}
        # (the caches are shared with the :meth:`focus` views: the call does not change)
        self.trigger: list[Occurrence] = []
        """Occurrences of the situation of the rule being judged (empty for rules without one)."""

    def situation(self, situation_id: str) -> list[Occurrence]:
        """Occurrences of a situation of the rulebook, detected once per call (any of its
        detectors; occurrences closer than ``merge_within_s`` are one)."""
        if situation_id not in self._situations:
            spec = self._situation_spec(situation_id)
            if self.known is None:
                self._situations[situation_id] = detect_situation(self, spec)
            else:
                self._situations[situation_id] = self.known.situation(
                    self.rulebook.fingerprints.situations[situation_id], lambda: detect_situation(self, spec))
        return self._situations[situation_id]

    def _situation_spec(self, situation_id: str) -> "Situation":
        for spec in self.rulebook.situations if self.rulebook is not None else []:
            if spec.id == situation_id:
                return spec
        raise KeyError(f"situation {situation_id!r} is not defined in the rulebook")

    def focus(self, occurrences: list[Occurrence]) -> "CallContext":
        """The same call (shared caches) with ``trigger`` set for one situational rule."""
        self.docs  # built before the copy, so every view shares one
        view = copy.copy(self)
        view.trigger = list(occurrences)
        return view

    @cached_property
    def is_conversation(self) -> bool:
        """False when a situation marked ``no_conversation`` occurred (silent caller, wrong
        number): the call has no service part, so closing and body rules do not apply."""
        if self.rulebook is None:
            return True
        return not any(self.situation(s.id) for s in self.rulebook.situations if s.no_conversation)

    @cached_property
    def has_roles(self) -> bool:
        return any(u.role in ("agent", "customer") for u in self.conversation.utterances)

    def indices(self, scope: Scope) -> list[int]:
        """Utterance indices of the scope, in time order."""
        if scope not in self._indices:
            self._indices[scope] = self._scope_indices(scope)
        return list(self._indices[scope])

    def _scope_indices(self, scope: Scope) -> list[int]:
        utts = self.conversation.utterances
        if scope == "receiver":
            receivers = {s.id for s in self.conversation.speakers if s.kind == "receiver"}
            idx = [i for i, u in enumerate(utts) if u.speaker in receivers]
        else:
            idx = [i for i, u in enumerate(utts) if scope == "any" or u.role == scope]
        return sorted(idx, key=lambda i: utts[i].start)

    def utterance(self, i: int) -> Utterance:
        return self.conversation.utterances[i]

    def doc(self, i: int) -> Doc:
        return self.docs.docs[i]

    @cached_property
    def docs(self) -> DocSet:
        """Every utterance made searchable once per call (shared by :meth:`focus` views)."""
        return DocSet([Doc.build(u.text, u.start, u.end, [(w.start, w.end, w.text) for w in u.words])
                       for u in self.conversation.utterances],
                      expect=self.rulebook.search_keys if self.rulebook is not None else None)

    def windowed(self, scope: Scope, window: Window | None) -> tuple[list[int], tuple[float, float]]:
        """Utterances of the scope inside the window, and the time range the window covers
        (hits outside the range are dropped: a greeting must be in the first N seconds)."""
        idx = self.indices(scope)
        lo, hi = float("-inf"), float("inf")
        if window is None or not idx:
            return idx, (lo, hi)
        if window.skip_first_turns:
            idx = idx[window.skip_first_turns :]
        if window.skip_last_turns:
            idx = idx[: max(len(idx) - window.skip_last_turns, 0)]
        if window.first_turns:
            idx = idx[: window.first_turns]
        if window.last_turns:
            idx = idx[-window.last_turns :]
        if idx and window.first_s is not None:
            lo_t = min(self.utterance(i).start for i in idx)
            hi = lo_t + window.first_s
            idx = [i for i in idx if self.utterance(i).start < hi]
        if idx and window.last_s is not None:
            hi_t = max(self.utterance(i).end for i in idx)
            lo = hi_t - window.last_s
            idx = [i for i in idx if self.utterance(i).end > lo]
        return idx, (lo, hi)

    def find(self, element: Phrase, indices: list[int], search: PhraseSearch, span: tuple[float, float] = (float("-inf"), float("inf"))) -> list[Hit]:
        """All hits of one phrase element (any of its alternatives) in the given utterances."""
        if element.any is None and element.regex is None and not self.docs.find(element.text or "", search.similarity, search.pinyin):
            return []  # most searches of a call: one phrase, said nowhere in it (an answer kept per call)
        hits: list[Hit] = []
        alternatives = element.any if element.any is not None else [element]
        for alt in alternatives:
            if alt.any is not None:
                hits.extend(self.find(alt, indices, search, span))
                continue
            if alt.regex is not None:
                found = [(i, self._regex_found(alt.regex, i)) for i in indices]
            else:  # the whole call is searched once per phrase; keep the utterances asked for
                by_doc = self.docs.find(alt.text or "", search.similarity, search.pinyin)
                if not by_doc:
                    continue
                found = [(i, by_doc[i]) for i in indices if i in by_doc]
            for i, matches in found:
                doc, speaker = self.doc(i), self.utterance(i).speaker
                for m in matches:
                    start, end = doc.time_of(m.char_start, m.char_end)
                    if start < span[0] - 0.5 or start > span[1]:
                        continue
                    hits.append(Hit(i, element.label, start, end, speaker, m.text, m.score))
        if not hits:
            return hits
        # a total order (best match first among hits at the same time): a set's order changes with
        # the process's hash seed, and evidence must not change between two runs of the same call
        return sorted(set(hits), key=lambda h: (h.start, h.utterance, -h.score, -h.end, h.text, h.element, h.speaker))

    def _regex_found(self, regex: str, i: int) -> list:
        """A regex phrase's matches in utterance ``i``, found once per call."""
        key = (regex, i)
        if key not in self._regex_matches:
            self._regex_matches[key] = find_regex(self.doc(i), compile_regex(regex))
        return self._regex_matches[key]


def detect_situation(ctx: CallContext, spec: "Situation") -> list[Occurrence]:
    """Run every detector of a situation; union of their occurrences in time order, merged when
    closer than ``merge_within_s`` (a transfer phrase and the new voice 6 s later are one transfer)."""
    from .operators import TRIGGERS  # late: the operators import this module

    found: list[Occurrence] = []
    for detector in spec.detect:
        found.extend(TRIGGERS[detector.operator].fn(ctx, detector.speaker, detector.parsed_params))
    found.sort(key=lambda o: (o.start, o.end))
    if spec.merge_within_s <= 0 or not found:
        return found
    merged = [found[0]]
    for occ in found[1:]:
        last = merged[-1]
        if occ.start - last.end <= spec.merge_within_s:
            merged[-1] = Occurrence(
                last.start, max(last.end, occ.end), last.speaker, " / ".join(t for t in (last.text, occ.text) if t) or None,
                f"{last.what}; {occ.what}", last.value or occ.value,
            )
        else:
            merged.append(occ)
    return merged
