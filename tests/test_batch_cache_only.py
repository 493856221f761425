"""The batch without Prefect (`pipelines.shell.batch`): what the analysis cache can answer is scored
here, bad input fails its own call, and a batch with one call the cache cannot answer is left whole
to the flow (nothing claimed, nothing written).  No model is loaded: the cache holds saved
analyses of the fixture calls under the content keys of short noise recordings."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import soundfile

from pipelines.results.store import Store, default_store_url
from pipelines.settings import Settings
from pipelines.shell import batch
from pipelines.shell.cache import AnalysisCache, analysis_key, audio_sha256
from qa_rules.records import Conversation, Measures

FIXTURES = Path(__file__).parent / "fixtures" / "calls"


def _recording(path: Path, seed: int) -> Path:
    soundfile.write(path, np.random.default_rng(seed).normal(0, 0.01, 8000).astype(np.float32), 8000, subtype="PCM_16")
    return path


def _cache(path: Path, cache: Path, saved: str) -> None:
    """Put the saved analysis ``saved`` in the cache under ``path``'s content key, as the flow would."""
    from models.model_store import ModelStore

    settings = Settings.load()
    key = analysis_key(audio_sha256(path), settings, ModelStore(settings.model_store).whisper(settings.asr_model), None)
    conversation = Conversation.read(FIXTURES / f"{saved}.conversation.json")
    AnalysisCache(cache).put(key, conversation, Measures.read(FIXTURES / f"{saved}.measures.json"))


def _manifest(folder: Path, rows: dict[str, str]) -> Path:
    manifest = folder / "manifest.csv"
    manifest.write_text("call_id,path\n" + "".join(f"{c},{p}\n" for c, p in rows.items()), encoding="utf-8")
    return manifest


def test_cached_calls_are_scored_without_prefect_and_bad_input_fails_its_own_call(tmp_path):
    calls, out = tmp_path / "calls", tmp_path / "out"
    calls.mkdir()
    _cache(_recording(calls / "a.wav", 1), out / ".cache" / "analysis", "zh_good_stereo")
    manifest = _manifest(calls, {"a": "a.wav", "gone": "gone.wav"})
    opened = batch.open_batch(str(manifest), out=str(out))
    answers = opened.answers_from_cache()
    assert answers is not None and set(answers) == {"a", "gone"}
    result = opened.run(batch.CacheOnlySteps(answers))
    assert result.prefect is False and result.done == ["a"] and result.cached == ["a"] and result.transcribed == []
    assert "file not found" in result.failed["gone"]
    card = json.loads((out / "a.scorecard.json").read_text(encoding="utf-8"))
    assert card["call_id"] == "a"
    assert (out / "summary.html").is_file()
    rows = {r.call_id: (r.status, r.claims) for r in Store(default_store_url(out)).calls()}
    assert rows == {"a": ("done", 1), "gone": ("failed", 1)}

    # again: the finished call needs no answer; the failed one is tried again (and fails again)
    again = batch.open_batch(str(manifest), out=str(out)).answers_from_cache()
    assert again is not None and set(again) == {"gone"}


def test_one_call_the_cache_cannot_answer_leaves_the_whole_batch_to_the_flow(tmp_path):
    calls, out = tmp_path / "calls", tmp_path / "out"
    calls.mkdir()
    _cache(_recording(calls / "a.wav", 1), out / ".cache" / "analysis", "zh_good_stereo")
    _recording(calls / "b.wav", 2)  # never analysed
    opened = batch.open_batch(str(calls), out=str(out))
    assert opened.answers_from_cache() is None
    rows = {r.call_id: (r.status, r.claims) for r in Store(default_store_url(out)).calls()}
    assert rows == {"a": ("pending", 0), "b": ("pending", 0)}  # registered, not taken up
    assert not list(out.glob("*.scorecard.json"))


def test_a_call_changed_by_another_run_after_planning_fails_with_its_reason(tmp_path):
    """Planned as finished (so not answered), wanted again when its turn came, and not in the
    cache: the cache-only steps never reach for a model — the call fails with what to do."""
    calls, out = tmp_path / "calls", tmp_path / "out"
    calls.mkdir()
    _recording(calls / "a.wav", 1)
    opened = batch.open_batch(str(calls), out=str(out))
    result = opened.run(batch.CacheOnlySteps({}))
    assert result.done == [] and "run the batch again" in result.failed["a"]


