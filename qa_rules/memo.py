"""What an earlier scoring of the same call found, rule by rule, so that a rulebook edit re-runs
only the rules it changed.

A rule's outcome is a pure function of the rule, the rulebook's situations (a situational rule
judges their occurrences; ``conversation: true`` asks whether a no-conversation situation
occurred), the call's conversation and measures, and this package's code.  So each rule and each
situation gets a *fingerprint* — a hash of its definition, of the situations it may consult, and of
the code that judges it (:func:`engine_code_hash`: the sources of ``qa_rules`` and the versions of
the matching libraries) — and :class:`KnownOutcomes` holds, for one call's content, the outcome
found under each fingerprint.  A changed pass mark or section weight changes no fingerprint: every
outcome is reused and only the totals are counted again.  An edited rule, or a new one, has a new
fingerprint and is judged afresh; an edited situation re-judges every rule (any may depend on it).

Stored as plain JSON (never pickle: the file sits in an output folder), and read with suspicion:
anything that is not exactly the expected shape makes the whole record unknown, and the call is
scored from scratch.
"""

from __future__ import annotations

import hashlib
import json
import sys
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from .context import Occurrence, Outcome
from .records import EvidenceItem

if TYPE_CHECKING:
    from .rulebook import Rulebook

MEMO_FORMAT = 1
_VERDICTS = frozenset({"pass", "fail", "na"})


@lru_cache(maxsize=1)
def engine_code_hash() -> str:
    """The rule engine's identity: every source file of this package, and the versions of what
    matches phrases (pinyin, fuzzy ratios, numpy) and of Python's Unicode tables.  Changing any of
    them changes every fingerprint, so no outcome outlives the code that found it."""
    import unicodedata
    from importlib.metadata import version as installed

    import rapidfuzz

    digest = hashlib.sha256()
    root = Path(__file__).parent
    for path in sorted(root.rglob("*.py")):
        digest.update(str(path.relative_to(root)).encode())
        digest.update(path.read_bytes())
    for version in (sys.version_info[:2], unicodedata.unidata_version, installed("pypinyin"),
                    rapidfuzz.__version__, installed("numpy")):
        digest.update(repr(version).encode())
    return digest.hexdigest()


class Fingerprints:
    """The fingerprint of each rule (by its place in the rulebook) and of each situation (by id)."""

    def __init__(self, rulebook: "Rulebook") -> None:
        code = engine_code_hash()
        situations = [s.model_dump_json() for s in rulebook.situations]
        every_situation = _hash(code, *situations)
        self.situations = {s.id: _hash(code, text) for s, text in zip(rulebook.situations, situations)}
        self.rules = [_hash(every_situation, rule.model_dump_json()) for _, rule in rulebook.rules]


def content_key(conversation_json: str, measures_json: str) -> str:
    """The key of one call's content for :class:`KnownOutcomes`: its conversation and measures
    exactly as written (or read), so that any change to either makes every outcome unknown."""
    return _hash("call", conversation_json, measures_json)


def _hash(*parts: str) -> str:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()[:32]


class KnownOutcomes:
    """One call's outcomes by fingerprint: those read from an earlier scoring, and those the
    current scoring found or reused (:meth:`to_json` keeps only these)."""

    def __init__(self, rules: dict[str, Outcome] | None = None,
                 situations: dict[str, list[Occurrence]] | None = None) -> None:
        self._known_rules = rules or {}
        self._known_situations = situations or {}
        self._rules: dict[str, Outcome] = {}
        self._situations: dict[str, list[Occurrence]] = {}
        self.found = 0
        """Outcomes and situations judged afresh by this scoring."""

    def rule(self, fingerprint: str, judge: Callable[[], Outcome]) -> Outcome:
        """The outcome known under ``fingerprint``, or ``judge()``'s, kept."""
        return self._recall(self._known_rules, self._rules, fingerprint, judge)

    def situation(self, fingerprint: str, detect: Callable[[], list[Occurrence]]) -> list[Occurrence]:
        """The occurrences known under ``fingerprint``, or ``detect()``'s, kept."""
        return self._recall(self._known_situations, self._situations, fingerprint, detect)

    def _recall(self, known: dict, used: dict, fingerprint: str, find: Callable):
        value = known.get(fingerprint)
        if value is None:
            value = find()
            self.found += 1
        used[fingerprint] = value
        return value

    @property
    def changed(self) -> bool:
        """Whether the stored record should be written again: something was judged afresh, or
        something stored was not asked for (a rule removed or edited)."""
        return bool(self.found) or self._rules.keys() != self._known_rules.keys() \
            or self._situations.keys() != self._known_situations.keys()

    def to_json(self) -> str:
        return json.dumps({
            "format": MEMO_FORMAT,
            "rules": {fp: [o.verdict, o.note, [_evidence_row(e) for e in o.evidence]] for fp, o in self._rules.items()},
            "situations": {fp: [[o.start, o.end, o.speaker, o.text, o.what, o.value] for o in occ]
                           for fp, occ in self._situations.items()},
        }, ensure_ascii=False, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> "KnownOutcomes":
        """The record written by :meth:`to_json`; ``ValueError`` for anything else."""
        try:
            data = json.loads(text)
            if not isinstance(data, dict) or data.get("format") != MEMO_FORMAT:
                raise ValueError("not an outcome record of this format")
            rules = {_text(fp): _outcome(value) for fp, value in _mapping(data["rules"]).items()}
            situations = {_text(fp): [_occurrence(row) for row in _rows(value)]
                          for fp, value in _mapping(data["situations"]).items()}
        except (KeyError, TypeError, IndexError, RecursionError) as exc:
            raise ValueError(f"damaged outcome record ({type(exc).__name__})") from exc
        return cls(rules, situations)


def _evidence_row(item: EvidenceItem) -> list:
    return [item.start, item.end, item.speaker, item.text, item.measured, item.expected]


def _mapping(value) -> dict:
    if not isinstance(value, dict):
        raise TypeError("expected an object")
    return value


def _rows(value) -> list:
    if not isinstance(value, list):
        raise TypeError("expected a list")
    return value


def _text(value, optional: bool = False) -> str | None:
    if isinstance(value, str) or (optional and value is None):
        return value
    raise TypeError("expected text")


def _number(value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError("expected a number")
    return float(value)


def _outcome(value) -> Outcome:
    verdict, note, evidence = _rows(value)
    if verdict not in _VERDICTS:
        raise TypeError("unknown verdict")
    items = []
    for row in _rows(evidence):
        start, end, speaker, text, measured, expected = _rows(row)
        if measured is not None and not isinstance(measured, str):
            measured = _number(measured)
        items.append(EvidenceItem(_number(start), _number(end), _text(speaker, True), _text(text, True), measured,
                                  _text(expected, True)))
    return Outcome(verdict, items, _text(note, True))


def _occurrence(row) -> Occurrence:
    start, end, speaker, text, what, value = _rows(row)
    return Occurrence(_number(start), _number(end), _text(speaker, True), _text(text, True), _text(what),
                      _text(value, True))
