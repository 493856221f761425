"""The QA batch as a plain function: claims, the analysis cache, scoring, the store and the summary.

:func:`run_batch` holds the batch's logic once.  It is handed its :class:`BatchSteps` — how a call
is analysed, scored and stored, how model calls are bounded, how the summary is published — so the
same loop runs in two shells:

- the Prefect flow ``qa-batch`` (:mod:`pipelines.shell.flows`), whose steps are Prefect tasks and a
  Prefect global concurrency limit: every run that may need the speech models;
- :class:`CacheOnlySteps`, here, with no Prefect at all: ``callqa run`` uses it when no Prefect
  server is configured and :meth:`Batch.answers_from_cache` finds every call finished or answered
  from the analysis cache (nothing to do, or a rulebook change).  Such a batch has no model work to
  orchestrate, and starting Prefect's local (ephemeral) API costs more than the whole re-score
  (README, "Lean start-up").  One call the cache cannot answer and the whole batch is the flow's.

This module must not import Prefect or a speech model: the cache-only run pays for neither.
"""

from __future__ import annotations

import gc
import hashlib
import logging
import os
import queue
from concurrent.futures import Future
from concurrent.futures.process import BrokenProcessPool
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Protocol

from models.errors import ModelUnavailableError
from pipelines.reports.summary import SummaryRow, rows_from_store, write_summary
from pipelines.results.store import ScoredRows, Store, default_store_url, display_url, scored_rows, worker_identity
from pipelines.settings import Settings
from pipelines.shell.cache import AnalysisCache, AudioHashes, analysis_basis, analysis_key
from pipelines.shell.sources import SourceCalls
from pipelines.stages.analysed import AnalysedCall, readable_audio
from qa_rules.files import OutOfSpaceError, OutsideOutputError, disk_full, first_line, make_private_dir
from qa_rules.records import CallError, CallSource, Scorecard

if TYPE_CHECKING:
    from pipelines.stages.scoring import Rulebooks
    from qa_rules.rulebook import Rulebook

log = logging.getLogger(__name__)

BATCH_STORE_ENV = "CALLQA_BATCH_STORE_URL"
"""The store URL when it is not a flow parameter: Prefect keeps flow parameters in its database and
shows them in its UI, so a URL with a password is handed over in the environment instead."""

MAX_IN_FLIGHT = 16
"""Threads of the flow's task runner: an upper bound on calls in flight whatever ``gpu_slots`` says."""


# ---------------------------------------------------------------------------- hand-over from the CLI
@dataclass(frozen=True)
class LocalRun:
    """What ``callqa run`` has already done in this process, handed to the batch outside the flow's
    parameters (Prefect serialises those to its API): the progress hook, the source it read to count
    the calls, and the rulebook it loaded to refuse a broken one before anything starts.  The batch
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
    """Hand ``handover`` to the batches (and flow runs) started inside this block."""
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
    prefect: bool = True
    """Whether the batch ran as a Prefect flow run; ``False`` when every call was finished or
    answered from the analysis cache and no Prefect server was configured (:class:`CacheOnlySteps`)."""

    @property
    def partial(self) -> bool:
        return bool(self.failed or self.refused)

    def as_dict(self) -> dict:
        return asdict(self)


class CallAnalysis:
    """A call's analysis: its content key, whether it came from the cache, and the analysed call.

    An analysis planned from the cache (:meth:`Batch.answers_from_cache`) is read from it only when
    first asked for — in the scoring process that scores the call: parsing every cached conversation
    in the batch's process, before any call was scored, was a sixth of a 500-call re-score."""

    __slots__ = ("key", "cached", "_analysed", "_load")

    def __init__(self, key: str, cached: bool, analysed: AnalysedCall | None = None,
                 load: "Callable[[], AnalysedCall] | None" = None) -> None:
        self.key = key
        """Content key of the analysis (audio hash + model + parameters)."""
        self.cached = cached
        self._analysed, self._load = analysed, load

    @property
    def analysed(self) -> AnalysedCall:
        """The analysed call; a cache entry that is damaged or gone by now is the call's
        :class:`CallError`."""
        if self._analysed is None:
            self._analysed = self._load()
        return self._analysed