SAVED = ("zh_good_stereo", "en_good_stereo", "zh_no_greeting", "en_no_closing", "zh_good_mono")


def _cached_batch(tmp_path: Path, name: str):
    """A batch of the saved calls (+ one missing file) answered from the cache, in its own folder."""
    calls, out = tmp_path / name / "calls", tmp_path / name / "out"
    calls.mkdir(parents=True)
    for k, saved in enumerate(SAVED):
        _cache(_recording(calls / f"{saved}.wav", k), out / ".cache" / "analysis", saved)
    manifest = _manifest(calls, {**{s: f"{s}.wav" for s in SAVED}, "gone": "gone.wav"})
    opened = batch.open_batch(str(manifest), out=str(out))
    return opened, opened.answers_from_cache()


def _run_with_pool(opened, answers, workers: int = 2):
    analyses = {c: a for c, a in answers.items() if isinstance(a, batch.CallAnalysis)}
    with batch.ScoringPool(opened, analyses, workers) as pool:
        return opened.run(batch.CacheOnlySteps(answers, pool))


def _stored(out: Path) -> dict[str, list]:
    """Every table's rows without ids, times and worker names (those differ from run to run)."""
    import sqlite3

    volatile = {"id", "processed_at", "claimed_at", "processed_by", "claimed_by", "created_at", "source", "source_root",
                "input_key", "conversation_path", "scorecard_path", "error"}  # (paths: each run its own folder)
    db = sqlite3.connect(out / "callqa.db")
    tables = {}
    for table in ("calls", "utterances", "rule_results", "category_results", "situation_results", "flags"):
        columns = [c[1] for c in db.execute(f"PRAGMA table_info({table})") if c[1] not in volatile]
        tables[table] = sorted(db.execute(f"SELECT {', '.join(f'{chr(34)}{c}{chr(34)}' for c in columns)} FROM {table}"))
    db.close()
    return tables


def test_scoring_processes_write_what_the_batch_writes_in_process(tmp_path):
    here = _cached_batch(tmp_path, "here")
    alone = here[0].run(batch.CacheOnlySteps(here[1]))
    pooled = _cached_batch(tmp_path, "pool")
    result = _run_with_pool(*pooled)
    assert sorted(result.done) == sorted(alone.done) == sorted(SAVED) and result.cached == result.done
    assert result.failed.keys() == {"gone"} and "file not found" in result.failed["gone"]
    assert _stored(pooled[0].out_dir) == _stored(here[0].out_dir)
    for name in sorted(p.name for p in here[0].out_dir.glob("*.json")):
        expected = (here[0].out_dir / name).read_text(encoding="utf-8").replace(str(tmp_path / "here"), str(tmp_path / "pool"))
        assert (pooled[0].out_dir / name).read_text(encoding="utf-8") == expected, name  # the source names its folder


def test_an_error_in_a_scoring_process_fails_that_call_alone(tmp_path, monkeypatch):
    real = batch.score_call

    def failing(analysed, rulebook, out):
        call_id = analysed.conversation.call_id
        if call_id == "zh_no_greeting":
            raise batch.CallError(call_id, "score", "the rules could not read it")
        if call_id == "en_no_closing":
            raise KeyError("no such field")
        return real(analysed, rulebook, out)

    monkeypatch.setattr(batch, "score_call", failing)  # the workers are forked after this: they inherit it
    opened, answers = _cached_batch(tmp_path, "errors")
    result = _run_with_pool(opened, answers)
    assert sorted(result.done) == ["en_good_stereo", "zh_good_mono", "zh_good_stereo"]
    assert result.failed["zh_no_greeting"] == "the rules could not read it"
    assert result.failed["en_no_closing"] == "internal error (KeyError: 'no such field')"
    rows = {r.call_id: r.status for r in opened.store.calls()}
    assert rows["zh_no_greeting"] == rows["en_no_closing"] == "failed" and rows["zh_good_stereo"] == "done"


def test_a_name_outside_the_output_folder_in_a_scoring_process_fails_as_it_does_in_process(tmp_path, monkeypatch):
    """Errors cross back from a worker as strings (never a pickled exception), and keep their kind:
    a refused file name is recorded with its own message, not as an internal error."""
    real = batch.score_call

    def refusing(analysed, rulebook, out):
        if analysed.conversation.call_id == "zh_good_mono":
            raise batch.OutsideOutputError("call id 'zh_good_mono' would write /elsewhere — refused")
        return real(analysed, rulebook, out)

    monkeypatch.setattr(batch, "score_call", refusing)
    opened, answers = _cached_batch(tmp_path, "outside")
    result = _run_with_pool(opened, answers)
    assert result.failed["zh_good_mono"] == "call id 'zh_good_mono' would write /elsewhere — refused"
    assert "zh_good_stereo" in result.done


