"""Rulebook schema and loader.

A rulebook is YAML a QA supervisor edits, so every mistake must come back as one readable line:
``zh_default.yaml, line 42: rule 'greeting.standard': unknown operator 'phrse' (known: ...)``.
The YAML is loaded with a SafeLoader that remembers the line of every mapping and key; pydantic
error locations are walked back through that tree to the nearest line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError

from .operators import OPERATORS, TRIGGERS
from .spec import Phrase, Scope

CATEGORIES: tuple[str, ...] = (
    "greeting",
    "closing",
    "hold",
    "transfer",
    "courtesy",
    "forbidden_language",
    "volume",
    "tone",
    "speech_rate",
    "interruption",
    "silence",
    "empathy",
    "compliance",
    # the seeds' situational scripts: na on a call where the situation did not occur
    "silent_caller",
    "cant_hear",
    "unresolved",
    "dictation",
    "wrong_number",
    "communication",
)
Category = Literal[
    "greeting", "closing", "hold", "transfer", "courtesy", "forbidden_language", "volume", "tone",
    "speech_rate", "interruption", "silence", "empathy", "compliance",
    "silent_caller", "cant_hear", "unresolved", "dictation", "wrong_number", "communication",
]

_PACKAGE = Path(__file__).resolve().parent


class RulebookError(ValueError):
    """A rulebook that cannot be used; the message names the file, the line and the problem."""

    def __init__(self, path: Path | str, line: int | None, message: str) -> None:
        self.path = str(path)
        self.line = line
        self.problem = message
        where = f"{self.path}, line {line}" if line else self.path
        super().__init__(f"{where}: {message}")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Title(_Model):
    zh: str
    en: str


class Condition(_Model):
    """When a rule applies; otherwise its verdict is ``na`` (all given fields must hold)."""

    min_duration_s: float | None = None
    max_duration_s: float | None = None
    speaker_mode: Literal["channels", "diarization"] | None = None
    has_roles: list[Literal["agent", "customer"]] | None = None
    said: list[Phrase] | None = None
    """Any of these phrases said by ``said_by`` (e.g. the customer says 谢谢)."""
    said_by: Scope = "any"
    conversation: bool | None = None
    """``true``: only on a call that became a conversation — na when a situation marked
    ``no_conversation`` occurred (a silent caller, a wrong number: no service part to close)."""


class Detector(_Model):
    """One way to detect a situation: a trigger operator, whose speech it watches, its params."""

    operator: str
    speaker: Scope = "any"
    params: dict[str, Any] = Field(default_factory=dict)

    _parsed: BaseModel | None = PrivateAttr(default=None)

    @property
    def parsed_params(self) -> BaseModel:
        private = self.__pydantic_private__  # read directly: ``self._parsed`` goes through __getattr__
        if private["_parsed"] is None:
            private["_parsed"] = TRIGGERS[self.operator].params.model_validate(self.params)
        return private["_parsed"]


class Situation(_Model):
    """Something that happens on some calls and calls for a script (无声电话, 转接, 打错电话…).
    Rules name it with ``situation:``; on a call where no detector fires, they are ``na``."""

    id: str = Field(min_length=1)
    title: Title
    detect: list[Detector] = Field(min_length=1)
    """Any detector firing makes the situation occur (their occurrences are pooled)."""
    merge_within_s: float = Field(default=0.0, ge=0)
    """Occurrences closer than this are one (a transfer phrase and the receiver's voice after it)."""
    no_conversation: bool = False
    """The call then has no service part: rules with ``applies_when: {conversation: true}`` are na."""


class Rule(_Model):
    id: str = Field(min_length=1)
    title: Title
    category: Category
    speaker: Scope = "agent"
    operator: str
    params: dict[str, Any] = Field(default_factory=dict)
    points: float = Field(default=1.0, ge=0)
    fatal: bool = False
    applies_when: Condition | None = None
    situation: str | None = None
    """The situation the rule judges: na on calls where it did not occur; the operator sees its
    occurrences (what must happen before / after each, with timings)."""
    source: str = Field(min_length=1)
    """The seed clause the rule comes from (``003 › … › 第十三条 1``) or a note on where it comes from."""

    _parsed: BaseModel | None = PrivateAttr(default=None)

    @property
    def parsed_params(self) -> BaseModel:
        private = self.__pydantic_private__  # read directly: ``self._parsed`` goes through __getattr__
        if private["_parsed"] is None:
            private["_parsed"] = OPERATORS[self.operator].params.model_validate(self.params)
        return private["_parsed"]


class Section(_Model):
    id: str
    title: Title | None = None
    weight: float = Field(default=1.0, ge=0)
    rules: list[Rule] = Field(min_length=1)


class Rulebook(_Model):
    id: str
    version: str
    language: str
    description: str | None = None
    pass_mark: float = Field(default=80.0, ge=0, le=100)
    """Percent of the applicable maximum a call needs to pass."""
    low_confidence: float = Field(default=0.6, ge=0, le=1)
    """Mean word probability below which the call is flagged (the transcript may be wrong)."""
    min_role_confidence: float = Field(default=0.75, ge=0, le=1)
    """A speaker whose role was decided from content with less confidence than this flags the call
    ``roles uncertain``: every agent-scoped verdict stands on knowing which voice is the agent."""
    complaint_words: list[str] = Field(default_factory=lambda: ["投诉", "complaint", "supervisor", "经理"])
    situations: list[Situation] = Field(default_factory=list)
    """Situations the call is checked for (triggers); rules refer to them by id."""
    sections: list[Section] = Field(min_length=1)

    _search_keys: set = PrivateAttr(default_factory=set)
    _fingerprints: Any = PrivateAttr(default=None)

    @property
    def search_keys(self) -> set:
        """The phrase searches the calls scored with this rulebook have asked for (phrase,
        similarity, pinyin…), grown as calls are scored: each call's utterances are then searched
        for all of them in one batch (:class:`qa_rules.matching.DocSet`)."""
        return self._search_keys

    @property
    def fingerprints(self) -> "Fingerprints":
        """Each rule's and situation's fingerprint (:mod:`qa_rules.memo`), computed once."""
        if self._fingerprints is None:
            from .memo import Fingerprints

            self._fingerprints = Fingerprints(self)
        return self._fingerprints

    @property
    def rules(self) -> list[tuple[Section, Rule]]:
        return [(s, r) for s in self.sections for r in s.rules]

    @property
    def hold_min_wait_s(self) -> float:
        """What this rulebook calls a hold: the shortest ``min_wait_s`` of its ``hold`` rules (a
        wait any of them judges is a hold), the seeds' 10 s when it has none.  The scorecard's
        ``hold_s`` — and so the store's and the reports' hold time — is counted with it."""
        from .records import HOLD_MIN_WAIT_S

        waits = [r.parsed_params.min_wait_s for _, r in self.rules if r.operator == "hold"]
        return min(waits, default=HOLD_MIN_WAIT_S)


# ----------------------------------------------------------------------------- YAML with lines
class _Node(dict):
    """A mapping that remembers where it and each of its keys stand in the file."""

    line: int = 0
    key_lines: dict[str, int]


class _LineLoader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _LineLoader, node: yaml.MappingNode) -> _Node:
    loader.flatten_mapping(node)
    out = _Node()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in out:
            raise RulebookError("", key_node.start_mark.line + 1, f"duplicate key {key!r}")
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


_LineLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _line_at(data: Any, loc: tuple[Any, ...]) -> int | None:
    """The line of the deepest mapping or key the error location reaches."""
    line = getattr(data, "line", None)
    node = data
    for part in loc:
        if isinstance(node, _Node):
            if part in node:
                line = node.key_lines.get(part, line)
                node = node[part]
                line = getattr(node, "line", line)
                continue
            break
        if isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            line = getattr(node, "line", line)
            continue
        # pydantic adds non-data parts to loc (union member names, 'function-after[...]'): skip them
        continue
    return line


def _rule_label(data: Any, loc: tuple[Any, ...]) -> str:
    try:
        if loc[0] == "sections" and loc[2] == "rules":
            rid = data["sections"][loc[1]]["rules"][loc[3]].get("id")
            return f"rule {rid!r}: " if rid else f"sections[{loc[1]}].rules[{loc[3]}]: "
        if loc[0] == "situations":
            sid = data["situations"][loc[1]].get("id")
            return f"situation {sid!r}: " if sid else f"situations[{loc[1]}]: "
    except (IndexError, KeyError, TypeError, AttributeError):
        pass
    return ""


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(p) for p in loc if isinstance(p, (str, int)) and not str(p).startswith(("function-", "literal[", "union[")))


def _raise_validation(path: Path, data: Any, err: ValidationError, prefix: tuple[Any, ...] = ()) -> None:
    first = err.errors()[0]
    loc = prefix + tuple(first["loc"])
    msg = first["msg"]
    if first["type"] == "missing":
        msg = f"missing field {loc[-1]!r}"
        line = _line_at(data, loc[:-1])
    elif first["type"] == "extra_forbidden":
        msg = f"unknown field {loc[-1]!r}"
        line = _line_at(data, loc)
    else:
        line = _line_at(data, loc)
        if first["type"] in ("literal_error", "enum") and loc and loc[-1] == "category":
            msg = f"unknown category {first.get('input')!r} (known: {', '.join(CATEGORIES)})"
        else:
            msg = f"{_field_path(loc) or 'rulebook'}: {msg.removeprefix('Value error, ')}"
    more = f" (and {len(err.errors()) - 1} more problem(s))" if len(err.errors()) > 1 else ""
    raise RulebookError(path, line, _rule_label(data, loc) + msg + more) from None


