"""PII redaction on the generated test set (bench/pii_corpus.py): mention-level recall and
precision, near-misses flagged.  Run: ``make bench`` or ``.venv/bin/python bench/bench_redaction.py``."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from bench.pii_corpus import evaluate, generate  # noqa: E402


def main() -> None:
    figures, problems = evaluate(generate())
    table = Table(title="PII redaction on the generated test set (phone, ID, card, e-mail; mixed forms)")
    table.add_column("figure")
    table.add_column("value")
    table.add_row("mentions", str(figures.mentions))
    table.add_row("recall", f"{figures.recall:.3f}")
    table.add_row("precision", f"{figures.precision:.3f}")
    table.add_row("near-misses (prices, dates, 工号, times)", str(figures.near_misses))
    table.add_row("near-misses flagged", str(figures.near_misses_flagged))
    console = Console()
    console.print(table)
    for line in problems:
        console.print(line, markup=False)


if __name__ == "__main__":
    main()
