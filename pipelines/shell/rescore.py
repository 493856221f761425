"""``callqa score``: re-score saved conversations on every core.

Scoring one call is pure Python (rules over records), so one process uses one core; the saved
calls are split across worker processes, each of which parses the rulebook once.  Results come
back in the order of the files, as summary rows with the error line of a call that failed."""

from __future__ import annotations

import gc
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from pipelines.reports.summary import SummaryRow
from pipelines.stages.scoring import rescore_file
from qa_rules.files import OutsideOutputError
from qa_rules.records import CallError

CHUNK_CALLS = 16
"""Calls a worker takes at a time: enough that asking costs little next to scoring them (~0.1 s),
few enough that the workers finish together."""

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
    """A worker's share, with the cycle collector off: scoring a call leaves no reference cycle
    (none found after 200 calls), so its ~200 collections a 200 calls would find nothing."""
    files, out, rulebook_path = args
    gc.disable()
    try:
        return [rescore_one(path, out, rulebook_path) for path in files]
    finally:
        gc.enable()


def worker_count(files: int, workers: int = 0) -> int:
    """The processes :func:`rescore_files` uses for ``files`` calls (``workers`` 0: one per core)."""
    workers = workers or os.cpu_count() or 1
    return min(workers, max(1, files // 20))  # a process is worth starting for 20 calls or more


def preload(rulebook_path: Path | None, rulebooks: bool = True) -> None:
    """What every call needs, loaded once up front, before the pool forks, so that each worker
    starts with it instead of loading it again: the rule engine, the scorecard template and, with
    ``rulebooks``, the rulebook(s) — the given one, or every language's default
    (:meth:`Rulebooks.load_every`).  pypinyin and numpy are not among them: the first rule that
    needs them loads them, since a re-score whose every outcome is remembered needs neither."""
    import qa_rules.engine  # noqa: F401 - imported for the calls
    from pipelines.reports.html import environment
    from pipelines.stages.scoring import Rulebooks

    environment().get_template("scorecard.html.j2")
    if rulebooks:
        Rulebooks(rulebook_path).load_every()  # (parsed once per process: the calls find them loaded)


def rescore_files(files: list[Path], out: Path, rulebook_path: Path | None = None, workers: int = 0) -> list[Outcome]:
    """Re-score ``files`` into ``out`` with ``workers`` processes (0: one per core; 1: here).

    The files go to the workers in small chunks as they ask for them, not split in equal halves up
    front: on a machine shared with other work one worker can run slower, and the other then takes
    more calls instead of waiting for it at the end."""
    workers = worker_count(len(files), workers)
    if workers <= 1:
        return [rescore_one(path, out, rulebook_path) for path in files]
    preload(rulebook_path)  # at once when the caller has loaded it already (everything is cached)
    size = max(1, min(CHUNK_CALLS, len(files) // (4 * workers)))
    chunks = [files[k : k + size] for k in range(0, len(files), size)]
    # what is loaded is left out of the workers' cycle collections: they neither walk it again nor
    # write to its pages (the workers share the parent's memory instead of copying it)
    gc.freeze()
    try:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            parts = list(pool.map(_rescore_chunk, [(chunk, out, rulebook_path) for chunk in chunks]))
    finally:
        gc.unfreeze()
    return [outcome for part in parts for outcome in part]
