"""`callqa` commands of the coaching package, registered on the main app by `pipelines.shell.cli`:
``samples`` (the coaching library) and ``report`` (agent/team reports, the 月报)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Optional

import typer

log = logging.getLogger(__name__)


def _fail(message: str) -> None:
    typer.secho(f"error: {message}", fg=typer.colors.RED, err=True)
    raise typer.Exit(1)


def _open(store: Optional[str], store_dir: Optional[Path]):
    from pipelines.coaching.data import StoreNotFoundError, open_store

    try:
        return open_store(store, store_dir)
    except StoreNotFoundError as exc:
        _fail(str(exc))


def _period(text: Optional[str]):
    from pipelines.results.period import PeriodError, parse_period

    if not text:
        return None
    try:
        return parse_period(text)
    except PeriodError as exc:
        _fail(str(exc))


def samples(
    out: Path = typer.Option(..., "--out", "-o", help="Folder for clips/, excerpts/, samples.json and index.html."),
    rule: Optional[str] = typer.Option(None, help="Rule id, e.g. greeting.standard."),
    category: Optional[str] = typer.Option(None, help="Rule category, e.g. closing, hold, greeting."),
    agent: Optional[str] = typer.Option(None, help="Only this agent's calls."),
    team: Optional[str] = typer.Option(None, help="Only this team's calls."),
    period: Optional[str] = typer.Option(None, help="2024-05 (a month) or 2024-05-01..2024-05-31."),
    best: int = typer.Option(5, help="How many best calls (passing, highest score first)."),
    worst: int = typer.Option(5, help="How many worst calls (failing, lowest score first)."),
    monthly: bool = typer.Option(False, "--monthly", help="Per month and agent into OUT/<month>/<agent>/ (rule/category optional)."),
    context: float = typer.Option(3.0, help="Seconds of audio kept each side of the evidence."),
    redact: bool = typer.Option(True, "--redact/--no-redact",
                                help="Beep personal numbers (phone, ID, card) out of clips and texts (default: on)."),
    store: Optional[str] = typer.Option(None, help="Results store URL."),
    store_dir: Optional[Path] = typer.Option(None, help="Or: the output folder of a `callqa run` (holds callqa.db)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Coaching library: export the best and worst calls for a rule or category as audio clips cut
    around the evidence, scorecard excerpts and an index page."""
    from pipelines.coaching.samples import export_monthly, export_samples
    from pipelines.coaching.selection import SelectionError

    _verbose(verbose)
    if not monthly and not rule and not category:
        _fail("give --rule ID or --category NAME (or --monthly for each agent's best and worst calls of the month)")
    if best < 0 or worst < 0:
        _fail("--best and --worst must be 0 or more")
    opened = _open(store, store_dir)
    chosen_period = _period(period)
    try:
        if monthly:
            exports = export_monthly(opened, out, best=best, worst=worst, period=chosen_period, agent=agent,
                                     rule=rule, category=category, context_s=context, redact=redact)
            clips = sum(1 for e in exports for s in e.samples if s.clip)
            typer.echo(f"{len(exports)} agent-month folders, {clips} clips: {out / 'index.html'}")
            return
        export = export_samples(opened, out, rule=rule, category=category, agent=agent, period=chosen_period,
                                best=best, worst=worst, context_s=context, team=team, redact=redact)
    except SelectionError as exc:
        _fail(str(exc))
    missing = [s for s in export.samples if not s.clip]
    typer.echo(f"{len(export.best)} best, {len(export.worst)} worst calls for {export.selection}: {export.index}")
    if not export.samples:
        typer.secho("no call matched — widen --period or --agent, or check the rule id", fg=typer.colors.YELLOW, err=True)
    for sample in missing:
        typer.secho(f"  no clip for call {sample.call_id}: {sample.clip_error}", fg=typer.colors.YELLOW, err=True)


def report(
    out: Path = typer.Option(..., "--out", "-o", help="Folder for report.html, charts/ and report.xlsx."),
    by: str = typer.Option("agent", help="Group by agent, team or month."),
    period: Optional[str] = typer.Option(None, help="2024-05 (a month) or 2024-05-01..2024-05-31; default: all calls (--monthly: the latest month)."),
    monthly: bool = typer.Option(False, "--monthly", help="月报: the period's tables plus trend charts over the months up to it."),
    months: int = typer.Option(6, help="Months in the --monthly trend charts."),
    agent: Optional[str] = typer.Option(None, help="Only this agent's calls."),
    team: Optional[str] = typer.Option(None, help="Only this team's calls."),
    store: Optional[str] = typer.Option(None, help="Results store URL."),
    store_dir: Optional[Path] = typer.Option(None, help="Or: the output folder of a `callqa run` (holds callqa.db)."),
    verbose: bool = typer.Option(False, "--verbose", "-v"),
) -> None:
    """Agent/team report: calls, mean score, pass rates per rule and category, fatal calls, handle
    time, hold, silence and talk ratio — as HTML with charts and as an Excel workbook."""
    from pipelines.coaching.reports import ReportError, build_report, write_report

    _verbose(verbose)
    opened = _open(store, store_dir)
    try:
        built = build_report(opened, by=by, period=_period(period), monthly=monthly, agent=agent, team=team, trend_months=months)
    except ReportError as exc:
        _fail(str(exc))
    files = write_report(built, out)
    typer.echo(f"report: {files.html}\nexcel:  {files.xlsx}\ncharts: {len(files.charts)} in {out / 'charts'}")


def _verbose(verbose: bool) -> None:
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        logging.getLogger("pipelines.coaching").setLevel(logging.INFO)


def register(app: typer.Typer) -> None:
    """Add this package's commands to `app`."""
    app.command("samples")(samples)
    app.command("report")(report)
