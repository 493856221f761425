"""The flow's promises about concurrency and retries, on real work: the Prefect concurrency limit
(not a private semaphore) bounds concurrent model calls while several calls are in flight; engines
are cached by model settings only; transient errors are recognised by type.

Runs against Prefect's local (ephemeral) API, with the real models on a real 5-second stereo call."""

from __future__ import annotations

import gc
import os
import shutil
import weakref
from itertools import combinations

import pytest
from prefect import flow
from prefect.task_runners import ThreadPoolTaskRunner

from pipelines.results.store import worker_identity
from pipelines.shell import flows
from qa_rules.records import CallError, CallSource

STEREO = ("en_stereo_2ch_fasterwhisper", "stereo_diarization.wav")


def _calls(real_data, folder, n: int) -> list[CallSource]:
    folder.mkdir(parents=True, exist_ok=True)
    calls = []
    for i in range(n):
        path = folder / f"call{i}.wav"
        shutil.copy(real_data.joinpath(*STEREO), path)
        calls.append(CallSource(call_id=path.stem, path=path))
    return calls


@flow(task_runner=ThreadPoolTaskRunner(max_workers=4))
def _analyse_together(calls: list[CallSource], settings, cache_dir: str, slots: int) -> list:
    """All calls submitted at once to the flow's own analysis task, under the flow's own limit."""
    with flows.model_call_limit(worker_identity(), slots) as limit:
        futures = [flows.analyse_task.submit(call, settings, cache_dir, limit) for call in calls]
        return [future.result() for future in futures]


def _model_spans(analyses) -> list[tuple[float, float]]:
    return [a.analysed.stage_spans[s] for a in analyses for s in ("transcribe", "speakers")]


def _overlapping(spans: list[tuple[float, float]]) -> int:
    return sum(1 for (a0, a1), (b0, b1) in combinations(spans, 2) if a0 < b1 and b0 < a1)


def test_the_prefect_limit_bounds_concurrent_model_calls(real_data, settings, tmp_path):
    calls = _calls(real_data, tmp_path / "calls", 3)

    one = _analyse_together(calls, settings, str(tmp_path / "cache1"), 1)
    assert [a.cached for a in one] == [False] * 3
    assert all(a.analysed.conversation.speaker_mode == "channels" for a in one)
    assert _overlapping(_model_spans(one)) == 0, _model_spans(one)  # one slot: never two model calls at once
    # ...though the calls were in flight together: a call decoded while another held the slot
    decodes = [a.analysed.stage_spans["decode"] for a in one]
    assert _overlapping(decodes + _model_spans(one)) > 0

    three = _analyse_together(calls, settings, str(tmp_path / "cache3"), 3)
    assert _overlapping(_model_spans(three)) > 0, _model_spans(three)  # three slots: they do run together
    texts = {a.analysed.conversation.utterances[0].text for a in one + three}
    assert len(texts) == 1  # same audio, same words, however many ran at once


def test_batch_keeps_calls_in_flight_and_every_call_is_scored(real_data, tmp_path, monkeypatch):
    """The real flow with two slots: its analysis task runs overlap in Prefect's own records, and
    every call is scored and stored once."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from pipelines.results.store import Store, default_store_url
    from pipelines.settings import Settings

    _calls(real_data, tmp_path / "calls", 3)
    out = tmp_path / "out"
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    state = flows.qa_batch(source=str(tmp_path / "calls"), out=str(out), settings=Settings.load(threads=1),
                           gpu_slots=2, return_state=True)
    result = state.result()
    assert sorted(result.done) == ["call0", "call1", "call2"] and not result.failed
    assert {r.call_id for r in Store(default_store_url(out)).calls("done")} == set(result.done)
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id])))
        mine = [r for r in runs if r.name.startswith("analyse call")]
        assert {r.state_name for r in mine} == {"Completed"} and len(mine) == 3
        spans = [(r.start_time.timestamp(), r.end_time.timestamp()) for r in mine]
        assert _overlapping(spans) > 0, spans
        limits = client.read_global_concurrency_limits(limit=200)
    # each run's limit goes with it
    assert not [c.name for c in limits if c.name.startswith(flows.MODEL_LIMIT_PREFIX) and f":{os.getpid()}:" in c.name]


def test_engines_are_cached_by_model_settings_and_evicted_ones_are_freed(settings):
    cache = flows._LoadedEngines(keep=1)
    first = cache.get(settings)
    same_models = settings.model_copy(update={"language": "en", "agent_channel": "left", "max_duration_s": 60.0,
                                              "redact_store": True})
    assert cache.get(same_models) is first  # a setting that changes no model loads nothing
    gone = weakref.ref(first)
    del first
    other = cache.get(settings.model_copy(update={"beam_size": 1}))
    assert other.models.transcription.beam_size == 1
    gc.collect()
    assert gone() is None, "an evicted engine set must not be kept alive"
    assert cache.loaded() == [other]


def test_transient_errors_are_recognised_by_type_not_by_message():
    import torch
    from sqlalchemy.exc import OperationalError

    from models.errors import DeviceOutOfMemoryError

    assert flows.is_transient_error(OperationalError("UPDATE calls", {}, Exception("database is locked")))
    assert flows.is_transient_error(torch.cuda.OutOfMemoryError("CUDA out of memory"))
    assert flows.is_transient_error(DeviceOutOfMemoryError("CUDA failed with error out of memory"))
    # words alone no longer make an error transient
    assert not flows.is_transient_error(RuntimeError("CUDA error: out of memory"))
    assert not flows.is_transient_error(CallError("c1", "decode", "database is locked"))
    assert not flows.is_transient_error(None)
    # a full disk under the store is not a busy store: the batch stops on it instead of retrying
    import sqlite3

    assert not flows.is_transient_error(OperationalError("COMMIT", {}, sqlite3.OperationalError("database or disk is full")))


@pytest.mark.parametrize("slots", [0, -1])
def test_a_limit_needs_at_least_one_slot(slots):
    with pytest.raises(ValueError, match="at least 1"):
        with flows.model_call_limit("test", slots):
            pass
