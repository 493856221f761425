"""``callqa``: the command line of the QA pipeline."""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Offline call-center QA: transcripts, scorecards.")
models_app = typer.Typer(no_args_is_help=True, help="The local model store.")
app.add_typer(models_app, name="models")
console = Console(stderr=True)

EXIT_PARTIAL = 3
"""Exit status when some calls failed and the others were written."""


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=False)],
    )
    for noisy in ("faster_whisper", "speechbrain", "lightning", "pytorch_lightning"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _fail(message: str) -> None:
    console.print(f"[bold red]error:[/] {message}")
    raise typer.Exit(1)


@models_app.command("prepare")
def models_prepare(
    store: Optional[Path] = typer.Option(None, help="Model store folder (default: $CALLQA_MODEL_STORE)."),
) -> None:
    """Lay out the default models from the installed registry packages (no download)."""
    from models.errors import ModelUnavailableError
    from models.store import ModelStore

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
    from models.store import ModelStore

    model_store = ModelStore(store) if store else ModelStore.default()
    if not model_store.root.is_dir():
        _fail(f"no model store at {model_store.root} — fix: run `callqa models prepare`")
    for entry in sorted(model_store.root.iterdir()):
        if entry.is_dir():
            size = sum(p.stat().st_size for p in entry.rglob("*") if p.is_file())
            typer.echo(f"{entry.name}\t{size / 1e6:.1f} MB")


@app.command()
def transcribe(
    inputs: list[str] = typer.Argument(..., help="Call recordings, folders or globs."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for <call_id>.conversation.json files."),
    config: Optional[Path] = typer.Option(None, help="YAML settings file (see README)."),
    asr_model: Optional[str] = typer.Option(None, help="Whisper model: a store name (base, large-v3) or a CT2 folder."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda."),
    threads: Optional[int] = typer.Option(None, help="CPU threads for the models."),
    language: Optional[str] = typer.Option(None, help="Force the language (zh, en); default: detect per call."),
    num_speakers: Optional[int] = typer.Option(None, help="Speakers in mono calls (default 2; 0 = let clustering decide)."),
    agent_channel: Optional[str] = typer.Option(None, help="Stereo channel map: 'left' or 'right' holds the agent."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Write a speaker-attributed, role-labelled transcript per call (``<call_id>.conversation.json``)
    and its measures (``<call_id>.measures.json``)."""
    _setup_logging(verbose)
    settings = _settings(config, asr_model, device, threads, language, num_speakers, agent_channel)
    _process_audio(inputs, out, settings, rulebook=None, score=False)


@app.command()
def run(
    inputs: list[str] = typer.Argument(..., help="Folders of calls, files or globs."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for conversations, measures, scorecards, summary."),
    rulebook: Optional[Path] = typer.Option(None, help="Rulebook YAML (default: zh/en default by call language)."),
    config: Optional[Path] = typer.Option(None, help="YAML settings file (see README)."),
    asr_model: Optional[str] = typer.Option(None, help="Whisper model: a store name or a CT2 folder."),
    device: Optional[str] = typer.Option(None, help="auto, cpu or cuda."),
    threads: Optional[int] = typer.Option(None),
    language: Optional[str] = typer.Option(None),
    num_speakers: Optional[int] = typer.Option(None),
    agent_channel: Optional[str] = typer.Option(None),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """End to end: transcribe, measure and score every call; write scorecards and a batch summary."""
    _setup_logging(verbose)
    settings = _settings(config, asr_model, device, threads, language, num_speakers, agent_channel)
    book = _load_rulebook(rulebook) if rulebook else None
    _process_audio(inputs, out, settings, rulebook=book, score=True)


@app.command()
def score(
    conversations: list[Path] = typer.Argument(..., help="<call_id>.conversation.json files or folders of them."),
    out: Path = typer.Option(..., "--out", "-o"),
    rulebook: Optional[Path] = typer.Option(None, help="Rulebook YAML (default: by call language)."),
) -> None:
    """Score saved conversations (with their measures) — no audio, no model."""
    import time

    from pipelines.errors import CallError
    from pipelines.scoring import rescore_file
    from pipelines.summary import SummaryRow, write_summary

    files: list[Path] = []
    for item in conversations:
        files += sorted(item.glob("*.conversation.json")) if item.is_dir() else [item]
    if not files:
        _fail("no conversation files given")
    book = _load_rulebook(rulebook) if rulebook else None
    rows, failures = [], []
    started = time.perf_counter()
    for path in files:
        try:
            rows.append(rescore_file(path, out, rulebook_path=rulebook, rulebook=book))
        except CallError as exc:
            failures.append(str(exc))
            rows.append(SummaryRow.failure(exc.call, exc.reason))
    elapsed = time.perf_counter() - started
    write_summary(rows, out, rulebook=str(rulebook or "default"))
    console.print(f"scored {len(files) - len(failures)} calls in {elapsed:.2f} s ({len(files) / max(elapsed, 1e-9):.0f} calls/s)")
    _finish(len(files), failures, out)


def _settings(config, asr_model, device, threads, language, num_speakers, agent_channel):
    from pipelines.settings import Settings

    return Settings.load(
        config, asr_model=asr_model, device=device, threads=threads, language=language,
        num_speakers=num_speakers, agent_channel=agent_channel,
    )


def _load_rulebook(path: Path):
    import qa_rules

    try:
        return qa_rules.load_rulebook(path)
    except qa_rules.RulebookError as exc:
        _fail(str(exc))


def _process_audio(inputs: list[str], out: Path, settings, rulebook, score: bool) -> None:
    from models.errors import ModelUnavailableError
    from pipelines.engines import SpeechEngines
    from pipelines.errors import CallError
    from pipelines.sources import collect_audio
    from pipelines.scoring import score_and_report
    from pipelines.stages import transcribe_and_measure
    from pipelines.summary import SummaryRow, write_summary

    calls = collect_audio(inputs)
    if not calls:
        _fail("no audio files found in " + ", ".join(inputs))
    try:
        engines = SpeechEngines.load(settings)
    except ModelUnavailableError as exc:
        _fail(str(exc))
    failures: list[str] = []
    rows: list[SummaryRow] = []
    verb = "scoring" if score else "transcribing"
    with _progress() as progress:
        task = progress.add_task(verb, total=len(calls))
        for path in calls:
            progress.update(task, description=f"{verb} {path.name}")
            try:
                conversation, measures = transcribe_and_measure(path, engines, out)
                if score:
                    rows.append(score_and_report(conversation, measures, out, rulebook=rulebook))
            except CallError as exc:
                failures.append(str(exc))
                rows.append(SummaryRow.failure(exc.call, exc.reason))
                progress.console.print(f"[red]✗[/] {escape(str(exc))} — skipped")
            progress.advance(task)
    if score:
        csv_path, html_path = write_summary(rows, out, rulebook=getattr(rulebook, "id", "default by language"))
        console.print(f"scorecards: {out}/<call_id>.scorecard.html · summary: {html_path} and {csv_path}")
    _finish(len(calls), failures, out)


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, transient=False,
    )


def _finish(total: int, failures: list[str], out: Path) -> None:
    done = total - len(failures)
    console.print(f"{done}/{total} calls written to {out}")
    if failures:
        console.print(f"[yellow]partial:[/] {len(failures)} call(s) failed:")
        for line in failures:
            console.print(f"  - {escape(line)}")
        raise typer.Exit(EXIT_PARTIAL if done else 1)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