# ---------------------------------------------------------------------------- one call
def cached_analysis(call: CallSource, settings: Settings, cache_dir: str, deferred: bool = False,
                    basis: Callable[[], dict] | None = None) -> tuple[str, CallAnalysis | None]:
    """The call's analysis key, and its analysis from the content-keyed cache when it is there
    (renamed to this call: the cache is keyed by content, not by name).  Bad input (a missing or
    unreadable file) raises its :class:`CallError` here, before any model is thought of.

    ``deferred``: the entry is only found here, and read when the analysis is first asked for.
    ``basis``: gives the key's part from the settings and the model (:func:`analysis_basis`), kept by
    a batch for all its calls."""
    path = readable_audio(call)
    parts = basis() if basis is not None else analysis_basis_of(settings)
    key = analysis_key(AudioHashes(cache_dir).sha256(path), settings, None, call.channel_map, basis=parts)
    if deferred:
        found = AnalysisCache(Path(cache_dir)).has(key)
        return key, CallAnalysis(key, True, load=partial(read_cached_analysis, call, cache_dir, key)) if found else None
    analysed = _analysed_from_cache(call, cache_dir, key)
    return key, None if analysed is None else CallAnalysis(key, True, analysed)


def analysis_basis_of(settings: Settings) -> dict:
    """:func:`analysis_basis` of the settings and their Whisper model in the local store."""
    from models.model_store import ModelStore

    return analysis_basis(settings, ModelStore(settings.model_store).whisper(settings.asr_model))


def _analysed_from_cache(call: CallSource, cache_dir: str, key: str) -> AnalysedCall | None:
    hit = AnalysisCache(Path(cache_dir)).get(key)
    if hit is None:
        return None
    conversation, measures = hit
    conversation = conversation.model_copy(
        update={"call_id": call.call_id, "source": str(call.path), "metadata": call.metadata()}
    )
    return AnalysedCall(conversation, measures.model_copy(update={"call_id": call.call_id}))


def read_cached_analysis(call: CallSource, cache_dir: str, key: str) -> AnalysedCall:
    """A planned cache entry, read now; one that is damaged (or was removed since) fails the call,
    and a damaged one is removed, so that the next run analyses the recording again."""
    analysed = _analysed_from_cache(call, cache_dir, key)
    if analysed is None:
        AnalysisCache(Path(cache_dir)).discard(key)
        raise CallError(call.call_id, "cache", "its cached analysis was damaged or removed while the batch ran — "
                                               "run the batch again to analyse the recording anew")
    return analysed


def score_call(analysed: AnalysedCall, rulebook: "Rulebook", out: Path) -> Scorecard:
    """Write the call's conversation and measures beside its scorecard (JSON + HTML); the card.
    Touches no store, so it may run in another process (:class:`ScoringPool`)."""
    from pipelines.stages.scoring import score_and_report
    from qa_rules.memo import content_key

    written = analysed.write(out)
    return score_and_report(analysed.conversation, analysed.measures, out, rulebook=rulebook,
                            content=content_key(*written))


def rows_of(card: Scorecard, analysed: AnalysedCall, out: Path, redact: bool) -> ScoredRows:
    """The scored call's rows as the store writes them (the files are ``out``'s)."""
    call_id = analysed.conversation.call_id
    return scored_rows(call_id, analysed.conversation, analysed.measures, card,
                       conversation_path=out / f"{call_id}.conversation.json",
                       scorecard_path=out / f"{call_id}.scorecard.json", redact=redact)


def store_call(card: Scorecard, analysed: AnalysedCall, out: Path, store: Store, worker: str, input_key: str,
               rulebook_key: str, redact: bool) -> None:
    """Replace the scored call's rows in the store (the files are ``out``'s)."""
    store.save_rows(rows_of(card, analysed, out, redact), worker, input_key, rulebook_key)


def score_and_store_call(
    analysed: AnalysedCall, rulebook: "Rulebook", out_dir: str, store: Store, worker: str, input_key: str,
    rulebook_key: str, redact: bool,
) -> Scorecard:
    """Write the call's conversation and measures beside its scorecard (JSON + HTML) and replace its
    rows in the store; return the card."""
    out = Path(out_dir)
    card = score_call(analysed, rulebook, out)
    store_call(card, analysed, out, store, worker, input_key, rulebook_key, redact)
    return card


