"""``callqa score``: re-score saved conversations on every core.

Scoring one call is pure Python (rules over records), so one process uses one core; the saved
calls are split across worker processes, each of which parses the rulebook once.  Results come
back in the order of the files, as summary rows with the error line of a call that failed."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from pipelines.reports.summary import SummaryRow
from pipelines.stages.scoring import rescore_file
from qa_rules.files import OutsideOutputError
from qa_rules.records import CallError

Outcome = tuple[SummaryRow, str | None]
"""The call's summary row, and the error line when it could not be scored."""


def rescore_one(path: Path, out: Path, rulebook_path: Path | None) -> Outcome:
    try:
        return rescore_file(path, out, rulebook_path=rulebook_path), None
    except CallError as exc:
        return SummaryRow.failure(exc.call, exc.reason), str(exc)
    except OutsideOutputError as exc:
        return SummaryRow.failure(path.name, str(exc)), f"{path.name}: {exc}"


def _rescore_chunk(args: tuple[list[Path], Path, Path | None]) -> list[Outcome]:
    files, out, rulebook_path = args
    return [rescore_one(path, out, rulebook_path) for path in files]


def _load_before_fork(rulebook_path: Path | None) -> None:
    """What every worker needs, loaded once here before the pool forks, so that each worker starts
    with it instead of loading it again: the rule engine (pinyin dictionaries, rapidfuzz, numpy),
    the rulebook(s) — the given one, or both languages' defaults — and the scorecard template.
    A rulebook that cannot be loaded is left for the workers, which report it per call as before."""
    import qa_rules.engine  # noqa: F401 - imported for the workers
    from pipelines.reports.html import environment
    from pipelines.stages.scoring import load_rulebook_for

    environment().get_template("scorecard.html.j2")
    for language in ["zh", "en"] if rulebook_path is None else [""]:
        try:
            load_rulebook_for(language, rulebook_path)
        except Exception:  # noqa: BLE001 - reported by the workers, call by call
            pass


def rescore_files(files: list[Path], out: Path, rulebook_path: Path | None = None, workers: int = 0) -> list[Outcome]:
    """Re-score ``files`` into ``out`` with ``workers`` processes (0: one per core; 1: here)."""
    workers = workers or os.cpu_count() or 1
    workers = min(workers, max(1, len(files) // 20))  # a process is worth starting for 20 calls or more
    if workers <= 1:
        return [rescore_one(path, out, rulebook_path) for path in files]
    _load_before_fork(rulebook_path)
    chunks = [files[k::workers] for k in range(workers)]
    with ProcessPoolExecutor(max_workers=workers) as pool:
        parts = list(pool.map(_rescore_chunk, [(chunk, out, rulebook_path) for chunk in chunks]))
    by_file: dict[Path, Outcome] = {}
    for chunk, outcomes in zip(chunks, parts):
        by_file.update(zip(chunk, outcomes))
    return [by_file[path] for path in files]