MAX_RULEBOOK_BYTES = 1_000_000
"""A rulebook is a few hundred rules (the defaults are ~13 kB); a bigger file is refused unread."""
MAX_YAML_NODES = 100_000
"""Nodes after expanding aliases: an alias bomb (a few hundred bytes that expand to billions of
nodes) is refused before anything is built from it."""
MAX_YAML_ALIASES = 1_000
MAX_FLOW_NESTING = 200
"""``[``/``{`` open at once, counted on the raw text (a bracket in a quoted phrase counts too, so
the bar is far above any rulebook's: the defaults nest 8 deep).  The pure-Python YAML scanner's
work grows with the square of this depth — 50 000 nested ``[`` in a 100 kB file kept it busy for
97 s before its refusal — so a deeper file is refused before it is scanned."""

_FLOW_BRACKET = re.compile(r"[\[\]{}]")


def _flow_nesting(text: str) -> int:
    """The deepest run of open ``[``/``{`` in ``text`` (see :data:`MAX_FLOW_NESTING`)."""
    depth = deepest = 0
    for bracket in _FLOW_BRACKET.findall(text):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def _check_size(path: Path, text: str) -> None:
    """Refuse oversized files and YAML whose anchors/aliases expand past :data:`MAX_YAML_NODES`,
    from the composed node graph (shared, not expanded), before any object is constructed."""
    aliases = 0
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_YAML_ALIASES:
                    raise RulebookError(path, event.start_mark.line + 1,
                                        f"more than {MAX_YAML_ALIASES} YAML aliases (*name) — refused as a YAML bomb")
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return  # the loader below reports syntax errors with their line
    if root is None:
        return
    if _expanded_nodes(root) > MAX_YAML_NODES:
        raise RulebookError(path, None, f"the YAML expands to more than {MAX_YAML_NODES:,} values through its "
                                        "anchors and aliases — refused as a YAML bomb; write the lists out instead")