# ---------------------------------------------------------------------------- the two shells' steps
class BatchSteps(Protocol):
    """How :func:`run_batch` analyses, scores and publishes — Prefect tasks in the flow, plain
    calls in :class:`CacheOnlySteps`."""

    prefect: bool
    window: int | None
    """Calls in flight at once; ``None``: the batch's ``gpu_slots + 1``."""

    def model_limit(self, worker: str, slots: int) -> AbstractContextManager[str]:
        """Bounds this run's concurrent model calls; yields what :meth:`analyse` is handed."""

    def analyse(self, call: CallSource, settings: Settings, cache_dir: str, limit: str) -> Future:
        """Start the call's analysis; a future of its :class:`CallAnalysis`."""

    def flush(self) -> None:
        """Start whatever :meth:`analyse` holds back to send with later calls: the batch is about
        to wait for a call to finish, and nothing else would send them."""

    def score_and_store(self, call_id: str, analysis: CallAnalysis, rulebooks: "Rulebooks", out_dir: str, store: Store,
                        worker: str, input_key: str, rulebook_key: str, redact: bool) -> SummaryRow:
        """Score the call (with its language's rulebook), write its files, replace its rows in the
        store; its summary row."""

    def summarise(self, rows: list[SummaryRow], out_dir: str, rulebook_label: str, result: BatchResult) -> str:
        """Write the batch summary; the path of its HTML page."""


class CacheOnlySteps:
    """Steps that never load a model: each call's analysis (or its bad-input error) was found by
    :meth:`Batch.answers_from_cache`.  Calls are scored one after the other in this thread, or, with
    a :class:`ScoringPool` (:meth:`for_batch`), in worker processes while this thread stores them."""

    prefect = False

    def __init__(self, answers: dict[str, "CallAnalysis | CallError"], pool: "ScoringPool | None" = None):
        self._answers = answers
        self._pool = pool
        self.window = pool.window if pool else None

    @classmethod
    @contextmanager
    def for_batch(cls, batch: "Batch", answers: dict[str, "CallAnalysis | CallError"]) -> Iterator["CacheOnlySteps"]:
        """Steps for ``batch``, with a pool of scoring processes when there are calls enough to be
        worth one and more than one core (:func:`pipelines.shell.rescore.worker_count`)."""
        from pipelines.shell.rescore import worker_count

        analyses = {c: a for c, a in answers.items() if isinstance(a, CallAnalysis)}
        workers = worker_count(len(analyses))
        if workers <= 1:
            yield cls(answers)
            return
        with ScoringPool(batch, analyses, workers) as pool:
            yield cls(answers, pool)

    def model_limit(self, worker: str, slots: int) -> AbstractContextManager[str]:
        return nullcontext("")

    def analyse(self, call: CallSource, settings: Settings, cache_dir: str, limit: str) -> Future:
        answer = self._answers.pop(call.call_id, None)
        if answer is None:  # finished or held when planned, wanted again now (another run changed it)
            try:
                answer = cached_analysis(call, settings, cache_dir)[1] or CallError(
                    call.call_id, "cache", "another run changed this call while it was planned — run the batch again")
            except CallError as exc:
                answer = exc
        if isinstance(answer, CallAnalysis) and self._pool is not None:
            return self._pool.score(call.call_id, answer)
        future: Future = Future()
        if isinstance(answer, CallError):
            future.set_exception(answer)
        else:
            future.set_result(answer)
        return future

    def flush(self) -> None:
        if self._pool is not None:
            self._pool.flush()

    def score_and_store(self, call_id: str, analysis: CallAnalysis, rulebooks: "Rulebooks", out_dir: str, store: Store,
                        worker: str, input_key: str, rulebook_key: str, redact: bool) -> SummaryRow:
        scored = self._pool.scored_of(call_id) if self._pool is not None else None
        if scored is None:  # no pool, or its worker died: scored here
            analysed = analysis.analysed
            rulebook = rulebooks.for_language(analysed.conversation.language)
            card = score_and_store_call(analysed, rulebook, out_dir, store, worker, input_key, rulebook_key, redact)
            return SummaryRow.from_scorecard(card)
        rows, summary = scored
        store.save_rows(rows, worker, input_key, rulebook_key)
        return summary

    def summarise(self, rows: list[SummaryRow], out_dir: str, rulebook_label: str, result: BatchResult) -> str:
        _, html = write_summary(rows, Path(out_dir), rulebook=rulebook_label)
        return str(html)


