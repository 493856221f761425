"""`callqa` commands of the review package, registered on the main app by `pipelines.shell.cli`:
``serve`` (the review console) and ``calibrate`` (machine-vs-human agreement per rule)."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Optional

import typer

log = logging.getLogger(__name__)


def open_store(store: Optional[str], store_dir: Optional[Path]):
    """The results store named on the command line; exits with a fix-it message when there is none."""
    from pipelines.results.store import StoreNotFoundError, open_existing_store

    try:
        return open_existing_store(store, store_dir)
    except StoreNotFoundError as exc:
        _fail(str(exc))


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(1)


def serve(
    store: Optional[str] = typer.Option(None, help="Results store URL."),
    store_dir: Optional[Path] = typer.Option(None, help="Or: the run's output folder holding callqa.db."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on; keep 127.0.0.1 unless behind a proxy."),
    port: int = typer.Option(8765, help="Port to listen on."),
    token: Optional[str] = typer.Option(None, help="Access token (default: $CALLQA_REVIEW_TOKEN, else a new one)."),
    redact: bool = typer.Option(False, "--redact/--no-redact",
                                help="Show phone, ID and card numbers as [电话]/[PHONE]… in transcripts and evidence."),
) -> None:
    """Run the review console: flagged-call queue, call pages with audio, human reviews, calibration."""
    import uvicorn

    from pipelines.review.app import create_app
    from pipelines.review.auth import resolve_token

    results = open_store(store, store_dir)
    token, generated = resolve_token(token)
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("the console listens on %s: anyone who can reach it and has the token can hear the calls", host)
    shown = "localhost" if host in ("0.0.0.0", "::") else host
    typer.echo(f"review console: http://{shown}:{port}/queue?token={token}")
    if generated:
        typer.echo("(token generated for this run; set --token or CALLQA_REVIEW_TOKEN to keep one across restarts)")
    uvicorn.run(create_app(results, token, redact=redact), host=host, port=port, log_level="info", log_config=log_config())


class TokenFilter(logging.Filter):
    """Replaces the value of ``token=`` in log lines (uvicorn's access log shows the first
    ``GET /queue?token=…`` of every reviewer) with ``***``: logs are read by more people than the
    console is."""

    PATTERN = re.compile(r"(token=)[^&\s\"']+", re.IGNORECASE)

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str):
            record.msg = self.PATTERN.sub(r"\1***", record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(self.PATTERN.sub(r"\1***", a) if isinstance(a, str) else a for a in record.args)
        return True


def log_config() -> dict:
    """uvicorn's own logging set-up with :class:`TokenFilter` on both of its handlers."""
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["hide_token"] = {"()": TokenFilter}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("hide_token")
    return config


