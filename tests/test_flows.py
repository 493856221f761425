"""The Prefect QA batch: caching, resume after a kill, bad-input isolation, re-scoring after a
rulebook change, and two workers sharing one Prefect server and one store without double work.

Each run is a real `callqa run` process against a Prefect server started for this module."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipelines.results.store import Store, default_store_url
from tests.prefect_support import wait_healthy
from tests.audio_fixtures import silence, tone, write_wav

CALLQA = [sys.executable, "-m", "pipelines.shell.cli"]
ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory):
    """A local Prefect server (SQLite) on a free loopback port, shared by this module's runs."""
    home = tmp_path_factory.mktemp("prefect_home")
    port = _free_port()
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING"}
    env.pop("PREFECT_API_URL", None)
    log = (home / "server.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}/api"
    wait_healthy(url, proc, home / "server.log", 180)
    yield {"PREFECT_API_URL": url, "PREFECT_HOME": str(home)}
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(timeout=30)


def _env(server: dict, **extra: str) -> dict:
    return {**os.environ, **server, "PREFECT_LOGGING_LEVEL": "WARNING", "CALLQA_THREADS": "2", **extra}


def _run(server, source, out, *args, env_extra=None, timeout=900):
    result_file = Path(out) / f"run-{time.time_ns()}.json"
    Path(out).mkdir(parents=True, exist_ok=True)
    proc = subprocess.run(
        [*CALLQA, "run", str(source), "--out", str(out), "--json-result", str(result_file), *args],
        env=_env(server, **(env_extra or {})), capture_output=True, text=True, timeout=timeout,
    )
    data = json.loads(result_file.read_text()) if result_file.exists() else None
    return proc, data


def _good_calls(folder: Path, real_data: Path) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    picks = [
        real_data / "zh_asr" / "asr_example.wav",
        real_data / "en_asr" / "librispeech-1995-1837-0001.wav",
        real_data / "en_stereo_2ch_fasterwhisper" / "stereo_diarization.wav",
    ]
    for p in picks:
        shutil.copy(p, folder / p.name)
    return [p.stem for p in picks]


def _bad_calls(folder: Path, real_data: Path) -> dict[str, str]:
    """Each kind of bad input and the words its recorded reason must contain."""
    (folder / "empty.wav").write_bytes(b"")
    (folder / "notes.mp3").write_text("this is a note, not a recording\n" * 50)
    write_wav(folder / "silent.wav", silence(4.0, level_db=-90), 16000)
    write_wav(folder / "too_long.wav", tone(12.0), 16000)
    good = (real_data / "zh_asr" / "asr_example.wav").read_bytes()
    rng = np.random.default_rng(1)
    (folder / "corrupt.wav").write_bytes(good[:20] + rng.integers(0, 256, 3000, dtype=np.uint8).tobytes())
    return {"empty": "empty file", "notes": "not an audio file", "silent": "silent", "too_long": "longer than",
            "corrupt": ""}


def test_bad_input_caching_and_rescoring(prefect_server, real_data, tmp_path):
    calls = tmp_path / "calls"
    good = _good_calls(calls, real_data)
    bad = _bad_calls(calls, real_data)
    out = tmp_path / "out"
    limit = {"CALLQA_MAX_DURATION_S": "10"}

    # 1. bad inputs are failed calls with a reason; the batch goes on; the exit status says partial
    proc, first = _run(prefect_server, calls, out, env_extra=limit)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert sorted(first["done"]) == sorted(good)
    assert sorted(first["transcribed"]) == sorted(good)
    assert set(first["failed"]) == set(bad)
    for call_id, words in bad.items():
        assert words in first["failed"][call_id], (call_id, first["failed"][call_id])
        assert f"call {call_id}:" in proc.stdout + proc.stderr
    store = Store(default_store_url(out))
    assert {r.call_id for r in store.calls("done")} == set(good)
    assert {r.call_id: r.error for r in store.calls("failed")}.keys() == set(bad)

    # the run published its summary and the flagged-call table to Prefect
    for key, expected in (("qa-batch-summary", "QA batch summary"), ("qa-flagged-calls", "call_id")):
        artifact = subprocess.run([sys.executable, "-m", "prefect", "artifact", "inspect", key],
                                  env={**_env(prefect_server), "COLUMNS": "400"}, capture_output=True, text=True, timeout=120)
        assert artifact.returncode == 0 and expected in artifact.stdout, artifact.stdout + artifact.stderr

    # 2. a re-run skips finished calls: nothing is transcribed again
    proc, second = _run(prefect_server, calls, out, env_extra=limit)
    assert sorted(second["skipped"]) == sorted(good)
    assert second["transcribed"] == [] and second["cached"] == []

    # 3. a rulebook change re-scores every call from the cache, without transcription
    import qa_rules

    for language in ("zh", "en"):
        text = qa_rules.default_rulebook_path(language).read_text(encoding="utf-8")
        (tmp_path / f"{language}.yaml").write_text(text.replace("pass_mark: 80", "pass_mark: 97"), encoding="utf-8")
    proc, third = _run(prefect_server, calls, out, "--rulebook", str(tmp_path / "en.yaml"), env_extra=limit)
    assert sorted(third["done"]) == sorted(good)
    assert third["transcribed"] == [] and sorted(third["cached"]) == sorted(good)
    for call_id in good:
        card = json.loads((out / f"{call_id}.scorecard.json").read_text(encoding="utf-8"))
        assert card["pass_mark"] == 97
    # the store holds one row set per call, replaced, never doubled
    for call_id in good:
        conversation = json.loads((out / f"{call_id}.conversation.json").read_text(encoding="utf-8"))
        assert store.count("utterances", call_id) == len(conversation["utterances"])

    exported = store.export(tmp_path / "export")
    import pandas as pd

    calls_table = pd.read_parquet(tmp_path / "export" / "calls.parquet")
    assert set(calls_table["call_id"]) == set(good) | set(bad)
    assert (tmp_path / "export" / "rule_results.csv") in exported


def _wait_for(predicate, timeout: float, proc: subprocess.Popen) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        if proc.poll() is not None:
            return predicate()
        time.sleep(0.2)
    return False


def test_killed_run_resumes_with_nothing_lost_or_doubled(prefect_server, sample_calls, tmp_path):
    calls = tmp_path / "calls"
    calls.mkdir()
    names = ["en_good_stereo.mp3", "en_no_closing.wav", "zh_interrupt.flac", "zh_loud_agent.flac"]
    for name in names:
        shutil.copy(sample_calls / name, calls / name)
    out = tmp_path / "out"
    out.mkdir()
    store = Store(default_store_url(out))
    proc = subprocess.Popen(
        [*CALLQA, "run", str(calls), "--out", str(out)], env=_env(prefect_server),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    try:
        assert _wait_for(lambda: len(store.calls("done")) >= 1, 600, proc), "no call finished before the kill"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    done_before = {r.call_id for r in store.calls("done")}
    assert done_before and len(done_before) < len(names), "the kill must land mid-batch"

    rerun, result = _run(prefect_server, calls, out)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert set(result["skipped"]) == done_before
    assert set(result["done"]) | done_before == {Path(n).stem for n in names}
    assert not set(result["done"]) & done_before
    assert {r.call_id for r in store.calls("done")} == {Path(n).stem for n in names}
    for name in names:
        call_id = Path(name).stem
        conversation = json.loads((out / f"{call_id}.conversation.json").read_text(encoding="utf-8"))
        assert store.count("utterances", call_id) == len(conversation["utterances"])
    summary = (out / "summary.csv").read_text(encoding="utf-8-sig").splitlines()
    assert len(summary) == 1 + len(names)