def test_a_scoring_process_that_dies_loses_no_call(tmp_path, monkeypatch):
    import os

    real, parent = batch.score_call, os.getpid()

    def dying(analysed, rulebook, out):
        if analysed.conversation.call_id == "zh_no_greeting" and os.getpid() != parent:
            os._exit(9)  # killed mid-call (out of memory, say): not the call's fault
        return real(analysed, rulebook, out)

    monkeypatch.setattr(batch, "score_call", dying)
    opened, answers = _cached_batch(tmp_path, "dies")
    result = _run_with_pool(opened, answers)
    assert sorted(result.done) == sorted(SAVED) and result.failed.keys() == {"gone"}
    assert (opened.out_dir / "zh_no_greeting.scorecard.json").is_file()


def _statuses(opened) -> dict[str, str]:
    return {r.call_id: r.status for r in opened.store.calls()}


def test_a_full_store_disk_stops_the_batch_and_keeps_what_was_stored(tmp_path, monkeypatch):
    """SQLite's "database or disk is full" on one call's save is the machine's fault, not the call's:
    the batch stops with what it kept and what to do, marks no call failed, leaves none held, and
    the next run (space freed) finishes the rest and skips what was stored."""
    import sqlite3

    import pytest
    from sqlalchemy.exc import OperationalError

    from qa_rules.files import OutOfSpaceError

    real = batch.store_call

    def full(card, analysed, *args, **kwargs):
        if analysed.conversation.call_id == "zh_no_greeting":
            raise OperationalError("INSERT INTO rule_results …", {}, sqlite3.OperationalError("database or disk is full"))
        return real(card, analysed, *args, **kwargs)

    monkeypatch.setattr(batch, "store_call", full)
    opened, answers = _cached_batch(tmp_path, "full-store")
    with pytest.raises(OutOfSpaceError) as stopped:
        opened.run(batch.CacheOnlySteps(answers))
    message = str(stopped.value)
    assert message.startswith("no space left on the disk (") and "database or disk is full" in message
    assert "2 call(s) were scored and stored before it, 4 are left for the next run" in message, message
    assert "run `callqa run` again" in message
    statuses = _statuses(opened)
    assert statuses == {"zh_good_stereo": "done", "en_good_stereo": "done", "zh_no_greeting": "pending",
                        "en_no_closing": "pending", "zh_good_mono": "pending", "gone": "pending"}, statuses

    monkeypatch.setattr(batch, "store_call", real)  # space freed
    again = batch.open_batch(str(opened.source.calls[0].path.parent / "manifest.csv"), out=str(opened.out_dir))
    answers = again.answers_from_cache()
    result = again.run(batch.CacheOnlySteps(answers))
    assert sorted(result.done) == ["en_no_closing", "zh_good_mono", "zh_no_greeting"]
    assert sorted(result.skipped) == ["en_good_stereo", "zh_good_stereo"] and result.failed.keys() == {"gone"}


def test_a_full_disk_in_a_scoring_process_stops_the_batch_too(tmp_path, monkeypatch):
    """``ENOSPC`` raised while a worker writes a call's files crosses back with its errno (not as an
    error of the call): the batch stops, no call is marked failed or left held."""
    import errno

    import pytest

    from qa_rules.files import OutOfSpaceError

    real = batch.score_call

    def full(analysed, rulebook, out):
        if analysed.conversation.call_id == "en_no_closing":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(analysed, rulebook, out)

    monkeypatch.setattr(batch, "score_call", full)  # the workers are forked after this: they inherit it
    opened, answers = _cached_batch(tmp_path, "full-files")
    with pytest.raises(OutOfSpaceError) as stopped:
        _run_with_pool(opened, answers)
    assert "([Errno 28] No space left on device)" in str(stopped.value)
    statuses = _statuses(opened)
    # (the missing file fails on its own, before or after the disk filled: its answer needs no worker)
    failed = {call for call, status in statuses.items() if status == "failed"}
    assert failed <= {"gone"} and "processing" not in statuses.values(), statuses
    assert statuses["en_no_closing"] == "pending"
    assert not list(opened.out_dir.glob("*.tmp"))


