"""Prefect orchestration: ``qa_batch`` runs the nightly QA batch over a folder, a glob or a manifest.

The flow is a thin shell over :func:`pipelines.shell.batch.run_batch` (the batch's logic, written
once) and the plain stage functions (:mod:`pipelines.stages.analysis`, :mod:`pipelines.stages.scoring`);
together they give what a night on GPU workers needs:

- **claims** in the results store, so several workers sharing one store never process a call twice
  and a call left behind by a killed worker is taken over on the next run;
- a **content-keyed cache** (:mod:`pipelines.shell.cache`): a re-run skips finished calls, and a rulebook
  change re-scores every call without transcription;
- **models loaded once per worker process** (:func:`worker_engines`, keyed by the model settings
  only), several calls in flight at once, and a Prefect **concurrency limit** that bounds this
  worker's concurrent model calls (``gpu_slots``);
- **retries** for transient failures, recognised by type (device out of memory, SQLAlchemy's
  ``OperationalError``) — none for bad input, which is recorded as a failed call with its reason
  while the batch goes on;
- a markdown summary and a table of flagged calls published as Prefect **artifacts**.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections import OrderedDict
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE as NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from models.errors import DeviceOutOfMemoryError
from pipelines.reports.summary import SummaryRow, listed_problems, write_summary
from pipelines.results.store import Store
from pipelines.settings import Settings
from pipelines.shell.batch import MAX_IN_FLIGHT, BatchResult, CallAnalysis, cached_analysis, run_batch, score_and_store_call
from pipelines.shell.cache import AnalysisCache
from pipelines.stages.analysis import AnalysedCall, analyse_call
from qa_rules.records import CallSource, Scorecard

if TYPE_CHECKING:
    from pipelines.stages.engines import ModelSettings, SpeechEngines
    from qa_rules.rulebook import Rulebook
    from pipelines.stages.scoring import Rulebooks

log = logging.getLogger(__name__)

MODEL_LIMIT_PREFIX = "callqa-model-calls-"
"""Name prefix of the Prefect global concurrency limit that bounds a run's model calls (see
:func:`model_call_limit`)."""

SLOT_WAIT_ENV = "PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS"
os.environ.setdefault(SLOT_WAIT_ENV, "1")
"""A call waiting for a model slot asks again after the Prefect server's ``Retry-After``, which by
default grows to the slot's average occupancy, up to 30 s: the core would idle that long after
each model call (a 22-call batch took minutes longer).  One second for the local (ephemeral) API
this process starts; a separately started ``prefect server`` wants the same variable (README)."""


# ---------------------------------------------------------------------------- per worker process
class _LoadedEngines:
    """The speech models of this worker process by :class:`ModelSettings`, the most recent
    ``keep`` of them; an evicted set is dropped here, so nothing keeps its memory alive."""

    def __init__(self, keep: int = 2) -> None:
        self._keep = keep
        self._lock = threading.Lock()
        self._engines: OrderedDict[ModelSettings, SpeechEngines] = OrderedDict()

    def get(self, settings: Settings) -> "SpeechEngines":
        from pipelines.stages.engines import ModelSettings, SpeechEngines

        key = ModelSettings.of(settings)
        with self._lock:  # one load per key, even with several calls in flight
            if key not in self._engines:
                self._engines[key] = SpeechEngines.load(key)
                while len(self._engines) > self._keep:
                    self._engines.popitem(last=False)
            self._engines.move_to_end(key)
            return self._engines[key]

    def loaded(self) -> list["SpeechEngines"]:
        with self._lock:
            return list(self._engines.values())


_ENGINES = _LoadedEngines()


def worker_engines(settings: Settings) -> "SpeechEngines":
    """The speech models of this worker process, loaded on first use and kept for every call whose
    model settings are the same (language, channel map and limits do not reload them)."""
    return _ENGINES.get(settings)


# ---------------------------------------------------------------------------- model-call limit
@contextmanager
def model_call_limit(worker: str, slots: int) -> Iterator[str]:
    """A Prefect global concurrency limit of ``slots`` for this flow run's model calls, named after
    the worker and deleted when the run ends; yields its name.

    Made by the flow itself: acquiring a limit that does not exist does not wait at all (Prefect
    skips it with a warning) and would leave model calls unbounded.  One limit per run, not one per
    host: the API server keeps slot leases in memory, so a slot held by a run killed with SIGKILL
    would be lost to a shared limit — with one slot, every later run on the host would wait forever
    — while a killed run's own limit is simply never used again."""
    from prefect.client.orchestration import get_client

    if slots < 1:
        raise ValueError(f"gpu_slots must be at least 1 (got {slots})")
    name = MODEL_LIMIT_PREFIX + worker
    with get_client(sync_client=True) as client:
        client.upsert_global_concurrency_limit_by_name(name, slots)
    try:
        yield name
    finally:
        try:
            with get_client(sync_client=True) as client:
                client.delete_global_concurrency_limit_by_name(name)
        except Exception as exc:  # noqa: BLE001 - a leftover limit is unused, never a reason to fail the run
            log.warning("could not delete concurrency limit %s: %s", name, exc)