# ---------------------------------------------------------------------------- scoring processes
@dataclass(frozen=True)
class _Forked:
    """What the scoring processes inherit when they are forked: the analyses read while planning
    (never changed afterwards, so a worker forked late sees them all), the rulebooks, the folder."""

    analyses: dict[str, CallAnalysis]
    rulebooks: "Rulebooks"
    out: Path
    redact: bool


_forked: _Forked | None = None


class ScoringPool:
    """Forked worker processes that write each call's files and score it, while the batch's thread
    claims calls and stores them: scoring is pure Python, one core per process, and it is most of a
    re-score after the store.  What a worker returns is the call's store rows and summary row (plain
    values, built there: unpickling a whole scorecard here cost ~1 ms a call of the one thread that
    writes the store, the batch's bottleneck once outcomes are reused); an error is returned as what
    the batch needs to record it (its type and message) — so one bad call fails alone, as in-process.
    A worker that dies (killed, out of memory) costs nothing either: its calls are scored in the
    batch's process (:meth:`scored_of` gives ``None``), and so is every call after it.

    Claimed calls go to the workers :data:`CALLS_PER_JOB` at a time (:meth:`flush` sends fewer when
    the batch is about to wait): a job costs this thread ~0.3 ms to send and take back, as much as
    storing the call, and four calls a job pay it once."""

    def __init__(self, batch: "Batch", analyses: dict[str, CallAnalysis], workers: int) -> None:
        self._batch, self._analyses, self._workers = batch, analyses, workers
        self.window = 2 * workers * CALLS_PER_JOB + CALLS_PER_JOB
        """Calls in flight: a job being scored and one waiting per worker while this thread stores,
        and the calls gathering for the next job."""
        self._scored: dict[str, tuple[ScoredRows, SummaryRow]] = {}
        self._gathered: list[tuple[str, CallAnalysis, Future]] = []
        self._pool = None

    def __enter__(self) -> "ScoringPool":
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from pipelines.shell.rescore import preload

        global _forked
        preload(None, rulebooks=False)  # the rule engine and the scorecard template, loaded once
        self._batch.rulebooks.load_every()  # into the batch's own Rulebooks, which the workers inherit
        _forked = _Forked(dict(self._analyses), self._batch.rulebooks, self._batch.out_dir,
                          self._batch.settings.redact_store)
        self._batch.store.engine.dispose()  # no open database connection is handed to the children
        gc.freeze()  # what is loaded stays out of the workers' cycle collections (shared, not copied)
        self._pool = ProcessPoolExecutor(self._workers, mp_context=multiprocessing.get_context("fork"),
                                         initializer=_worker_collects_by_count)
        return self

    def __exit__(self, *exc_info) -> None:
        global _forked
        try:
            self._pool.shutdown(wait=True, cancel_futures=True)
        finally:
            _forked = None
            gc.unfreeze()

    def score(self, call_id: str, analysis: CallAnalysis) -> Future:
        """A future of ``analysis``, done when a worker has scored it (:meth:`scored_of` then has its
        rows).  The call is sent with the next ones, :data:`CALLS_PER_JOB` a job, or by :meth:`flush`."""
        done: Future = Future()
        self._gathered.append((call_id, analysis, done))
        if len(self._gathered) >= CALLS_PER_JOB:
            self.flush()
        return done

    def flush(self) -> None:
        """Send the calls gathered so far as one job."""
        group, self._gathered = self._gathered, []
        if not group:
            return
        # a call read after planning (not in what the workers inherited) travels with its job
        sent = [(call_id, None if self._analyses.get(call_id) is analysis else analysis) for call_id, analysis, _ in group]
        try:
            job = self._pool.submit(_score_forked_calls, sent)
        except BrokenProcessPool:
            for _, analysis, done in group:
                done.set_result(analysis)
            return
        job.add_done_callback(lambda finished: self._settle(finished, group))

    def scored_of(self, call_id: str) -> tuple[ScoredRows, SummaryRow] | None:
        """The store rows and summary row a worker made for the call (once), ``None`` when the call
        is to be scored here."""
        return self._scored.pop(call_id, None)

    def _settle(self, job: Future, group: list[tuple[str, CallAnalysis, Future]]) -> None:
        try:
            answers = job.result()
        except BrokenProcessPool:  # the worker died, not the calls: scored in the batch's process
            for _, analysis, done in group:
                done.set_result(analysis)
            return
        except BaseException as exc:  # noqa: BLE001 - a job that could not even be sent: its calls' failure
            for _, _, done in group:
                done.set_exception(exc)
            return
        for (call_id, analysis, done), (kind, payload) in zip(group, answers):
            if kind == "scored":
                self._scored[call_id] = payload
                done.set_result(analysis)
            else:
                done.set_exception(_rebuilt_error(kind, payload))


