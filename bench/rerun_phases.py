"""Where a cache-only `callqa run` spends its time, phase by phase (used by ``bench/bench_rerun.py``).

    PYTHONPATH=. python -m bench.rerun_phases run CALLS --out OUT [--rulebook R]

Runs the command line in this process with the batch's steps wrapped so that each phase leaves a
mark — wall seconds since the start and this (the batch's) process's CPU seconds — and prints the
marks as one JSON line on stderr at exit, prefixed ``PHASES``.  The scoring processes' CPU is not in
it: they are the batch's children, which the bench counts as a whole.
"""

from __future__ import annotations

import atexit
import json
import resource
import sys
import time

PHASES_PREFIX = "PHASES "
_start = time.perf_counter()
_marks: list[tuple[str, float, float]] = []


def _mark(name: str) -> None:
    used = resource.getrusage(resource.RUSAGE_SELF)
    _marks.append((name, time.perf_counter() - _start, used.ru_utime + used.ru_stime))


def _after(owner, name: str, label: str) -> None:
    """Mark ``label`` when ``owner.name`` returns."""
    real = getattr(owner, name)

    def wrapped(*args, **kwargs):
        result = real(*args, **kwargs)
        _mark(label)
        return result

    setattr(owner, name, wrapped)


def main() -> None:
    from pipelines.shell import batch, cli

    _mark("Python and the command's imports")
    real_open = batch.open_batch

    def open_batch(*args, **kwargs):
        _mark("the command: rulebook, source")
        return real_open(*args, **kwargs)

    batch.open_batch = open_batch
    _after(batch.Batch, "answers_from_cache", "store opened, cached analyses read")
    _after(batch.ScoringPool, "__enter__", "scoring processes forked")
    real_summarise = batch.CacheOnlySteps.summarise

    def summarise(self, *args, **kwargs):
        _mark("every call scored and stored")
        return real_summarise(self, *args, **kwargs)

    batch.CacheOnlySteps.summarise = summarise
    _after(batch.ScoringPool, "__exit__", "summary written, processes gone")
    atexit.register(lambda: (_mark("exit"), print(PHASES_PREFIX + json.dumps(_marks), file=sys.stderr)))
    sys.argv = ["callqa", *sys.argv[1:]]
    cli.main()


if __name__ == "__main__":
    main()
