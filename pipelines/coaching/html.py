"""The Jinja2 environment for the coaching pages and reports (templates in ``templates/`` beside
this module), sharing ``fmt_time`` with the scorecard pages so times read the same everywhere."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from pipelines.reports.scorecard_html import CJK_FONT_STACK, fmt_time

TEMPLATES = Path(__file__).parent / "templates"


@lru_cache(maxsize=1)
def env() -> Environment:
    environment = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=select_autoescape(["html", "j2"]))
    environment.globals.update(fmt_time=fmt_time, cjk_font_stack=CJK_FONT_STACK)
    environment.filters["pct"] = _pct
    environment.filters["num"] = _num
    return environment


def render(template: str, out_path: Path, **context) -> Path:
    """Render ``template`` to ``out_path`` (UTF-8: the pages carry Chinese text)."""
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(env().get_template(template).render(**context), encoding="utf-8")
    return out_path


def _pct(value, digits: int = 1) -> str:
    """A 0–1 share as a percentage; blank when there is nothing to measure (no applicable calls)."""
    if value is None or value != value:  # None or NaN
        return "–"
    return f"{100 * float(value):.{digits}f}%"


def _num(value, digits: int = 1) -> str:
    if value is None or value != value:
        return "–"
    return f"{float(value):.{digits}f}"
