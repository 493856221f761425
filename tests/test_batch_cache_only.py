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