def _model_slot(limit: str) -> Callable[[], AbstractContextManager[None]]:
    """One slot of the limit around each model call of :func:`analyse_call`.  ``strict``: the limit
    exists (the flow made it), so a missing one is an error rather than unbounded concurrency; a
    failed lease renewal (a busy API) must not abort a model call that has the slot."""
    from prefect.concurrency.sync import concurrency

    return lambda: concurrency(limit, occupy=1, strict=True, raise_on_lease_renewal_failure=False)


# ---------------------------------------------------------------------------- retries
def _device_out_of_memory(exc: BaseException | None) -> bool:
    if isinstance(exc, DeviceOutOfMemoryError):
        return True
    torch = sys.modules.get("torch")  # a process that never imported torch raised no torch error
    return torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError)


def is_transient_error(exc: BaseException | None) -> bool:
    """Whether ``exc`` may not happen again on retry: the device ran out of memory, or the database
    was busy or unreachable.  Decided by type, so bad input (:class:`CallError`) never is, whatever
    its message says — and a database whose disk is full is not busy: the batch stops on it
    (:func:`pipelines.shell.batch.Batch.run`) rather than retrying every call."""
    from sqlalchemy.exc import OperationalError

    from qa_rules.files import disk_full

    return (isinstance(exc, OperationalError) and not disk_full(exc)) or _device_out_of_memory(exc)


def _is_transient(task_obj, task_run, state) -> bool:
    """Prefect's retry condition: retry only what may succeed next time; after running out of device
    memory, retry with smaller batches."""
    exc = state.data if isinstance(getattr(state, "data", None), BaseException) else None
    if exc is None:
        try:
            state.result(raise_on_failure=True)
        except BaseException as raised:  # noqa: BLE001
            exc = raised
    if _device_out_of_memory(exc):
        _free_device_memory()
    return is_transient_error(exc)


def _free_device_memory() -> None:
    """After running out of device memory: smaller transcription and diarization batches in every
    loaded engine set, and torch's cached blocks given back (when torch is loaded at all)."""
    for engines in _ENGINES.loaded():
        engines.shrink_batches()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


_RETRY = {"retries": 2, "retry_delay_seconds": 2, "retry_condition_fn": _is_transient, "cache_policy": NO_CACHE}


# ---------------------------------------------------------------------------- tasks
@task(name="analyse call", **_RETRY)
def analyse_task(call: CallSource, settings: Settings, cache_dir: str, model_limit: str) -> CallAnalysis:
    """:func:`analyse_call` for one call, or the content-keyed cache when it has the result.  Model
    calls take a slot of ``model_limit`` each; decoding and measuring run beside other calls'."""
    key, hit = cached_analysis(call, settings, cache_dir)
    if hit is not None:
        return hit
    analysed = analyse_call(call, settings, lambda: worker_engines(settings), _model_slot(model_limit))
    AnalysisCache(Path(cache_dir)).put(key, analysed.conversation, analysed.measures)
    return CallAnalysis(key, False, analysed)


@task(name="score and store", **_RETRY)
def score_and_store(
    analysed: AnalysedCall, rulebook: "Rulebook", out_dir: str, store: Store, worker: str, input_key: str,
    rulebook_key: str, redact: bool,
) -> Scorecard:
    """:func:`score_and_store_call` as a task: retried when the database is busy."""
    return score_and_store_call(analysed, rulebook, out_dir, store, worker, input_key, rulebook_key, redact)


def _listed(reasons: dict[str, str], out_dir: str) -> list[str]:
    """Markdown lines for the summary artifact, the first :data:`LISTED_PROBLEMS` by name."""
    return [f"- {line}" for line in listed_problems([f"`{k}`: {v}" for k, v in reasons.items()],
                                                     f"`{Path(out_dir) / 'summary.csv'}` (column error)")]


