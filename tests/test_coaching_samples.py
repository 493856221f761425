"""Coaching library: best/worst selection, clips cut at the evidence, period filter, monthly export,
and the `callqa samples` command — on a real store built from the sample calls."""

from __future__ import annotations

import json
import sqlite3

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

from pipelines.stages.audio import SAMPLE_RATE, decode_audio
from pipelines.coaching.clips import clip_window
from pipelines.results.period import PeriodError, parse_period
from pipelines.coaching.samples import export_monthly, export_samples, find_samples
from pipelines.coaching.selection import SelectionError
from store_fixtures import build_store


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """May 2024 calls plus a copy moved to April (ids ``-m1``); read-only for the tests."""
    return build_store(tmp_path_factory.mktemp("coaching"), months=2)


def _db(built) -> sqlite3.Connection:
    return sqlite3.connect(built.out_dir / "callqa.db")


def test_period_parsing():
    may = parse_period("2024-05")
    assert (may.first.isoformat(), may.last.isoformat()) == ("2024-05-01", "2024-05-31")
    assert may.contains("2024-05-31T23:59:00+08:00") and not may.contains("2024-06-01T00:00:01+08:00")
    span = parse_period("2024-04-10..2024-05-02")
    assert span.contains("2024-04-10T00:00:00+08:00") and span.contains("2024-05-02T10:00:00+08:00")
    assert not span.contains("2024-04-09T23:00:00+08:00") and not span.contains(None)
    for bad in ("May", "2024-13", "2024-05-31..2024-05-01"):
        with pytest.raises(PeriodError):
            parse_period(bad)


def test_clip_window_adds_context_and_clamps():
    assert clip_window(10.0, 12.0, 60.0) == clip_window(10.0, 12.0, 60.0, 3.0)
    window = clip_window(10.0, 12.0, 60.0)
    assert (window.start, window.end) == (7.0, 15.0)
    assert (clip_window(1.0, 2.0, 60.0).start, clip_window(57.0, 59.0, 60.0).end) == (0.0, 60.0)
    assert (clip_window(None, None, 45.0).start, clip_window(None, None, 45.0).end) == (0.0, 20.0)
    assert clip_window(None, None, 12.5).end == 12.5


def test_rule_worst_are_the_failing_calls_and_clips_cut_at_evidence(built, tmp_path):
    with _db(built) as db:
        failing = {r[0] for r in db.execute("select call_id from rule_results where rule_id='greeting.standard' and verdict='fail'")}
    assert failing == {"zh_no_greeting", "zh_no_greeting-m1"}
    export = export_samples(built.store, tmp_path, rule="greeting.standard", best=3, worst=5)
    assert {s.call_id for s in export.worst} == failing
    assert all(s.verdict == "pass" for s in export.best) and len(export.best) == 3
    for sample in export.samples:
        assert sample.clip, sample.clip_error
        clip = tmp_path / sample.clip
        info = sf.info(str(clip))
        assert info.samplerate == SAMPLE_RATE
        assert info.frames / SAMPLE_RATE == pytest.approx(sample.clip_end - sample.clip_start, abs=2 / SAMPLE_RATE)
        focus = sample.focus
        assert focus and focus["rule_id"] == "greeting.standard"
        assert sample.clip_start == pytest.approx(max(0.0, focus["start"] - 3.0), abs=1e-3)
        assert sample.clip_end == pytest.approx(focus["end"] + 3.0, abs=1e-3)
        excerpt = json.loads((tmp_path / "excerpts" / (clip.stem + ".json")).read_text(encoding="utf-8"))
        assert (excerpt["clip_start"], excerpt["clip_end"]) == (sample.clip_start, sample.clip_end)
        assert [r["rule_id"] for r in excerpt["rules"]] == ["greeting.standard"]
    # zh_no_greeting: evidence «喂,你说,» 0.43–1.83 s → clip 0.00–4.83 s (clamped at the call's start)
    worst = export.worst[0]
    assert (worst.clip_start, worst.clip_end) == (0.0, pytest.approx(4.83))
    assert worst.rules[0]["evidence"][0]["text"] == "喂,你说,"


def test_clip_holds_the_audio_of_the_evidence_window(built, tmp_path):
    export = export_samples(built.store, tmp_path, category="closing", period=parse_period("2024-05"), best=2, worst=0)
    inner = [s for s in export.best if s.clip_start and s.clip_start > 0]
    assert inner, "expected a closing clip that starts inside the call"
    sample = inner[0]
    clip, _ = sf.read(str(tmp_path / sample.clip), dtype="float32", always_2d=True)
    source = decode_audio(sample.source).samples
    first = int(round(sample.clip_start * SAMPLE_RATE))
    expected = source[:, first:first + clip.shape[0]].T
    assert clip.shape == expected.shape
    assert np.max(np.abs(clip - np.clip(expected, -1, 1))) < 2e-4  # 16-bit quantisation only


def test_clip_end_clamped_to_the_call(built, tmp_path):
    export = export_samples(built.store, tmp_path, rule="closing.anything_else", period=parse_period("2024-05"), best=0, worst=5)
    assert export.worst
    for sample in export.worst:
        with _db(built) as db:
            duration = db.execute("select duration_s from calls where call_id=?", (sample.call_id,)).fetchone()[0]
        assert sample.clip_end <= duration + 0.05
        assert sample.clip_start == pytest.approx(max(0.0, sample.focus["start"] - 3.0), abs=1e-3)


