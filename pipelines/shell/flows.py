"""Prefect orchestration: ``qa_batch`` runs the nightly QA batch over a folder, a glob or a manifest.

The flow is a thin shell over the plain stage functions (:mod:`pipelines.stages.analysis`,
:mod:`pipelines.stages.scoring`); it adds what a night on GPU workers needs:

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

import hashlib
import logging
import os
import queue
import sys
import threading
from collections import OrderedDict
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE as NO_CACHE
from prefect.task_runners import ThreadPoolTaskRunner

from models.errors import DeviceOutOfMemoryError, ModelUnavailableError
from pipelines.reports.summary import SummaryRow, rows_from_store, write_summary
from pipelines.results.store import Store, default_store_url, display_url, worker_identity
from pipelines.settings import Settings
from pipelines.shell.cache import AnalysisCache, analysis_key, audio_sha256
from pipelines.shell.sources import SourceCalls
from pipelines.stages.analysis import AnalysedCall, analyse_call, readable_audio
from qa_rules.files import OutsideOutputError, make_private_dir
from qa_rules.records import CallError, CallSource, Scorecard

if TYPE_CHECKING:
    from pipelines.stages.engines import ModelSettings, SpeechEngines
    from qa_rules.rulebook import Rulebook

log = logging.getLogger(__name__)

BATCH_STORE_ENV = "CALLQA_BATCH_STORE_URL"
"""The store URL when it is not a flow parameter: Prefect keeps flow parameters in its database and
shows them in its UI, so a URL with a password is handed over in the environment instead."""

MODEL_LIMIT_PREFIX = "callqa-model-calls-"
"""Name prefix of the Prefect global concurrency limit that bounds a run's model calls (see
:func:`model_call_limit`)."""
MAX_IN_FLIGHT = 16
"""Threads of the flow's task runner: an upper bound on calls in flight whatever ``gpu_slots`` says."""

SLOT_WAIT_ENV = "PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS"
os.environ.setdefault(SLOT_WAIT_ENV, "1")
"""A call waiting for a model slot asks again after the Prefect server's ``Retry-After``, which by
default grows to the slot's average occupancy, up to 30 s: the core would idle that long after
each model call (a 22-call batch took minutes longer).  One second for the local (ephemeral) API
this process starts; a separately started ``prefect server`` wants the same variable (README)."""


# ---------------------------------------------------------------------------- hand-over from the CLI
@dataclass(frozen=True)
class LocalRun:
    """What ``callqa run`` has already done in this process, handed to the flow outside its
    parameters (Prefect serialises those to its API): the progress hook, the source it read to count
    the calls, and the rulebook it loaded to refuse a broken one before Prefect starts.  The flow
    uses each only when it is for the same source / rulebook path it was given, so a deployment run
    (no CLI) reads them itself."""

    progress: Callable[[str, str], None] | None = None
    source: str | None = None
    calls: SourceCalls | None = None
    rulebook_path: str | None = None
    rulebook: "Rulebook | None" = None


_local_run: LocalRun | None = None


@contextmanager
def local_run(handover: LocalRun) -> Iterator[None]:
    """Hand ``handover`` to the flow runs started inside this block."""
    global _local_run
    _local_run = handover
    try:
        yield
    finally:
        _local_run = None


@dataclass
class BatchResult:
    """What a run did: ``transcribed`` counts calls whose audio went through the models."""

    total: int = 0
    done: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    refused: dict[str, str] = field(default_factory=dict)
    """Entries of the source refused before processing (a bad or duplicate call id), by where they
    are (``manifest calls.csv, line 7``) → the reason."""
    skipped: list[str] = field(default_factory=list)
    """Finished earlier with the same inputs, or held by another live worker."""
    transcribed: list[str] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    out_dir: str = ""
    store_url: str = ""
    summary_html: str = ""

    @property
    def partial(self) -> bool:
        return bool(self.failed or self.refused)

    def as_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class CallAnalysis:
    key: str
    """Content key of the analysis (audio hash + model + parameters)."""
    cached: bool
    analysed: AnalysedCall


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


