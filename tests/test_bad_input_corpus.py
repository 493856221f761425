"""A corpus of bad inputs, generated here (no audio is committed), run through `callqa run` in one
batch beside two good sample calls (issue 11).

The batch must finish (exit status 3, "partial"); each bad entry gets one clear reason; no call is
"passed" without agent speech; nothing is written outside the output folder and everything written
is owner-only; and the good calls' scorecards equal those of a run without the bad ones.  The two
runs use separate output folders and so separate analysis caches: both transcribe the good calls,
so the comparison shows the bad inputs changed nothing, not merely that a cache was read twice."""

from __future__ import annotations

import csv
import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np

from tests.audio_fixtures import silence, tone, write_wav
from tests.test_flows import prefect_server  # noqa: F401 - the module's local Prefect server (fixture)

ROOT = Path(__file__).resolve().parents[1]
CALLQA = [sys.executable, "-m", "pipelines.shell.cli"]
GOOD = {"en_no_closing": "en_no_closing.wav", "zh_loud_agent": "zh_loud_agent.flac"}
QUOTED = '客户 "引号" it\'s'
"""A file name with CJK, spaces and both quotes (its call id is the file's stem)."""


def _manifest(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["call_id", "path", "agent_id", "team", "started_at", "channel_map"])
        writer.writeheader()
        for row in rows:
            writer.writerow({"agent_id": "A1", "team": "t", "started_at": "2024-05-13T09:00:00+08:00",
                             "channel_map": "right", **row})
    return path


def _good_rows(calls: Path, sample_calls: Path) -> list[dict]:
    rows = []
    for call_id, name in GOOD.items():
        shutil.copy(sample_calls / name, calls / name)
        rows.append({"call_id": call_id, "path": f"calls/{name}"})
    return rows


