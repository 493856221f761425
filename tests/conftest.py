"""Shared fixtures: real models loaded once per test session, paths to the test material."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("CALLQA_SHARED", ROOT.parent / "shared")).resolve()
REAL = SHARED / "data" / "real"
SAMPLE_CALLS = ROOT / "samples" / "calls"


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
    from pipelines.engines import SpeechEngines

    return SpeechEngines.load(settings)