def test_best_and_worst_order(built):
    samples = find_samples(built.store, category="hold", best=10, worst=10)
    best = [s.percent for s in samples if s.kind == "best"]
    worst = [s.percent for s in samples if s.kind == "worst"]
    assert best and worst
    assert best == sorted(best, reverse=True) and worst == sorted(worst)
    assert all(s.verdict == "fail" for s in samples if s.kind == "worst")
    with _db(built) as db:
        failing = {r[0] for r in db.execute("select distinct call_id from rule_results where category='hold' and verdict='fail'")}
    assert {s.call_id for s in samples if s.kind == "worst"} == failing
    assert not failing & {s.call_id for s in samples if s.kind == "best"}
    assert [s.rank for s in samples if s.kind == "best"] == list(range(1, len(best) + 1))


def test_period_and_agent_filters(built):
    may = find_samples(built.store, category="closing", period=parse_period("2024-05"), best=20, worst=20)
    april = find_samples(built.store, category="closing", period=parse_period("2024-04-01..2024-04-30"), best=20, worst=20)
    assert may and april
    assert all(s.date.startswith("2024-05") and not s.call_id.endswith("-m1") for s in may)
    assert all(s.date.startswith("2024-04") and s.call_id.endswith("-m1") for s in april)
    agent = find_samples(built.store, category="closing", agent="A2048", best=20, worst=20)
    assert agent and {s.agent_id for s in agent} == {"A2048"}
    assert find_samples(built.store, category="closing", period=parse_period("2023-01"), best=5, worst=5) == []


def test_unknown_rule_or_category_is_explained(built):
    with pytest.raises(SelectionError, match="greeting.standard"):
        find_samples(built.store, rule="greeting.standrd")
    with pytest.raises(SelectionError, match="known categories"):
        find_samples(built.store, category="greetings")


def test_monthly_export_per_agent(built, tmp_path):
    exports = export_monthly(built.store, tmp_path, best=1, worst=1)
    folders = sorted(e.out_dir.relative_to(tmp_path).as_posix() for e in exports)
    assert folders == [f"{m}/{a}" for m in ("2024-04", "2024-05") for a in ("A1024", "A2048", "E1024")]
    index = (tmp_path / "index.html").read_text(encoding="utf-8")
    for folder in folders:
        assert f'href="{folder}/index.html"' in index
        assert (tmp_path / folder / "index.html").is_file()
    may_a1024 = next(e for e in exports if e.out_dir == tmp_path / "2024-05" / "A1024")
    assert [s.percent for s in may_a1024.best] == [100.0]
    assert [s.call_id for s in may_a1024.worst] == ["zh_rude_repeat"]  # failed QA (fatal) comes first
    for export in exports:
        assert {s.agent_id for s in export.samples} == {export.out_dir.name}
        assert all(s.date.startswith(export.out_dir.parent.name) for s in export.samples)
        assert all((export.out_dir / s.clip).is_file() for s in export.samples)
        page = export.index.read_text(encoding="utf-8")
        assert page.count("<audio") == len(export.samples)


def test_missing_recording_is_reported_not_fatal(built, tmp_path):
    with _db(built) as db:
        db.execute("update calls set source='/nowhere/zh_no_greeting.flac' where call_id='zh_no_greeting'")
    try:
        export = export_samples(built.store, tmp_path, rule="greeting.standard", period=parse_period("2024-05"), best=0, worst=1)
    finally:
        with _db(built) as db:
            db.execute("update calls set source=(select source from calls where call_id='zh_no_greeting-m1') where call_id='zh_no_greeting'")
    [sample] = export.worst
    assert sample.clip is None and "file not found" in sample.clip_error and "/nowhere/" in sample.clip_error
    assert "no clip" in export.index.read_text(encoding="utf-8")


def test_samples_command(built, tmp_path):
    from pipelines.shell.cli import app

    runner = CliRunner()
    out = tmp_path / "lib"
    result = runner.invoke(app, ["samples", "--store-dir", str(built.out_dir), "--rule", "greeting.standard",
                                 "--period", "2024-05", "--best", "2", "--worst", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    page = (out / "index.html").read_text(encoding="utf-8")
    assert page.count("<audio") == 3 and "zh_no_greeting" in page and "喂,你说," in page
    document = json.loads((out / "samples.json").read_text(encoding="utf-8"))
    assert [s["kind"] for s in document["samples"]] == ["best", "best", "worst"]
    monthly = runner.invoke(app, ["samples", "--store-dir", str(built.out_dir), "--monthly", "--period", "2024-05",
                                  "--best", "1", "--worst", "1", "--out", str(tmp_path / "monthly")])
    assert monthly.exit_code == 0, monthly.output
    assert sorted(p.name for p in (tmp_path / "monthly" / "2024-05").iterdir()) == ["A1024", "A2048", "E1024"]
    missing = runner.invoke(app, ["samples", "--store-dir", str(built.out_dir), "--out", str(out)])
    assert missing.exit_code == 1 and "--rule" in missing.output
    bad = runner.invoke(app, ["samples", "--store-dir", str(tmp_path / "nope"), "--rule", "x", "--out", str(out)])
    assert bad.exit_code == 1 and "no results store" in bad.output