def test_a_cache_entry_damaged_after_planning_fails_its_call_alone_and_is_removed(tmp_path):
    """Planned analyses are read when scored (in the scoring process): one whose entry was damaged
    in between fails that call with what to do, and the entry goes, so the next run analyses the
    recording again instead of finding the damaged entry once more."""
    for pooled in (False, True):
        opened, answers = _cached_batch(tmp_path, f"damaged-{pooled}")
        damaged = answers["zh_no_greeting"]
        entry = opened.cache_folder + f"/{damaged.key[:2]}/{damaged.key}"
        Path(entry, "conversation.json").write_text('{"call_id": "zh_no_greeting", "utterances": [', encoding="utf-8")
        result = _run_with_pool(opened, answers) if pooled else opened.run(batch.CacheOnlySteps(answers))
        assert sorted(result.done) == sorted(set(SAVED) - {"zh_no_greeting"}), pooled
        reason = result.failed["zh_no_greeting"]
        assert "cached analysis was damaged or removed" in reason and "run the batch again" in reason
        assert not Path(entry, "conversation.json").exists() and not Path(entry, "measures.json").exists()
        again = batch.open_batch(str(opened.source.calls[0].path.parent / "manifest.csv"), out=str(opened.out_dir))
        assert again.answers_from_cache() is None, "the next run must analyse the call again (models)"


def test_a_recording_is_hashed_once_until_its_file_changes(tmp_path, monkeypatch):
    """The content hash that finds a call's cached analysis is remembered by the file's identity: a
    rulebook change does not read every recording again; a file written again (even with its size
    and modification time put back) is hashed anew, and a damaged remembered hash is not believed."""
    import os
    import time

    from pipelines.shell import cache

    hashed = []
    real = cache.audio_sha256
    monkeypatch.setattr(cache, "audio_sha256", lambda path: hashed.append(path) or real(path))
    recording = _recording(tmp_path / "call.wav", 3)
    remembered = cache.AudioHashes(tmp_path / "cache")
    first = remembered.sha256(recording)
    assert first == real(recording) and remembered.sha256(recording) == first and len(hashed) == 1
    (stored,) = [p for p in (tmp_path / "cache" / cache.AudioHashes.FOLDER).rglob("*") if p.is_file()]
    assert oct(stored.stat().st_mode & 0o777) == "0o600"

    time.sleep(0.05)  # past the file system's clock tick
    before = recording.stat()
    data = bytearray(recording.read_bytes())
    data[-1] ^= 0xFF  # same size, other content
    recording.write_bytes(bytes(data))
    os.utime(recording, ns=(before.st_atime_ns, before.st_mtime_ns))  # modification time put back
    assert remembered.sha256(recording) == real(recording) != first and len(hashed) == 2

    for record in [p for p in (tmp_path / "cache" / cache.AudioHashes.FOLDER).rglob("*") if p.is_file()]:
        record.write_text("0" * 63 + "Z\n", encoding="ascii")
    assert remembered.sha256(recording) == real(recording) and len(hashed) == 3


def test_a_hash_that_cannot_be_remembered_is_still_given(tmp_path):
    """A cache folder the worker may not write to (a read-only share) costs a re-read next time, not
    the call."""
    import os

    from pipelines.shell import cache

    if os.geteuid() == 0:  # root writes through permissions: make the folder a file instead
        (tmp_path / "cache").mkdir()
        (tmp_path / "cache" / cache.AudioHashes.FOLDER).write_text("not a folder", encoding="utf-8")
    else:
        (tmp_path / "cache").mkdir(mode=0o500)
    recording = _recording(tmp_path / "call.wav", 5)
    assert cache.AudioHashes(tmp_path / "cache").sha256(recording) == cache.audio_sha256(recording)


def test_a_scoring_process_collects_cycles_by_count_not_by_allocation():
    """Scoring processes run without automatic cycle collection (a call allocates tens of thousands
    of objects and leaves no cycle), yet a cycle left behind is freed within
    ``COLLECT_EVERY_CALLS`` calls — a long re-score does not grow without bound."""
    import gc
    import weakref

    from pipelines.shell import batch

    class Node:
        pass

    was_enabled = gc.isenabled()
    try:
        batch._worker_collects_by_count()
        assert not gc.isenabled()
        cycle = Node()
        cycle.me = cycle
        alive = weakref.ref(cycle)
        del cycle
        batch._scored_since_collection = 0
        for _ in range(batch.COLLECT_EVERY_CALLS - 1):
            batch._collect_now_and_then()
        assert alive() is not None, "collected before its count: the collector was not off"
        batch._collect_now_and_then()
        assert alive() is None, "the cycle left by a call was never collected"
    finally:
        batch._scored_since_collection = 0
        if was_enabled:
            gc.enable()


