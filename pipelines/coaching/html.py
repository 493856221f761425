"""Writing the coaching pages and reports (templates in ``templates/`` beside this module), rendered
by the shared page environment (:mod:`pipelines.reports.html`) so times, percentages and the page
style read the same as on the scorecards and in the console."""

from __future__ import annotations

from pathlib import Path

from pipelines.reports.html import environment


def render(template: str, out_path: Path, **context) -> Path:
    """Render ``template`` to ``out_path`` (UTF-8: the pages carry Chinese text)."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(environment().get_template(template).render(**context), encoding="utf-8")
    return out_path