def _bad_corpus(calls: Path, sample_calls: Path) -> tuple[list[dict], dict[str, str]]:
    """Manifest rows for every kind of bad input, and what each call's one reason must say."""
    rng = np.random.default_rng(7)
    (calls / "empty.wav").write_bytes(b"")
    (calls / "random.wav").write_bytes(rng.integers(0, 256, 4096, dtype=np.uint8).tobytes())
    (calls / "notes.mp3").write_text("minutes of the team meeting, not a recording\n" * 40, encoding="utf-8")
    write_wav(calls / "silence.wav", silence(4.0, level_db=-90), 16000)
    # a different tone on each channel: every channel is live on its own, so no call of the corpus
    # needs the diarization model (loading it costs more than the rest of the corpus); tones of
    # 440 Hz and up, which the voice-activity filter drops at once (lower ones cost seconds of decoding)
    write_wav(calls / "tone_96k.wav", np.stack([tone(2.0, 440.0, 96000), tone(2.0, 660.0, 96000)], axis=1), 96000)
    write_wav(calls / "tone_6ch.wav", np.stack([tone(2.0, 440.0 + 110 * c) for c in range(6)], axis=1), 16000)
    write_wav(calls / "tone_1s.wav", np.stack([tone(1.0, 440.0), tone(1.0, 660.0)], axis=1), 16000)
    loud = (sample_calls / "zh_loud_agent.flac").read_bytes()
    (calls / "truncated.flac").write_bytes(loud[: len(loud) * 45 // 100])  # both parties have spoken by then
    (calls / "leak.wav").symlink_to("/etc/passwd")
    quoted = calls / f"{QUOTED}.wav"
    shutil.copy(sample_calls / "en_no_closing.wav", quoted)
    rows = [
        {"call_id": "empty", "path": "calls/empty.wav"},
        {"call_id": "random", "path": "calls/random.wav"},
        {"call_id": "notes", "path": "calls/notes.mp3"},
        {"call_id": "silence", "path": "calls/silence.wav"},
        {"call_id": "tone_96k", "path": "calls/tone_96k.wav"},
        {"call_id": "tone_6ch", "path": "calls/tone_6ch.wav"},
        {"call_id": "tone_1s", "path": "calls/tone_1s.wav"},
        {"call_id": "truncated", "path": "calls/truncated.flac"},
        {"call_id": "leak", "path": "calls/leak.wav"},
        {"call_id": "", "path": f"calls/{quoted.name}"},
        {"call_id": "[bold]markup", "path": "calls/random.wav"},
        {"call_id": "../../escape", "path": "calls/en_no_closing.wav"},
        {"call_id": "sub/dir", "path": "calls/en_no_closing.wav"},
        {"call_id": "[/]", "path": "calls/en_no_closing.wav"},
        {"call_id": "back\\slash", "path": "calls/en_no_closing.wav"},
        {"call_id": "bell\x07", "path": "calls/en_no_closing.wav"},
        {"call_id": "x" * 200, "path": "calls/en_no_closing.wav"},
        {"call_id": "twice", "path": "calls/tone_1s.wav"},
        {"call_id": "twice", "path": "calls/silence.wav"},
    ]
    failed = {"empty": "empty file", "random": "not an audio file", "notes": "not an audio file", "silence": "silent",
              "leak": "not an audio file", "[bold]markup": "not an audio file"}
    return rows, failed


def _start(manifest: Path, out: Path, home: Path, server: dict) -> tuple[subprocess.Popen, Path]:
    """`callqa run` against the module's Prefect server (one server for both batches costs less
    than two ephemeral ones), started in the background."""
    result = home / f"{out.name}.json"
    env = {**os.environ, **server, "PREFECT_LOGGING_LEVEL": "WARNING", "CALLQA_THREADS": "1", "COLUMNS": "200"}
    with (home / f"{out.name}.log").open("w") as log:  # a file, not a pipe: neither run waits on the other's reader
        proc = subprocess.Popen([*CALLQA, "run", str(manifest), "--out", str(out), "--json-result", str(result)],
                                env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    return proc, result


def _finish(started: tuple[subprocess.Popen, Path]) -> tuple[int, str, dict]:
    proc, result = started
    proc.wait(timeout=900)
    output = result.with_suffix(".log").read_text(encoding="utf-8")
    assert result.exists(), output
    return proc.returncode, output, json.loads(result.read_text(encoding="utf-8"))


def _files(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file() and not p.is_symlink()}


def _card(out: Path, call_id: str) -> dict:
    return json.loads((out / f"{call_id}.scorecard.json").read_text(encoding="utf-8"))


def test_bad_input_corpus_in_one_batch(prefect_server, sample_calls, tmp_path):
    work = tmp_path / "site" / "qa"
    calls = work / "calls"
    calls.mkdir(parents=True)
    good_rows = _good_rows(calls, sample_calls)
    bad_rows, failed_words = _bad_corpus(calls, sample_calls)
    manifest = _manifest(work / "night.csv", good_rows[:1] + bad_rows + good_rows[1:])
    only_good = _manifest(work / "good.csv", good_rows)
    before = _files(tmp_path)
    out = work / "out" / "night"
    alone = work / "out" / "alone"

    # the night's batch and, at the same time, a batch of only the good calls (own folder and
    # cache: no analysis is shared, so both transcribe the good calls)
    night = _start(manifest, out, tmp_path, prefect_server)
    good_only = _start(only_good, alone, tmp_path, prefect_server)
    returncode, output, result = _finish(night)
    returncode_alone, output_alone, result_alone = _finish(good_only)

    # the batch finished, partial
    assert returncode == 3, output
    assert "Traceback" not in output and "MarkupError" not in output
    # each bad call: one clear reason, listed once at the end of the run
    listed = [line for line in output.splitlines() if line.startswith("  - ")]
    assert set(result["failed"]) == set(failed_words), result["failed"]
    for call_id, words in failed_words.items():
        reason = result["failed"][call_id]
        assert words in reason and "\n" not in reason and "internal error" not in reason, (call_id, reason)
        assert listed.count(f"  - call {call_id}: {reason}") == 1, (call_id, listed)
    refused = result["refused"]
    assert len(refused) == 7, refused
    lines = {label: reason for label, reason in refused.items() if label.startswith("manifest night.csv, line ")}
    assert len(lines) == 6 and all("refused" in r and "fix the call_id column" in r for r in lines.values())
    assert "lines 20, 21" in refused["twice"] and "give each call its own id" in refused["twice"]
    for label, reason in refused.items():
        assert "\n" not in label + reason and "\x07" not in label + reason
        assert listed.count(f"  - {label}: {reason}") == 1, (label, listed)
    assert len(listed) == len(result["failed"]) + len(refused), listed

    # the good calls, the oddly named copy and the decodable oddities were scored
    done = set(result["done"])
    assert set(GOOD) | {QUOTED, "truncated"} <= done, result
    odd = {"tone_96k", "tone_6ch", "tone_1s"}
    assert odd <= done | set(result["failed"]), result
    for call_id in done:
        card = _card(out, call_id)
        conversation = json.loads((out / f"{call_id}.conversation.json").read_text(encoding="utf-8"))
        if not any(u["role"] == "agent" and u["text"].strip() for u in conversation["utterances"]):
            assert card["passed"] is False and card["scorable"] is False, call_id
            assert any(f["reason"].startswith("not scorable:") for f in card["flags"]), call_id
    for call_id in odd & done:
        assert _card(out, call_id)["passed"] is False, (call_id, _card(out, call_id))
    truncated = _card(out, "truncated")
    assert any(f["reason"].startswith("audio damaged: audio ends early at ") and "of 37.8 s" in f["reason"]
               for f in truncated["flags"]), truncated["flags"]
    copy, original = _card(out, QUOTED), _card(out, "en_no_closing")
    assert {**copy, "call_id": "en_no_closing"} == original  # same audio, same verdicts, whatever the path

    # nothing outside the output folder changed; everything inside it is owner-only
    after = _files(tmp_path)
    outside = {k: v for k, v in after.items() if not k.startswith(("site/qa/out/", "night.", "alone."))}
    assert outside == {k: v for k, v in before.items()}, set(outside) ^ set(before)
    assert not list(tmp_path.parent.glob("escape*")) and not list(tmp_path.rglob("escape*"))
    assert not (out / "sub").exists()
    for path in [out, *out.rglob("*")]:
        mode = stat.S_IMODE(path.lstat().st_mode)
        assert mode & 0o077 == 0, f"{path} is {oct(mode)}"

    # the console will not play a call that did not decode as audio
    from pipelines.review.queries import servable_audio
    from pipelines.results.store import Store, default_store_url

    assert servable_audio(Store(default_store_url(out)), "leak").path is None

    # the good calls come out exactly as in the run without the bad ones
    assert returncode_alone == 0, output_alone
    assert sorted(result_alone["transcribed"]) == sorted(GOOD) and sorted(result_alone["done"]) == sorted(GOOD)
    assert set(GOOD) <= set(result["transcribed"])
    for call_id in GOOD:
        assert _card(alone, call_id) == _card(out, call_id), call_id
        mine = json.loads((out / f"{call_id}.conversation.json").read_text(encoding="utf-8"))
        theirs = json.loads((alone / f"{call_id}.conversation.json").read_text(encoding="utf-8"))
        assert mine["utterances"] == theirs["utterances"] and mine["speakers"] == theirs["speakers"], call_id