def calibrate(
    store: Optional[str] = typer.Option(None, help="Results store URL."),
    store_dir: Optional[Path] = typer.Option(None, help="Or: the run's output folder holding callqa.db."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the table to FILE.csv or FILE.html."),
) -> None:
    """Machine-vs-human agreement per rule (counts, % agreement, Cohen's kappa), most disagreeing first."""
    from pipelines.review import calibration

    results = open_store(store, store_dir)
    pairs = calibration.current_pairs(results)
    rows = calibration.agreement(pairs)
    total = calibration.overall(pairs)
    if out is not None:
        try:
            calibration.write_report(rows, total, out, calibration.disagreements(results, rows))
        except ValueError as exc:
            _fail(str(exc))
        typer.echo(str(out))
        return
    if not rows:
        typer.echo("no human reviews in this store yet — review calls in `callqa serve` first")
        return
    typer.echo(f"{'rule':40} {'reviewed':>8} {'agree':>6} {'%agree':>7} {'kappa':>6}")
    for row in rows + [total]:
        kappa = "—" if row.kappa is None else f"{row.kappa:.2f}"
        typer.echo(f"{row.rule_id:40} {row.reviewed:>8} {row.agree:>6} {row.percent_agree:>7.1f} {kappa:>6}")
    parts = calibration.pairs_by_sample(results)
    labels = {"random": "random sample (unbiased estimate)", "selected": "flagged/fatal/picked calls (biased)"}
    for part, part_pairs in parts.items():
        if part_pairs:
            row = calibration.overall(part_pairs)
            kappa = "—" if row.kappa is None else f"{row.kappa:.2f}"
            typer.echo(f"{labels[part]:40} {row.reviewed:>8} {row.agree:>6} {row.percent_agree:>7.1f} {kappa:>6}")


def search(
    query: str = typer.Argument(..., help="Words to find, e.g. 退订 or \"cancel my plan\"."),
    store: Optional[str] = typer.Option(None, help="Results store URL."),
    store_dir: Optional[Path] = typer.Option(None, help="Or: the run's output folder holding callqa.db."),
    role: Optional[str] = typer.Option(None, help="agent or customer."),
    agent: Optional[str] = typer.Option(None, help="Only this agent's calls."),
    team: Optional[str] = typer.Option(None, help="Only this team's calls."),
    period: Optional[str] = typer.Option(None, help="2024-06, 2024-06-10 or 2024-06-01..2024-06-07 (call start)."),
    rule: Optional[str] = typer.Option(None, help="Only calls where this rule got --verdict (default fail)."),
    verdict: Optional[str] = typer.Option(None, help="pass, fail or na (with --rule, or any rule)."),
    by_sound: bool = typer.Option(False, "--by-sound", help="Match by pinyin: finds homophones the recogniser wrote."),
    limit: int = typer.Option(200, help="At most this many lines."),
) -> None:
    """Full-text search of the transcripts: call, time, speaker and the line, newest calls first."""
    from pipelines.results.search import period_bounds, search as run_search

    if role not in (None, "agent", "customer"):
        _fail(f"--role must be agent or customer, not {role!r}")
    if verdict not in (None, "pass", "fail", "na"):
        _fail(f"--verdict must be pass, fail or na, not {verdict!r}")
    from pipelines.results.period import PeriodError

    try:
        since, until = period_bounds(period) if period else (None, None)
    except PeriodError as exc:
        _fail(str(exc))
    results = open_store(store, store_dir)
    hits = run_search(results.engine, query, role=role, agent=agent, team=team, since=since, until=until,
                      rule=rule, verdict=verdict or ("fail" if rule else None), by_sound=by_sound, limit=limit)
    if not hits:
        typer.echo(f"no line matches {query!r}")
        return
    for hit in hits:
        minutes, seconds = divmod(hit.start, 60)
        typer.echo(f"{hit.call_id}\t{int(minutes)}:{seconds:04.1f}\t{hit.role}\t{hit.agent_id or '-'}\t{hit.text}")
    typer.echo(f"{len(hits)} line(s)", err=True)


def sample(
    plan: Path = typer.Option(..., "--plan", help="Sampling plan YAML (random_per_agent or share_per_agent, strata, seed)."),
    period: str = typer.Option(..., "--period", help="2024-06 (a month) or 2024-06-01..2024-06-07."),
    assign: Optional[str] = typer.Option(None, "--assign", help="Reviewers to share the calls, e.g. qa1,qa2."),
    store: Optional[str] = typer.Option(None, help="Results store URL."),
    store_dir: Optional[Path] = typer.Option(None, help="Or: the run's output folder holding callqa.db."),
) -> None:
    """抽样: draw this period's calls for human review (random per agent + fatal + flagged) into the store."""
    from pipelines.results.period import PeriodError, parse_period
    from pipelines.review.sampling import PlanError, draw, load_plan

    try:
        chosen_plan = load_plan(plan)
        chosen_period = parse_period(period)
    except (PlanError, PeriodError) as exc:
        _fail(str(exc))
    reviewers = [r.strip()[:100] for r in (assign or "").split(",") if r.strip()]
    drawn = draw(open_store(store, store_dir), chosen_plan, chosen_period, reviewers or None)
    counts = {reason: sum(d.reason == reason for d in drawn) for reason in ("fatal", "flagged", "random")}
    typer.echo(f"{len(drawn)} calls drawn for {chosen_period.label}: "
               + ", ".join(f"{n} {reason}" for reason, n in counts.items()))
    for d in drawn:
        typer.echo(f"{d.call_id}\t{d.reason}\t{d.stratum or '-'}\t{d.agent_id or '-'}\t{d.assignee or '-'}")


def register(app: typer.Typer) -> None:
    """Add this package's commands to `app`."""
    app.command("serve")(serve)
    app.command("calibrate")(calibrate)
    app.command("search")(search)
    app.command("sample")(sample)
