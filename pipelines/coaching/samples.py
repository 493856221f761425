"""The coaching library: best and worst example calls for a rule, a category or the whole call,
exported as audio clips cut around the evidence, the scorecard excerpt (JSON) and an index page a
trainer can open in any browser.

``find_samples`` only chooses (notebooks use it to look before exporting); ``export_samples`` also
cuts the clips; ``export_monthly`` does it per month and per agent — the supervisor's monthly pick
of excellent and failing recordings for each agent's review (每月挑选优秀录音以及不合格的录音).
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd

from pipelines.coaching.clips import CONTEXT_S, cut_clip
from pipelines.coaching.data import load_calls, load_category_results, load_rule_results
from pipelines.coaching.html import render
from pipelines.results.period import Period
from pipelines.coaching.selection import Selection, call_verdicts, focus_evidence, pick
from qa_rules.records import CallError
from pipelines.results.store import Store

log = logging.getLogger(__name__)

NO_AGENT = "unknown-agent"
"""Folder name for calls the telephony system gave no agent id."""


@dataclass
class Sample:
    """One example call: who, when, how it scored, what it illustrates, and where its clip is."""

    kind: str
    """``best`` or ``worst``."""
    rank: int
    call_id: str
    agent_id: str | None
    team: str | None
    started_at: str | None
    date: str | None
    score: float | None
    max_score: float | None
    percent: float | None
    passed: bool | None
    verdict: str
    """The call's verdict on the selection (``pass``/``fail``)."""
    source: str
    rules: list[dict]
    """Scorecard excerpt: the selection's rule results with their evidence."""
    focus: dict | None
    """The evidence the clip is cut around (``None``: the call's opening)."""
    clip: str | None = None
    """Clip path relative to the export folder."""
    clip_start: float | None = None
    clip_end: float | None = None
    clip_error: str | None = None
    scorecard_html: str | None = None
    conversation_path: str | None = None
    language: str | None = None
    redacted: bool = False
    """Personal numbers beeped out of the clip and replaced in the texts (the default)."""

    @property
    def quotes(self) -> list[dict]:
        """Evidence quotes of the excerpt, each with its rule and times, for the index page."""
        return [
            {"rule_id": r["rule_id"], "verdict": r["verdict"], **e}
            for r in self.rules for e in r["evidence"] if e.get("text")
        ]


@dataclass
class SampleExport:
    """What an export wrote: the folder, its index page and the samples."""

    out_dir: Path
    index: Path
    selection: str
    samples: list[Sample] = field(default_factory=list)

    @property
    def best(self) -> list[Sample]:
        return [s for s in self.samples if s.kind == "best"]

    @property
    def worst(self) -> list[Sample]:
        return [s for s in self.samples if s.kind == "worst"]


def find_samples(store: Store, rule: str | None = None, category: str | None = None, agent: str | None = None,
                 period: Period | None = None, best: int = 5, worst: int = 5, team: str | None = None) -> list[Sample]:
    """Choose the best and worst calls (no audio touched); best first, then worst."""
    selection = Selection(rule=rule, category=category)
    calls = load_calls(store, period=period, agent=agent, team=team)
    results = load_rule_results(store, list(calls["call_id"]))
    if rule:
        selection.check_known(load_rule_results(store) if results.empty else results)
    return _choose(calls, results, load_category_results(store, list(calls["call_id"])), selection, best, worst)


def _choose(calls: pd.DataFrame, results: pd.DataFrame, categories: pd.DataFrame, selection: Selection, best: int,
            worst: int) -> list[Sample]:
    if calls.empty:
        return []
    verdicts = call_verdicts(calls, results, selection, categories)
    chosen_best, chosen_worst = pick(verdicts, best, worst)
    relevant = selection.relevant(results)
    samples = []
    for kind, chosen in (("best", chosen_best), ("worst", chosen_worst)):
        for rank, row in enumerate(chosen.to_dict("records"), start=1):
            rule_rows = relevant[relevant["call_id"] == row["call_id"]]
            excerpt = rule_rows if (selection.rule or selection.category) else rule_rows[rule_rows["verdict"] == "fail"]
            samples.append(Sample(
                kind=kind, rank=rank, call_id=row["call_id"], agent_id=row.get("agent_id"), team=row.get("team"),
                started_at=row.get("started_at"), date=row.get("date"), score=_float(row.get("score")),
                max_score=_float(row.get("max_score")), percent=_float(row.get("percent")),
                passed=None if pd.isna(row.get("passed")) else bool(row.get("passed")), verdict=row["verdict"],
                source=row["source"], rules=[_rule_excerpt(r) for r in excerpt.to_dict("records")],
                focus=focus_evidence(rule_rows, kind), scorecard_html=_scorecard_html(row.get("scorecard_path")),
                conversation_path=row.get("conversation_path"), language=row.get("language"),
            ))
    return samples


def export_samples(store: Store, out_dir: Path, rule: str | None = None, category: str | None = None,
                   agent: str | None = None, period: Period | None = None, best: int = 5, worst: int = 5,
                   context_s: float = CONTEXT_S, team: str | None = None, title: str | None = None,
                   redact: bool = True) -> SampleExport:
    """Choose the examples and write ``clips/``, ``excerpts/``, ``samples.json`` and ``index.html``;
    with ``redact`` (the default: clips are handed to trainees) personal numbers are beeped out of
    the clips and replaced in the texts."""
    samples = find_samples(store, rule=rule, category=category, agent=agent, period=period, best=best, worst=worst, team=team)
    selection = Selection(rule=rule, category=category).label
    heading = title or " · ".join(x for x in (selection, f"agent {agent}" if agent else "", period.label if period else "") if x)
    return _write_export(samples, Path(out_dir), selection, heading, context_s, redact)


