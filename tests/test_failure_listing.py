"""A night where every call fails (the recordings share not mounted) lists the first calls by name and
counts the rest, pointing at summary.csv, which holds every call's reason — on the console and in
the Prefect summary alike."""

from __future__ import annotations

import csv
from pathlib import Path

from typer.testing import CliRunner

from pipelines.reports.summary import LISTED_PROBLEMS, listed_problems
from pipelines.shell.cli import app


def test_a_short_list_is_left_whole():
    lines = [f"call c{k}: file not found" for k in range(LISTED_PROBLEMS)]
    assert listed_problems(lines, "summary.csv") == lines


def test_a_long_list_is_cut_with_a_count_and_where_the_rest_is():
    lines = [f"call c{k}: file not found" for k in range(LISTED_PROBLEMS + 7)]
    listed = listed_problems(lines, "out/summary.csv (column error)")
    assert listed[:-1] == lines[:LISTED_PROBLEMS]
    assert listed[-1] == "… and 7 more: every reason is in out/summary.csv (column error)"


def test_run_over_a_missing_share_lists_twenty_and_keeps_every_reason_in_the_summary(tmp_path: Path):
    manifest = tmp_path / "night.csv"
    manifest.write_text("call_id,path\n" + "".join(f"c{k:03d},share/{k}.wav\n" for k in range(60)), encoding="utf-8")
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["run", str(manifest), "--out", str(out)], env={"COLUMNS": "300"})
    assert result.exit_code == 1, result.output
    listed = [line for line in result.output.splitlines() if line.startswith("  - ")]
    assert len(listed) == LISTED_PROBLEMS + 1, result.output
    assert listed[0] == f"  - call c000: file not found: {tmp_path / 'share' / '0.wav'}"
    assert listed[-1] == f"  - … and 40 more: every reason is in {out / 'summary.csv'} (column error)"
    with (out / "summary.csv").open(encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 60 and all(row["status"] == "failed" and "file not found" in row["error"] for row in rows)