def _expanded_nodes(root: yaml.Node) -> int:
    """How many nodes the graph stands for once its aliases are expanded (capped just above
    :data:`MAX_YAML_NODES`), counted on the shared graph."""
    sizes: dict[int, int] = {}

    def expanded(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        sizes[key] = MAX_YAML_NODES + 1  # a node reached again while being counted: a cycle
        if isinstance(node, yaml.MappingNode):
            total = 1 + sum(expanded(k) + expanded(v) for k, v in node.value)
        elif isinstance(node, yaml.SequenceNode):
            total = 1 + sum(expanded(v) for v in node.value)
        else:
            total = 1
        sizes[key] = min(total, MAX_YAML_NODES + 1)
        return sizes[key]

    return expanded(root)


_FAST_MAX_DEPTH = 64
"""Nesting the libyaml path takes (the default rulebooks nest 8 deep); deeper files go the
pure-Python way, whose recursion limit refuses a nesting bomb cleanly."""


class _LineCLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    pass


_LineCLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _load_fast(text: str) -> Any:
    """The rulebook's data through libyaml (C), about ten times faster than the pure-Python parser:
    re-scoring starts by loading the rulebook in every worker.  Only for a plain, valid rulebook —
    shallow, few aliases, small once expanded, no syntax error, a mapping; anything else returns
    ``None`` and goes the pure-Python way, which refuses or words it exactly as before.  The same
    constructor builds the same data with the same lines."""
    if not getattr(yaml, "__with_libyaml__", False):
        return None
    try:
        depth = aliases = 0
        for event in yaml.parse(text, Loader=yaml.CSafeLoader):  # libyaml's parser does not recurse
            if isinstance(event, yaml.CollectionStartEvent):
                depth += 1
                if depth > _FAST_MAX_DEPTH:
                    return None
            elif isinstance(event, yaml.CollectionEndEvent):
                depth -= 1
            elif isinstance(event, yaml.AliasEvent):
                aliases += 1
                if aliases > MAX_YAML_ALIASES:
                    return None
        loader = _LineCLoader(text)
        try:
            root = loader.get_single_node()
            if root is None or _expanded_nodes(root) > MAX_YAML_NODES:
                return None
            data = loader.construct_document(root)
        finally:
            loader.dispose()
    except (yaml.YAMLError, RulebookError, RecursionError):
        return None
    return data if isinstance(data, dict) else None


def _load_checked(path: Path, text: str) -> Any:
    """The rulebook's data through the pure-Python parser, nesting, size and expansion checked first."""
    if _flow_nesting(text) > MAX_FLOW_NESTING:
        raise RulebookError(path, None, "the YAML is nested too deeply to be a rulebook — refused")
    try:
        _check_size(path, text)
    except RecursionError:
        raise RulebookError(path, None, "the YAML is nested too deeply to be a rulebook — refused") from None
    try:
        return yaml.load(text, Loader=_LineLoader)  # noqa: S506 - SafeLoader subclass
    except RulebookError as exc:
        raise RulebookError(path, exc.line, exc.problem) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        problem = getattr(exc, "problem", None) or str(exc)
        raise RulebookError(path, mark.line + 1 if mark else None, f"YAML syntax error: {problem}") from None


def load_rulebook(path: Path | str) -> Rulebook:
    """Read and validate a rulebook; any problem raises `RulebookError` (file, line, what).

    Size and YAML expansion are checked first, so a hostile or mistaken file (a 24 MB file, an
    alias bomb) is refused in milliseconds instead of exhausting memory."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_RULEBOOK_BYTES:
            raise RulebookError(path, None, f"the file is {size / 1e6:.1f} MB; a rulebook may be at most "
                                            f"{MAX_RULEBOOK_BYTES / 1e6:g} MB — is this the right file?")
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise RulebookError(path, None, f"cannot read the rulebook ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise RulebookError(path, None, "the rulebook is not UTF-8 text") from None
    data = _load_fast(text)
    if data is None:
        data = _load_checked(path, text)
    if not isinstance(data, dict):
        raise RulebookError(path, 1, "a rulebook is a mapping with id, version, language and sections")
    try:
        book = Rulebook.model_validate(data)
    except ValidationError as err:
        _raise_validation(path, data, err)
    situation_ids: set[str] = set()
    for xi, situation in enumerate(book.situations):
        loc = ("situations", xi)
        if situation.id in situation_ids:
            raise RulebookError(path, _line_at(data, loc + ("id",)), f"duplicate situation id {situation.id!r}")
        situation_ids.add(situation.id)
        for di, detector in enumerate(situation.detect):
            dloc = loc + ("detect", di)
            if detector.operator not in TRIGGERS:
                raise RulebookError(
                    path, _line_at(data, dloc + ("operator",)),
                    f"situation {situation.id!r}: unknown trigger {detector.operator!r} (known: {', '.join(sorted(TRIGGERS))})",
                )
            try:
                detector.parsed_params  # noqa: B018 - validate now
            except ValidationError as err:
                _raise_validation(path, data, err, dloc + ("params",))
    seen: dict[str, int] = {}
    for si, section in enumerate(book.sections):
        for ri, rule in enumerate(section.rules):
            loc = ("sections", si, "rules", ri)
            if rule.id in seen:
                raise RulebookError(path, _line_at(data, loc + ("id",)), f"duplicate rule id {rule.id!r}")
            seen[rule.id] = ri
            if rule.situation is not None and rule.situation not in situation_ids:
                known = ", ".join(sorted(situation_ids)) or "none defined: add a `situations:` list"
                raise RulebookError(path, _line_at(data, loc + ("situation",)),
                                    f"rule {rule.id!r}: unknown situation {rule.situation!r} (known: {known})")
            if rule.operator not in OPERATORS:
                raise RulebookError(
                    path, _line_at(data, loc + ("operator",)),
                    f"rule {rule.id!r}: unknown operator {rule.operator!r} (known: {', '.join(sorted(OPERATORS))})",
                )
            try:
                rule.parsed_params  # noqa: B018 - validate now, not at scoring time
            except ValidationError as err:
                _raise_validation(path, data, err, loc + ("params",))
    if not any(section.weight > 0 and rule.points > 0 for section, rule in book.rules):
        raise RulebookError(
            path, _line_at(data, ("sections",)),
            "every section weight (or every rule's points) is 0: no call could earn or lose a point, so every "
            "call would pass — give at least one section a weight above 0",
        )
    return book


DEFAULT_RULEBOOKS = {"zh": "zh_default.yaml", "en": "en_default.yaml"}
"""The packaged rulebooks by the language group whose calls they score (see :func:`default_rulebook_path`)."""


def default_rulebook_path(language: str) -> Path:
    """Chinese (Mandarin, Cantonese) calls → zh_default.yaml; everything else → en_default.yaml."""
    lang = (language or "").lower().split("-")[0].split("_")[0]
    return _PACKAGE / DEFAULT_RULEBOOKS["zh" if lang in ("zh", "yue", "cmn", "chinese") else "en"]


def default_rulebook_paths() -> list[Path]:
    """Every packaged default rulebook: what a run without a named rulebook may score with."""
    return [_PACKAGE / name for name in DEFAULT_RULEBOOKS.values()]