@task(name="batch summary", cache_policy=NO_CACHE)
def summarise(rows: list[SummaryRow], out_dir: str, rulebook_label: str, result: BatchResult) -> str:
    from prefect.artifacts import create_markdown_artifact, create_table_artifact

    _, html = write_summary(rows, Path(out_dir), rulebook=rulebook_label)
    ok = [r for r in rows if r.status == "ok"]
    flagged = [r for r in ok if r.flags or r.fatal or not r.passed]
    markdown = "\n".join(
        [
            "# QA batch summary",
            f"- calls: {result.total}; scored now: {len(result.done)}; failed: {len(result.failed)}; "
            f"already finished or held elsewhere: {len(result.skipped)}",
            f"- transcribed now: {len(result.transcribed)}; from cache: {len(result.cached)}",
            f"- passed QA: {sum(1 for r in ok if r.passed)} / {len(ok)}",
            f"- scorecards and summary: `{out_dir}`",
            *(["", "## Calls that could not be processed"] + _listed(result.failed, out_dir) if result.failed else []),
            *(["", "## Entries refused at the source"] + _listed(result.refused, out_dir) if result.refused else []),
        ]
    )
    try:
        create_markdown_artifact(markdown=markdown, key="qa-batch-summary", description="QA batch summary")
        create_table_artifact(
            table=[{"call_id": r.call_id, "percent": r.percent, "passed": r.passed, "fatal": r.fatal, "failed_categories": r.failed_categories,
                    "situations": r.situations, "flags": r.flags} for r in flagged],
            key="qa-flagged-calls", description="Calls QA should review",
        )
    except Exception as exc:  # noqa: BLE001 - artifacts are a report, never a reason to lose results
        get_run_logger().warning("could not publish artifacts: %s", exc)
    return str(html)


# ---------------------------------------------------------------------------- flow
@flow(name="qa-batch", log_prints=True, task_runner=ThreadPoolTaskRunner(max_workers=MAX_IN_FLIGHT))
def qa_batch(
    source: str,
    rulebook: str | None = None,
    out: str = "out",
    store_url: str | None = None,
    settings: Settings | None = None,
    cache_dir: str | None = None,
    gpu_slots: int = 1,
    force: bool = False,
) -> BatchResult:
    """Score every call of ``source`` (folder, glob, or manifest CSV) into ``out`` and the store.

    Parameters: ``rulebook`` (YAML path; default: by call language), ``out`` (scorecards, summary,
    SQLite store), ``store_url`` (SQLAlchemy URL, e.g. ``postgresql://…``; default SQLite in
    ``out``), ``cache_dir`` (analysis cache; default ``out/.cache``), ``gpu_slots`` (concurrent
    model calls of this run, bounded by a Prefect concurrency limit), ``force`` (re-score calls
    already finished with the same inputs).

    Calls are submitted to the task runner, ``gpu_slots + 1`` in flight, so that one call decodes or
    is measured while others hold the model slots; finished analyses are scored and stored here, in
    the flow's thread, one at a time.
    """
    return run_batch(PrefectSteps(), source, rulebook, out, store_url, settings, cache_dir, gpu_slots, force)


class PrefectSteps:
    """:func:`run_batch`'s steps in the flow: Prefect tasks on the flow's thread-pool runner, model
    calls bounded by a Prefect global concurrency limit, the summary also published as artifacts."""

    prefect = True
    window = None  # the batch's gpu_slots + 1

    def model_limit(self, worker: str, slots: int) -> AbstractContextManager[str]:
        return model_call_limit(worker, slots)

    def analyse(self, call: CallSource, settings: Settings, cache_dir: str, limit: str):
        return analyse_task.submit(call, settings, cache_dir, limit)

    def flush(self) -> None:  # every call is submitted as it comes
        pass

    def score_and_store(self, call_id: str, analysis: CallAnalysis, rulebooks: "Rulebooks", *rest) -> SummaryRow:
        analysed = analysis.analysed
        rulebook = rulebooks.for_language(analysed.conversation.language)
        return SummaryRow.from_scorecard(score_and_store(analysed, rulebook, *rest))

    def summarise(self, rows: list[SummaryRow], out_dir: str, rulebook_label: str, result: BatchResult) -> str:
        return summarise(rows, out_dir, rulebook_label, result)