CALLS_PER_JOB = 4
"""Calls a scoring process is sent at a time (:class:`ScoringPool`)."""


def _score_forked_calls(calls: list[tuple[str, CallAnalysis | None]]) -> list[tuple[str, object]]:
    """In a worker: :func:`_score_forked` for each call of a job, in order."""
    return [_score_forked(call_id, travelling) for call_id, travelling in calls]


COLLECT_EVERY_CALLS = 256
"""A scoring process's cycle collection runs once per this many calls instead of whenever enough
objects were allocated: scoring a call allocates tens of thousands of short-lived objects and
leaves no cycle, and the automatic collections over them were ~0.4 ms of a call's ~3 ms.  Once
every 256 calls still frees whatever cycle a rare path (an error's traceback) leaves."""
_scored_since_collection = 0


def _worker_collects_by_count() -> None:
    """A scoring process's start: automatic cycle collection off (see :data:`COLLECT_EVERY_CALLS`)."""
    gc.disable()


def _collect_now_and_then() -> None:
    global _scored_since_collection
    _scored_since_collection += 1
    if _scored_since_collection >= COLLECT_EVERY_CALLS:
        _scored_since_collection = 0
        gc.collect()


def _score_forked(call_id: str, travelling: CallAnalysis | None) -> tuple[str, object]:
    """In a worker: score one call; ``("scored", (store rows, summary row))``, or the error as
    :func:`_rebuilt_error` takes it.

    An error travels as plain strings, never as a pickled exception: what the batch records of it
    is its kind (a bad call, a name outside the output folder, anything else), its type's name and
    its message, and strings cross back whatever the exception held."""
    _collect_now_and_then()
    state = _forked
    analysis = travelling or state.analyses[call_id]
    try:
        analysed = analysis.analysed
        card = score_call(analysed, state.rulebooks.for_language(analysed.conversation.language), state.out)
        return "scored", (rows_of(card, analysed, state.out, state.redact), SummaryRow.from_scorecard(card))
    except CallError as exc:
        return "call", (exc.call, exc.stage, exc.reason)
    except OutsideOutputError as exc:
        return "outside", str(exc)
    except OSError as exc:  # with its errno: a full disk stops the batch instead of failing the call
        return "oserror", (exc.errno, exc.strerror, exc.filename, str(exc))
    except Exception as exc:  # noqa: BLE001 - recorded by the batch like any error of the call
        return "error", (type(exc).__name__, str(exc))


def _rebuilt_error(kind: str, payload) -> Exception:
    """The worker's error as the batch records it (:meth:`Batch.run`): the same type, or for an
    unexpected error one of the same name, and the same message."""
    if kind == "call":
        return CallError(*payload)
    if kind == "outside":
        return OutsideOutputError(payload)
    if kind == "oserror":
        number, strerror, filename, message = payload
        return OSError(number, strerror, filename) if number is not None and strerror else OSError(message)
    name, message = payload
    return type(name, (Exception,), {"__str__": lambda self: message})()


