"""Shared fixtures: real models loaded once per test session, paths to the test material."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import pytest

from bench.shared_data import DATA

ROOT = Path(__file__).resolve().parents[1]
REAL = DATA / "real"
SAMPLE_CALLS = ROOT / "samples" / "calls"


def pytest_sessionstart(session) -> None:
    """The test material (``../shared/data``: real recordings, dev calls and their labels) is read by
    test modules as they are collected: without it, one line that says where it was looked for and
    how to point at it, instead of a traceback from the first module that opens a label file."""
    if not DATA.is_dir():
        raise pytest.UsageError(
            f"test material missing: {DATA} — the tests need the project's shared folder beside the "
            "checkout (../shared); clone next to it, or set CALLQA_SHARED=/path/to/shared")


def _require(path: Path) -> Path:
    # Test material is part of the project's checkout layout; a missing folder is a broken set-up,
    # not a reason to skip.
    assert path.exists(), f"test material missing: {path} (expected ../shared beside the checkout)"
    return path


@pytest.fixture(scope="session")
def real_data() -> Path:
    return _require(REAL)


@pytest.fixture(scope="session")
def sample_calls() -> Path:
    return _require(SAMPLE_CALLS)


@pytest.fixture(scope="session")
def settings():
    from pipelines.settings import Settings

    return Settings.load(threads=int(os.environ.get("CALLQA_TEST_THREADS", os.cpu_count() or 2)))


@pytest.fixture(scope="session")
def engines(settings):
    """Whisper base + pyannote/CAM++ from the local model store, loaded once for the session."""
    from pipelines.stages.engines import SpeechEngines

    return SpeechEngines.load(settings)


CALLS2 = DATA / "calls2"


@pytest.fixture(scope="session")
def calls2() -> Path:
    return _require(CALLS2)


CALLS2_BENCH_ONLY = ("D16_long_8k",)
"""Left out of the suite's calls2 batch, kept in the bench (``bench/bench_roles.py``,
``bench/bench_asr_modes.py`` run all 22 files): the 8 kHz mono copy of the 3-minute D16_long is
the corpus's costliest file (about 65 s of diarization and transcription on 2 cores, a fifth of
the batch) and tests nothing the other five mono copies and D16_long's stereo original do not."""


def calls2_suite_calls(calls2: Path) -> set[str]:
    """The call ids of the suite's calls2 batch: the manifest's, less :data:`CALLS2_BENCH_ONLY`."""
    with (calls2 / "manifest.csv").open(newline="", encoding="utf-8") as handle:
        return {row["call_id"] for row in csv.DictReader(handle)} - set(CALLS2_BENCH_ONLY)


@pytest.fixture(scope="session")
def calls2_batch(tmp_path_factory, calls2) -> Path:
    """The calls2 dev corpus (situational scripts, customer-first openings, transfers; stereo and
    8 kHz mono copies) but :data:`CALLS2_BENCH_ONLY` through `callqa run` once per test session:
    conversations, measures and scorecards in the returned folder."""
    from typer.testing import CliRunner

    from pipelines.shell.cli import app

    out = tmp_path_factory.mktemp("calls2")
    manifest = tmp_path_factory.mktemp("calls2-suite") / "manifest.csv"
    with (calls2 / "manifest.csv").open(newline="", encoding="utf-8") as source, \
            manifest.open("w", newline="", encoding="utf-8") as target:
        reader = csv.DictReader(source)
        writer = csv.DictWriter(target, fieldnames=reader.fieldnames)
        writer.writeheader()
        for row in reader:
            if row["call_id"] not in CALLS2_BENCH_ONLY:
                writer.writerow({**row, "file": str(calls2 / row["file"])})
    result = CliRunner().invoke(app, ["run", str(manifest), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out