def export_monthly(store: Store, out_dir: Path, best: int = 3, worst: int = 3, period: Period | None = None,
                   agent: str | None = None, rule: str | None = None, category: str | None = None,
                   context_s: float = CONTEXT_S, redact: bool = True) -> list[SampleExport]:
    """Per month and per agent, the best and worst calls into ``OUT/<month>/<agent>/``, with an
    ``OUT/index.html`` listing every month and agent."""
    out_dir = Path(out_dir)
    selection = Selection(rule=rule, category=category)
    calls = load_calls(store, period=period, agent=agent)
    results = load_rule_results(store, list(calls["call_id"]))
    categories = load_category_results(store, list(calls["call_id"]))
    if rule and not calls.empty:
        selection.check_known(results)
    exports = []
    calls = calls[calls["month"].notna()]
    for (month, agent_id), group in calls.groupby([calls["month"], calls["agent_id"].fillna(NO_AGENT)], sort=True):
        samples = _choose(group.reset_index(drop=True), results[results["call_id"].isin(group["call_id"])], categories,
                          selection, best, worst)
        folder = out_dir / month / _safe(agent_id)
        heading = f"{month} · 坐席 agent {agent_id} · {selection.label}"
        exports.append(_write_export(samples, folder, selection.label, heading, context_s, redact))
    rows = [{"month": e.out_dir.parent.name, "agent": e.out_dir.name, "href": os.path.relpath(e.index, out_dir),
             "best": len(e.best), "worst": len(e.worst)} for e in exports]
    render("monthly_index.html.j2", out_dir / "index.html", rows=rows, selection=selection.label)
    (out_dir / "monthly.json").write_text(json.dumps(rows, ensure_ascii=False, indent=2), encoding="utf-8")
    log.info("monthly coaching samples: %d month/agent folders under %s", len(exports), out_dir)
    return exports


def _write_export(samples: list[Sample], out_dir: Path, selection: str, heading: str, context_s: float,
                  redact: bool = True) -> SampleExport:
    out_dir.mkdir(parents=True, exist_ok=True)
    for sample in samples:
        stem = f"{sample.kind}-{sample.rank:02d}_{_safe(sample.call_id)}"
        clip_path = out_dir / "clips" / f"{stem}.wav"
        focus = sample.focus or {}
        beep = _redact_sample(sample) if redact else None
        try:
            window = cut_clip(sample.source, clip_path, focus.get("start"), focus.get("end"), context_s, beep=beep)
        except CallError as exc:
            sample.clip_error = f"{exc.reason} — the recording is referenced as {sample.source}; restore it there to get the clip"
            log.warning("call %s: no clip: %s", sample.call_id, sample.clip_error)
        else:
            sample.clip = clip_path.relative_to(out_dir).as_posix()
            sample.clip_start, sample.clip_end = window.start, window.end
        if sample.scorecard_html:
            sample.scorecard_html = Path(os.path.relpath(sample.scorecard_html, out_dir)).as_posix()
        excerpt_path = out_dir / "excerpts" / f"{stem}.json"
        excerpt_path.parent.mkdir(parents=True, exist_ok=True)
        excerpt_path.write_text(json.dumps(_sample_json(sample), ensure_ascii=False, indent=2), encoding="utf-8")
    document = {"selection": selection, "title": heading, "context_s": context_s, "samples": [_sample_json(s) for s in samples]}
    (out_dir / "samples.json").write_text(json.dumps(document, ensure_ascii=False, indent=2), encoding="utf-8")
    export = SampleExport(out_dir=out_dir, index=out_dir / "index.html", selection=selection, samples=samples)
    render("samples_index.html.j2", export.index, export=export, title=heading, context_s=context_s)
    return export


def _redact_sample(sample: Sample) -> list[tuple[float, float]]:
    """Replace personal numbers in the sample's texts; return where they are spoken in the call."""
    from qa_rules.records import Conversation
    from pipelines.results.redaction import pii_time_spans, redact_json_text

    language = sample.language or "zh"
    sample.rules = redact_json_text(sample.rules, language)
    sample.focus = redact_json_text(sample.focus, language) if sample.focus else sample.focus
    sample.redacted = True
    path = Path(sample.conversation_path) if sample.conversation_path else None
    if path is None or not path.is_file():
        log.warning("call %s: no conversation file to find spoken numbers in; the clip is cut without beeps", sample.call_id)
        return []
    return [(a, b) for a, b, _ in pii_time_spans(Conversation.read(path))]


def _sample_json(sample: Sample) -> dict:
    return {**asdict(sample), "quotes": sample.quotes}


def _rule_excerpt(row: dict) -> dict:
    return {
        "rule_id": row["rule_id"], "title": row["title"], "category": row["category"], "verdict": row["verdict"], "points": row["points"],
        "max_points": row["max_points"], "fatal": bool(row["fatal"]), "evidence": row["evidence"],
    }


def _scorecard_html(scorecard_path: str | None) -> str | None:
    if not scorecard_path:
        return None
    html = Path(scorecard_path).with_suffix(".html")
    return str(html) if html.is_file() else None


def _float(value) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _safe(name: str) -> str:
    """A call or agent id as a file name (ids come from the telephony system, not from us)."""
    return re.sub(r"[^\w.\-]+", "_", str(name)).strip("._") or "_"