# ---------------------------------------------------------------------------- the batch
@dataclass
class Batch:
    """One run's inputs, resolved once: the calls, the store, the rulebooks and their key."""

    source: SourceCalls
    settings: Settings
    out_dir: Path
    store: Store
    cache_folder: str
    rulebook_label: str
    rulebook_key: str
    rulebooks: "Rulebooks"
    gpu_slots: int
    force: bool
    notify: Callable[[str, str], None]
    _input_keys: dict[str, str] = field(default_factory=dict, repr=False)
    _basis: dict | None = field(default=None, repr=False)

    def input_key(self, call: CallSource) -> str:
        """:func:`call_input_key`, worked out once per call of this batch (planning, then claiming)."""
        key = self._input_keys.get(call.call_id)
        if key is None:
            key = self._input_keys[call.call_id] = call_input_key(call, self.settings)
        return key

    def analysis_basis(self) -> dict:
        """The analysis key's part from the settings and the model, once per batch."""
        if self._basis is None:
            self._basis = analysis_basis_of(self.settings)
        return self._basis

    def answers_from_cache(self) -> dict[str, "CallAnalysis | CallError"] | None:
        """Every call the batch would take up, answered without a model: its analysis from the
        cache, or the bad-input error that fails it; ``None`` as soon as one call needs the models.
        Calls finished with the same inputs (or held by a live worker) need no answer."""
        answers: dict[str, CallAnalysis | CallError] = {}
        inputs = {call.call_id: self.input_key(call) for call in self.source.calls}
        wanted = self.store.wanted(inputs, self.rulebook_key, self.force)
        for call in self.source.calls:
            if call.call_id not in wanted:
                continue
            try:
                answer = cached_analysis(call, self.settings, self.cache_folder, deferred=True, basis=self.analysis_basis)[1]
            except CallError as exc:
                answer = exc
            if answer is None:
                return None
            answers[call.call_id] = answer
        return answers

    def run(self, steps: BatchSteps) -> BatchResult:
        """Score every call into the output folder and the store.

        Calls are handed to ``steps.analyse`` ``gpu_slots + 1`` at a time, so that one call decodes
        or is measured while others hold the model slots; finished analyses are scored and stored
        here, in this thread, one at a time."""
        store, worker, settings, notify = self.store, worker_identity(), self.settings, self.notify
        calls = self.source.calls
        result = BatchResult(total=len(self.source), out_dir=str(self.out_dir), store_url=display_url(store.url),
                             prefect=steps.prefect)
        rows: list[SummaryRow] = []
        for entry in self.source.rejected:
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
                rows.append(steps.score_and_store(
                    call.call_id, analysis, self.rulebooks, str(self.out_dir), store, worker, input_key,
                    self.rulebook_key, settings.redact_store,
                ))
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
                if disk_full(exc):  # the machine is at fault, not the call: every call after it would fail too
                    _stop_for_full_disk(store, [call, *(held for held, _ in in_flight.values())], result, exc)
                _record_failure(store, worker, call, f"internal error ({type(exc).__name__}: {exc})", result, rows)
                notify(call.call_id, "failed")

        def next_finished():
            if finished.empty():  # about to wait: calls the steps hold back must go now
                steps.flush()
            return finished.get()

        window = steps.window or min(self.gpu_slots + 1, MAX_IN_FLIGHT)
        with steps.model_limit(worker, self.gpu_slots) as limit:
            for call in calls:
                while len(in_flight) >= window:
                    record(next_finished())
                # claimed only when about to be submitted: calls not started yet stay free for other workers
                input_key = self.input_key(call)
                if not store.claim(call.call_id, worker, input_key, self.rulebook_key, force=self.force):
                    result.skipped.append(call.call_id)
                    notify(call.call_id, "skipped")
                    continue
                future = steps.analyse(call, settings, self.cache_folder, limit)
                in_flight[future] = (call, input_key)
                future.add_done_callback(finished.put)
            while in_flight:
                record(next_finished())
        # The summary covers every call of the source, including those finished earlier or elsewhere.
        rows += rows_from_store(store, {c.call_id for c in calls} - {r.call_id for r in rows})
        result.summary_html = steps.summarise(rows, str(self.out_dir), self.rulebook_label, result)
        return result


