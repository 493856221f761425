"""Prefect orchestration: ``qa_batch`` runs the nightly QA batch over a folder, a glob or a manifest.

The flow is a thin shell over the plain stage functions (:mod:`pipelines.stages.analysis`,
:mod:`pipelines.stages.scoring`); it adds what a night on GPU workers needs:

- **claims** in the results store, so several workers sharing one store never process a call twice
  and a call left behind by a killed worker is taken over on the next run;
- a **content-keyed cache** (:mod:`pipelines.shell.cache`): a re-run skips finished calls, and a rulebook
  change re-scores every call without transcription;
- **models loaded once per worker process** (:func:`worker_engines`), a per-worker limit on
  concurrent model calls (``gpu_slots``), and **retries** for transient failures (CUDA out of
  memory, a busy database) — none for bad input, which is recorded as a failed call with its
  reason while the batch goes on;
- a markdown summary and a table of flagged calls published as Prefect **artifacts**.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Callable

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE as NO_CACHE

from models.errors import ModelUnavailableError
from pipelines.shell.cache import AnalysisCache, analysis_key, audio_sha256
from qa_rules.records import BadAudioError, CallError
from qa_rules.records import Conversation, Measures, Scorecard
from qa_rules.files import OutsideOutputError, make_private_dir
from pipelines.settings import Settings
from pipelines.results.store import Store, default_store_url, display_url, worker_identity
from qa_rules.records import CallSource
from pipelines.reports.summary import SummaryRow, rows_from_store, write_summary

log = logging.getLogger(__name__)

_progress_hook: Callable[[str, str], None] | None = None
"""Set by the CLI to drive its progress bar (kept out of the flow's parameters, which Prefect
serialises to its API)."""


def set_progress_hook(hook: Callable[[str, str], None] | None) -> None:
    global _progress_hook
    _progress_hook = hook


BATCH_STORE_ENV = "CALLQA_BATCH_STORE_URL"
"""The store URL when it is not a flow parameter: Prefect keeps flow parameters in its database and
shows them in its UI, so a URL with a password is handed over in the environment instead."""

TRANSIENT_MARKERS = ("out of memory", "cuda error", "cublas", "database is locked", "temporarily unavailable")


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
    conversation: Conversation
    measures: Measures


# ---------------------------------------------------------------------------- per worker process
_engine_lock = threading.Lock()


_LOADED: list = []


@lru_cache(maxsize=2)
def _engines_for(settings_json: str):
    from pipelines.stages.engines import SpeechEngines

    engines = SpeechEngines.load(Settings.model_validate_json(settings_json))
    _LOADED.append(engines)
    return engines


def require_model_files(settings: Settings) -> None:
    """Raise :class:`ModelUnavailableError` (with its fix) when a model the batch may need is not in
    the store.  Only files are checked: loading Whisper or importing pyannote.audio here would make
    every run pay seconds of start-up, even one with nothing to do (see README, "Lean start-up")."""
    from models.model_store import ModelStore

    store = ModelStore(settings.model_store)
    store.whisper(settings.asr_model)
    store.segmentation(settings.segmentation)
    store.speaker_embedding(settings.embedding)


def worker_engines(settings: Settings):
    """The speech models of this worker process, loaded on first use and kept for every call."""
    with _engine_lock:
        return _engines_for(settings.model_dump_json())


@lru_cache(maxsize=4)
def _slots(n: int) -> threading.BoundedSemaphore:
    return threading.BoundedSemaphore(n)


def _is_transient(task_obj, task_run, state) -> bool:
    """Retry only what may succeed next time; bad input never does."""
    exc = state.data if isinstance(getattr(state, "data", None), BaseException) else None
    if exc is None:
        try:
            state.result(raise_on_failure=True)
        except BaseException as raised:  # noqa: BLE001
            exc = raised
    if isinstance(exc, CallError):
        return False
    text = str(exc).lower()
    transient = any(marker in text for marker in TRANSIENT_MARKERS)
    if transient and "out of memory" in text:
        _shrink_batches()
    return transient


def _shrink_batches() -> None:
    """After CUDA OOM: halve the diarization batch of the loaded pipelines before the retry."""
    for engines in list(_LOADED):
        diarizer = engines._diarizer
        if diarizer is not None:
            pipeline = diarizer._pipeline
            pipeline.embedding_batch_size = max(1, pipeline.embedding_batch_size // 2)
            pipeline.segmentation_batch_size = max(1, pipeline.segmentation_batch_size // 2)
    try:
        import torch

        torch.cuda.empty_cache()
    except Exception:  # noqa: BLE001
        pass


# ---------------------------------------------------------------------------- tasks
_RETRY = {"retries": 2, "retry_delay_seconds": 2, "retry_condition_fn": _is_transient, "cache_policy": NO_CACHE}


@task(name="transcribe", **_RETRY)
def transcribe_task(call: CallSource, settings: Settings, gpu_slots: int = 1):
    """Decode the call once and transcribe it (faster-whisper); returns the audio for the next steps."""
    from pipelines.stages.audio import decode_audio
    from pipelines.stages.conversation import transcribe_call

    if not os.access(call.path, os.R_OK):
        raise BadAudioError(call.call_id, f"file is not readable (permission denied): {call.path}")
    try:
        audio = decode_audio(call.path, max_duration_s=settings.max_duration_s)
    except BadAudioError as exc:
        raise BadAudioError(call.call_id, exc.reason) from exc
    with _slots(gpu_slots):
        return audio, transcribe_call(audio, worker_engines(settings), call.call_id)


@task(name="diarize", **_RETRY)
def diarize_task(audio, transcript, settings: Settings, gpu_slots: int = 1):
    """Who is audible when: channel voice activity (stereo) or pyannote diarization (mono)."""
    from pipelines.stages.conversation import find_speakers

    with _slots(gpu_slots):
        return find_speakers(audio, transcript, worker_engines(settings))


@task(name="measure", cache_policy=NO_CACHE)
def measure_task(audio, transcript, activity, call: CallSource, settings: Settings) -> tuple[Conversation, Measures]:
    """Attribute words, label roles, and measure loudness, pitch, rate, silences and overlaps."""
    from pipelines.stages.conversation import assemble_conversation
    from pipelines.stages.measures import measure_call

    conversation = assemble_conversation(
        audio, transcript, activity, worker_engines(settings).device.describe(),
        call.channel_map or settings.agent_channel, call.metadata(),
    )
    return conversation, measure_call(audio, conversation)


def analyse(call: CallSource, settings: Settings, cache: AnalysisCache, gpu_slots: int) -> CallAnalysis:
    """transcribe → diarize → measure as Prefect tasks, or the content-keyed cache when it has them."""
    from models.model_store import ModelStore

    if not call.path.is_file():
        raise BadAudioError(call.call_id, f"file not found: {call.path}")
    model_dir = ModelStore(settings.model_store).whisper(settings.asr_model)
    key = analysis_key(audio_sha256(call.path), settings, model_dir, call.channel_map)
    hit = cache.get(key)
    if hit is not None:
        conversation, measures = hit
        conversation = conversation.model_copy(
            update={"call_id": call.call_id, "source": str(call.path), "metadata": call.metadata()}
        )
        return CallAnalysis(key, True, conversation, measures.model_copy(update={"call_id": call.call_id}))
    audio, transcript = transcribe_task(call, settings, gpu_slots)
    activity = diarize_task(audio, transcript, settings, gpu_slots)
    conversation, measures = measure_task(audio, transcript, activity, call, settings)
    cache.put(key, conversation, measures)
    return CallAnalysis(key, False, conversation, measures)


@task(name="score call", cache_policy=NO_CACHE)
def score_call(conversation: Conversation, measures: Measures, out_dir: str, rulebook_path: str | None) -> Scorecard:
    """Write the call's conversation and measures beside its scorecard (JSON + HTML); return the card."""
    from pipelines.stages.scoring import score_and_report

    out = Path(out_dir)
    conversation.write(out)
    measures.write(out)
    return score_and_report(conversation, measures, out, Path(rulebook_path) if rulebook_path else None)


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
@flow(name="qa-batch", log_prints=True)
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
    model calls per worker), ``force`` (re-score calls already finished with the same inputs).
    """
    from pipelines.shell.sources import read_source

    settings = settings or Settings.load()
    os.umask(0o077)  # transcripts, scorecards, reports and the store: owner-only, whoever writes them
    out_dir = Path(out)
    make_private_dir(out_dir)
    store = Store(store_url or os.environ.get(BATCH_STORE_ENV) or default_store_url(out_dir))
    cache = AnalysisCache(Path(cache_dir) if cache_dir else out_dir / ".cache" / "analysis")
    rulebook_key = _rulebook_key(rulebook)
    # A missing model stops the run here with its fix, instead of failing every call one by one.
    require_model_files(settings)
    found = read_source(source)
    calls = found.calls
    store.register(calls)
    worker = worker_identity()
    result = BatchResult(total=len(found), out_dir=str(out_dir), store_url=display_url(store.url))
    rows: list[SummaryRow] = []
    notify = _progress_hook or (lambda call_id, status: None)
    for entry in found.rejected:
        log.warning("%s: %s — skipped", entry.label, entry.reason)
        result.refused[entry.call_id or entry.label] = entry.reason
        rows.append(SummaryRow.failure(entry.call_id or entry.label, entry.reason))
        notify(entry.call_id or entry.label, "refused")
    for call in calls:
        input_key = _input_key(call, settings)
        if not store.claim(call.call_id, worker, input_key, rulebook_key, force=force):
            result.skipped.append(call.call_id)
            notify(call.call_id, "skipped")
            continue
        try:
            analysis = analyse(call, settings, cache, gpu_slots)
            (result.cached if analysis.cached else result.transcribed).append(call.call_id)
            card = score_call(analysis.conversation, analysis.measures, str(out_dir), rulebook)
            store.save(
                call.call_id, worker, input_key, rulebook_key, analysis.conversation, analysis.measures, card,
                conversation_path=out_dir / f"{call.call_id}.conversation.json",
                scorecard_path=out_dir / f"{call.call_id}.scorecard.json", redact=settings.redact_store,
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
            store.release(call.call_id)
            raise
        except Exception as exc:  # noqa: BLE001 - one broken call must not cost the night's results
            _record_failure(store, worker, call, f"internal error ({type(exc).__name__}: {exc})", result, rows)
            notify(call.call_id, "failed")
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