def require_model_files(settings: Settings) -> None:
    """Raise :class:`ModelUnavailableError` (with its fix) when a model the batch may need is not in
    the store.  Only files are checked: loading Whisper or importing pyannote.audio here would make
    every run pay seconds of start-up, even one with nothing to do (see README, "Lean start-up")."""
    from models.model_store import ModelStore

    store = ModelStore(settings.model_store)
    store.whisper(settings.asr_model)
    store.segmentation(settings.segmentation)
    store.speaker_embedding(settings.embedding)


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
    its message says."""
    from sqlalchemy.exc import OperationalError

    return isinstance(exc, OperationalError) or _device_out_of_memory(exc)


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
    from models.model_store import ModelStore

    path = readable_audio(call)
    model_dir = ModelStore(settings.model_store).whisper(settings.asr_model)
    key = analysis_key(audio_sha256(path), settings, model_dir, call.channel_map)
    cache = AnalysisCache(Path(cache_dir))
    hit = cache.get(key)
    if hit is not None:
        conversation, measures = hit
        conversation = conversation.model_copy(
            update={"call_id": call.call_id, "source": str(call.path), "metadata": call.metadata()}
        )
        return CallAnalysis(key, True, AnalysedCall(conversation, measures.model_copy(update={"call_id": call.call_id})))
    analysed = analyse_call(call, settings, lambda: worker_engines(settings), _model_slot(model_limit))
    cache.put(key, analysed.conversation, analysed.measures)
    return CallAnalysis(key, False, analysed)


@task(name="score and store", **_RETRY)
def score_and_store(
    analysed: AnalysedCall, rulebook: "Rulebook", out_dir: str, store: Store, worker: str, input_key: str,
    rulebook_key: str, redact: bool,
) -> Scorecard:
    """Write the call's conversation and measures beside its scorecard (JSON + HTML) and replace its
    rows in the store — retried when the database is busy; return the card."""
    from pipelines.stages.scoring import score_and_report

    out = Path(out_dir)
    analysed.write(out)
    card = score_and_report(analysed.conversation, analysed.measures, out, rulebook=rulebook)
    call_id = analysed.conversation.call_id
    store.save(
        call_id, worker, input_key, rulebook_key, analysed.conversation, analysed.measures, card,
        conversation_path=out / f"{call_id}.conversation.json", scorecard_path=out / f"{call_id}.scorecard.json",
        redact=redact,
    )
    return card


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
            *(["", "## Calls that could not be processed"] + [f"- `{k}`: {v}" for k, v in result.failed.items()] if result.failed else []),
            *(["", "## Entries refused at the source"] + [f"- `{k}`: {v}" for k, v in result.refused.items()] if result.refused else []),
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
    from pipelines.shell.sources import read_source
    from pipelines.stages.scoring import Rulebooks

    settings = settings or Settings.load()
    handed = _local_run or LocalRun()
    os.umask(0o077)  # transcripts, scorecards, reports and the store: owner-only, whoever writes them
    out_dir = Path(out)
    make_private_dir(out_dir)
    store = Store(store_url or os.environ.get(BATCH_STORE_ENV) or default_store_url(out_dir))
    cache_folder = str(Path(cache_dir) if cache_dir else out_dir / ".cache" / "analysis")
    rulebook_key = _rulebook_key(rulebook)
    rulebooks = Rulebooks(Path(rulebook) if rulebook else None,
                          handed.rulebook if rulebook and handed.rulebook_path == rulebook else None)
    # A missing model stops the run here with its fix, instead of failing every call one by one.
    require_model_files(settings)
    found = handed.calls if handed.calls is not None and handed.source == source else read_source(source)
    calls = found.calls
    store.register(calls)
    worker = worker_identity()
    result = BatchResult(total=len(found), out_dir=str(out_dir), store_url=display_url(store.url))
    rows: list[SummaryRow] = []
    notify = handed.progress or (lambda call_id, status: None)
    for entry in found.rejected:
        log.warning("%s: %s — skipped", entry.label, entry.reason)
        result.refused[entry.call_id or entry.label] = entry.reason
        rows.append(SummaryRow.failure(entry.call_id or entry.label, entry.reason))
        notify(entry.call_id or entry.label, "refused")

    finished: queue.Queue = queue.Queue()
    in_flight: dict[object, tuple[CallSource, str]] = {}

    def record(future) -> None:
        """Score and store one finished analysis, or record why the call failed (that call only)."""
        call, input_key = in_flight.pop(future)
        try:
            analysis: CallAnalysis = future.result()
            (result.cached if analysis.cached else result.transcribed).append(call.call_id)
            conversation = analysis.analysed.conversation
            card = score_and_store(
                analysis.analysed, rulebooks.for_language(conversation.language), str(out_dir),
                store, worker, input_key, rulebook_key, settings.redact_store,
            )
            rows.append(SummaryRow.from_scorecard(card))
            result.done.append(call.call_id)
            notify(call.call_id, "done")
        except CallError as exc:
            _record_failure(store, worker, call, exc.reason, result, rows)
            notify(call.call_id, "failed")
        except OutsideOutputError as exc:
            _record_failure(store, worker, call, str(exc), result, rows)
            notify(call.call_id, "failed")
        except ModelUnavailableError:
            for held, _ in [(call, input_key), *in_flight.values()]:  # the worker is at fault, not the calls
                store.release(held.call_id)
            raise
        except Exception as exc:  # noqa: BLE001 - one broken call must not cost the night's results
            _record_failure(store, worker, call, f"internal error ({type(exc).__name__}: {exc})", result, rows)
            notify(call.call_id, "failed")

    window = min(gpu_slots + 1, MAX_IN_FLIGHT)
    with model_call_limit(worker, gpu_slots) as limit:
        for call in calls:
            while len(in_flight) >= window:
                record(finished.get())
            # claimed only when about to be submitted: calls not started yet stay free for other workers
            input_key = _input_key(call, settings)
            if not store.claim(call.call_id, worker, input_key, rulebook_key, force=force):
                result.skipped.append(call.call_id)
                notify(call.call_id, "skipped")
                continue
            future = analyse_task.submit(call, settings, cache_folder, limit)
            in_flight[future] = (call, input_key)
            future.add_done_callback(finished.put)
        while in_flight:
            record(finished.get())
    # The summary covers every call of the source, including those finished earlier or elsewhere.
    rows += rows_from_store(store, {c.call_id for c in calls} - {r.call_id for r in rows})
    result.summary_html = summarise(rows, str(out_dir), rulebook or "default by language", result)
    return result


def _record_failure(store: Store, worker: str, call: CallSource, reason: str, result: BatchResult, rows: list) -> None:
    log.warning("call %s: %s — skipped", call.call_id, reason)
    store.mark_failed(call.call_id, worker, reason)
    result.failed[call.call_id] = reason
    rows.append(SummaryRow.failure(call.call_id, reason))


def _rulebook_key(rulebook: str | None) -> str:
    """What a finished call must have been scored with to be skipped: the rulebook file's content
    (the language defaults' when none is named), so any edit re-scores."""
    import qa_rules

    paths = [Path(rulebook)] if rulebook else [qa_rules.default_rulebook_path("zh"), qa_rules.default_rulebook_path("en")]
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:40]


def _input_key(call: CallSource, settings: Settings) -> str:
    """The store's record of what a finished call was analysed from (file identity + settings),
    cheap enough to check before claiming; the content hash guards the cache itself."""
    try:
        stat = call.path.stat()
        ident = f"{call.path.resolve()}:{stat.st_size}:{int(stat.st_mtime)}"
    except OSError:
        ident = str(call.path)
    data = f"{ident}|{settings.model_dump_json(exclude={'threads'})}|{call.channel_map}"
    return hashlib.sha256(data.encode()).hexdigest()[:40]