def open_batch(
    source: str,
    rulebook: str | None = None,
    out: str = "out",
    store_url: str | None = None,
    settings: Settings | None = None,
    cache_dir: str | None = None,
    gpu_slots: int = 1,
    force: bool = False,
) -> Batch:
    """Resolve a run's inputs (the parameters are the flow's: see
    :func:`pipelines.shell.flows.qa_batch`): the output folder (owner-only), the store with every
    call of the source registered, the rulebooks; a missing model stops the run here with its fix."""
    from pipelines.shell.sources import read_source
    from pipelines.stages.scoring import Rulebooks

    settings = settings or Settings.load()
    handed = _local_run or LocalRun()
    os.umask(0o077)  # transcripts, scorecards, reports and the store: owner-only, whoever writes them
    out_dir = Path(out)
    make_private_dir(out_dir)
    store = Store(store_url or os.environ.get(BATCH_STORE_ENV) or default_store_url(out_dir))
    rulebooks = Rulebooks(Path(rulebook) if rulebook else None,
                          handed.rulebook if rulebook and handed.rulebook_path == rulebook else None)
    # A missing model stops the run here with its fix, instead of failing every call one by one.
    require_model_files(settings)
    found = handed.calls if handed.calls is not None and handed.source == source else read_source(source)
    store.register(found.calls)
    return Batch(
        source=found, settings=settings, out_dir=out_dir, store=store,
        cache_folder=str(Path(cache_dir) if cache_dir else out_dir / ".cache" / "analysis"),
        rulebook_label=rulebook or "default by language", rulebook_key=rulebook_content_key(rulebook),
        rulebooks=rulebooks, gpu_slots=gpu_slots, force=force,
        notify=handed.progress or (lambda call_id, status: None),
    )


def run_batch(steps: BatchSteps, *args, **kwargs) -> BatchResult:
    """:func:`open_batch` with these parameters, run with ``steps``."""
    return open_batch(*args, **kwargs).run(steps)


def _stop_for_full_disk(store: Store, held: list[CallSource], result: BatchResult, exc: Exception) -> None:
    """Give the calls this run holds back to the store (best effort: the store's own disk may be the
    full one; a claim left behind is dead with this process and taken over by the next run) and stop
    the batch with :class:`OutOfSpaceError`, saying what was kept and what to do."""
    for call in held:
        try:
            store.release(call.call_id)
        except Exception:  # noqa: BLE001 - see above
            log.debug("could not release %s after the disk filled", call.call_id, exc_info=True)
    finished = len(result.done) + len(result.failed)
    raise OutOfSpaceError(
        f"no space left on the disk ({first_line(exc)}) — the batch stopped: {len(result.done)} call(s) were scored and stored "
        f"before it, {result.total - finished - len(result.skipped)} are left for the next run; free space under "
        f"{result.out_dir} (and on the store's disk) and run `callqa run` again: finished calls are skipped"
    ) from exc


def _record_failure(store: Store, worker: str, call: CallSource, reason: str, result: BatchResult, rows: list) -> None:
    log.warning("call %s: %s — skipped", call.call_id, reason)
    store.mark_failed(call.call_id, worker, reason)
    result.failed[call.call_id] = reason
    rows.append(SummaryRow.failure(call.call_id, reason))


def require_model_files(settings: Settings) -> None:
    """Raise :class:`ModelUnavailableError` (with its fix) when a model the batch may need is not in
    the store.  Only files are checked: loading Whisper or importing pyannote.audio here would make
    every run pay seconds of start-up, even one with nothing to do (see README, "Lean start-up")."""
    from models.model_store import ModelStore

    store = ModelStore(settings.model_store)
    store.whisper(settings.asr_model)
    store.segmentation(settings.segmentation)
    store.speaker_embedding(settings.embedding)


def rulebook_content_key(rulebook: str | None) -> str:
    """What a finished call must have been scored with to be skipped: the rulebook file's content
    (the language defaults' when none is named), so any edit re-scores."""
    import qa_rules

    paths = [Path(rulebook)] if rulebook else qa_rules.default_rulebook_paths()
    digest = hashlib.sha256()
    for path in paths:
        digest.update(path.read_bytes())
    return digest.hexdigest()[:40]


def call_input_key(call: CallSource, settings: Settings) -> str:
    """The store's record of what a finished call was analysed from (file identity + settings),
    cheap enough to check before claiming; the content hash guards the cache itself."""
    try:
        stat = call.path.stat()
        ident = f"{call.path.resolve()}:{stat.st_size}:{int(stat.st_mtime)}"
    except OSError:
        ident = str(call.path)
    data = f"{ident}|{settings.model_dump_json(exclude={'threads'})}|{call.channel_map}"
    return hashlib.sha256(data.encode()).hexdigest()[:40]
