"""Building blocks shared by operator parameters: phrases, match counts, windows.

They are pydantic models with ``extra="forbid"`` so a misspelt key in a rulebook is an error with
a line number, not a silently ignored setting.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Literal, Union

from pydantic import BaseModel, ConfigDict, Field, model_validator

Scope = Literal["agent", "customer", "receiver", "any"]
"""Whose words a rule judges: ``agent`` covers every agent (the one who answered and a transfer's
receiver); ``receiver`` only the agent who took a transfer."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Phrase(Strict):
    """One element to look for.  Written in YAML as a plain string (matched by sound), as
    ``{regex: ...}``, or as ``{any: [..alternatives..], name: ...}`` — an element met by any of
    its alternatives, which is what N-of counting counts (“greeting word”, “hotline name”...)."""

    text: str | None = None
    regex: str | None = None
    any: list["Phrase"] | None = None
    name: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_string(cls, value: object) -> object:
        return {"text": value} if isinstance(value, str) else value

    @model_validator(mode="after")
    def _one_kind(self) -> "Phrase":
        kinds = [k for k in ("text", "regex", "any") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a phrase is a string, {regex: ...} or {any: [...]} (exactly one of them)")
        if self.regex is not None:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"bad regex {self.regex!r}: {exc}") from None
        if self.any is not None and not self.any:
            raise ValueError("'any' needs at least one alternative")
        if self.text is not None and not self.text.strip():
            raise ValueError("empty phrase")
        return self

    @property
    def label(self) -> str:
        if self.name:
            return self.name
        if self.text is not None:
            return self.text
        if self.regex is not None:
            return f"/{self.regex}/"
        return "|".join(p.label for p in self.any or [])


class AtLeast(Strict):
    at_least: int = Field(ge=1)


MatchMode = Union[Literal["any", "all"], AtLeast]


class Window(Strict):
    """Where in the role's speech to look.  Seconds count from the role's first word (``first_s``)
    or back from its last word (``last_s``); turns are the role's own utterances.  ``skip_first_turns``
    / ``skip_last_turns`` cut the scripted opening and closing away to judge the body of the call."""

    first_s: float | None = Field(default=None, gt=0)
    last_s: float | None = Field(default=None, gt=0)
    first_turns: int | None = Field(default=None, ge=1)
    last_turns: int | None = Field(default=None, ge=1)
    skip_first_turns: int = Field(default=0, ge=0)
    skip_last_turns: int = Field(default=0, ge=0)


class PhraseSearch(Strict):
    """Common knobs of every phrase-based operator."""

    phrases: list[Phrase] = Field(min_length=1)
    similarity: float = Field(default=0.85, gt=0, le=1)
    pinyin: bool = True
    """Match by sound (pinyin / fuzzy words).  Off: exact characters only."""


@lru_cache(maxsize=1024)
def compile_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)