def test_claimed_calls_go_to_the_scoring_processes_a_few_at_a_time(tmp_path):
    """Five calls are two jobs: four together, and the last one sent alone when the batch is about
    to wait for it (without that flush the batch would wait forever)."""
    opened, answers = _cached_batch(tmp_path, "jobs")
    analyses = {c: a for c, a in answers.items() if isinstance(a, batch.CallAnalysis)}
    sent: list[list[str]] = []
    with batch.ScoringPool(opened, analyses, 2) as pool:
        real = pool._pool.submit

        def counting(fn, calls):
            sent.append([call_id for call_id, _ in calls])
            return real(fn, calls)

        pool._pool.submit = counting
        result = opened.run(batch.CacheOnlySteps(answers, pool))
    assert sorted(result.done) == sorted(SAVED)
    assert [len(job) for job in sent] == [batch.CALLS_PER_JOB, len(SAVED) - batch.CALLS_PER_JOB]
    assert sorted(call for job in sent for call in job) == sorted(SAVED)


def test_run_leaves_its_heap_to_the_exit_only_after_the_batch_is_written(tmp_path):
    """`callqa run` skips Python's last cycle collection (~0.2 s of a 500-call re-score) once every
    call's files, the summary and the store are written: at exit the collector has been told to
    leave the heap alone, and everything is there."""
    from cli_support import callqa_main_at_exit

    calls, out = tmp_path / "calls", tmp_path / "out"
    calls.mkdir()
    for k, saved in enumerate(("zh_good_stereo", "en_no_closing")):
        _cache(_recording(calls / f"{saved}.wav", k), out / ".cache" / "analysis", saved)
    code, output = callqa_main_at_exit("run", str(calls), "--out", str(out), out=out)
    assert code == 0, output
    frozen, cards = [line for line in output.splitlines() if line.startswith("AT-EXIT")][0].split()[1:]
    assert int(frozen.removeprefix("frozen=")) > 20_000 and cards == "cards=2", output
    assert (out / "summary.html").is_file()
    assert {r.call_id: r.status for r in Store(default_store_url(out)).calls()} == {
        "zh_good_stereo": "done", "en_no_closing": "done"}


def test_the_analysis_key_worked_out_once_per_batch_is_the_key_the_cache_was_filled_under(tmp_path):
    """A batch works out the settings' and the model's part of the key once (:func:`analysis_basis`);
    the key must stay the one every earlier run filled the cache under — a changed key would send
    every cached call back to the models."""
    import hashlib

    from models.model_store import ModelStore
    from pipelines.shell.cache import (
        ANALYSIS_VERSION, CONVERSATION_SCHEMA_VERSION, MEASURES_SCHEMA_VERSION, analysis_basis,
    )

    settings = Settings.load()
    model_dir = ModelStore(settings.model_store).whisper(settings.asr_model)
    model_bin = model_dir / "model.bin"
    audio = "ab" * 32
    for channel_map in (None, "left"):
        every_part = {  # the key as runs before this change wrote it, part by part
            "audio": audio, "asr_model": model_dir.name,
            "asr_model_bytes": model_bin.stat().st_size if model_bin.exists() else None,
            "transcription": settings.transcription_options().as_dict(),
            "diarization": settings.diarization_options().as_dict(),
            "segmentation": str(settings.segmentation or "store"), "embedding": str(settings.embedding or "store"),
            "language": settings.language, "channel_map": channel_map or settings.agent_channel,
            "versions": [ANALYSIS_VERSION, CONVERSATION_SCHEMA_VERSION, MEASURES_SCHEMA_VERSION],
        }
        expected = hashlib.sha256(json.dumps(every_part, sort_keys=True, default=str).encode()).hexdigest()[:40]
        assert analysis_key(audio, settings, model_dir, channel_map) == expected
        assert analysis_key(audio, settings, None, channel_map, basis=analysis_basis(settings, model_dir)) == expected
