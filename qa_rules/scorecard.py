"""The scorecard: the per-call result of scoring, written as ``<call_id>.scorecard.json``.

Field names are a contract with the store and the review UI; add fields, never rename them."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from pipelines.records import call_file, record_json, write_json_atomically

Verdict = Literal["pass", "fail", "na"]


class EvidenceItem(BaseModel):
    start: float
    end: float
    speaker: str | None = None
    text: str | None = None
    measured: float | str | None = None
    expected: str | None = None


class RuleResult(BaseModel):
    id: str
    title: dict[str, str]
    category: str
    verdict: Verdict
    points: float
    """Points earned (rule points × section weight; 0 on fail or N/A)."""
    max_points: float
    """Points at stake (0 when N/A: an N/A rule leaves the maximum)."""
    fatal: bool = False
    source: str | None = None
    note: str | None = None
    evidence: list[EvidenceItem] = Field(default_factory=list)


class SituationResult(BaseModel):
    """A situation of the rulebook checked on the call: did it occur, and where (evidence)."""

    id: str
    title: dict[str, str]
    occurred: bool
    evidence: list[EvidenceItem] = Field(default_factory=list)


class RulebookRef(BaseModel):
    id: str
    version: str


class Flag(BaseModel):
    reason: str
    rule_id: str | None = None


class Scorecard(BaseModel):
    call_id: str
    rulebook: RulebookRef
    score: float
    max_score: float
    percent: float
    passed: bool
    pass_mark: float = 80.0
    fatal_failures: list[str] = Field(default_factory=list)
    flags: list[Flag] = Field(default_factory=list)
    rules: list[RuleResult] = Field(default_factory=list)
    categories: dict[str, Verdict] = Field(default_factory=dict)
    """Every category the engine knows: ``fail`` if any of its rules failed, ``pass`` if one
    passed, else ``na`` (no rule applied: the situation did not occur, or the rulebook has none)."""
    asr_confidence: float | None = None
    scorable: bool = True
    """``False`` when the call cannot be judged (no agent speech, or no point at stake): then
    ``passed`` is ``False`` and ``not_scorable_reason`` says why — a call is never passed unheard."""
    not_scorable_reason: str | None = None
    situations: list[SituationResult] = Field(default_factory=list)
    """Each situation of the rulebook and whether it occurred (silent caller, transfer…)."""
    measures: dict[str, float | None] = Field(default_factory=dict)
    """Call-level figures a supervisor reads beside the verdicts: response gap median/p90 (s),
    longest dead air (s), agent talk ratio, agent and customer speech levels (dBFS)."""

    def to_json(self) -> str:
        return record_json(self)

    def write(self, out_dir: Path | str) -> Path:
        return write_json_atomically(call_file(out_dir, self.call_id, ".scorecard.json"), self.to_json())

    @classmethod
    def read(cls, path: Path | str) -> "Scorecard":
        return cls.model_validate_json(Path(path).read_text(encoding="utf-8"))
