"""The console's Jinja2 environment: one place for template loading and the small display filters,
shared by the web app and the static calibration report (``callqa calibrate --out x.html``)."""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from pipelines.reports.scorecard_html import CJK_FONT_STACK, ROLE_NAMES, fmt_time

TEMPLATES = Path(__file__).parent / "templates"


def when(timestamp: float | None) -> str:
    """A review's time as the reviewer's local clock shows it."""
    if timestamp is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def kappa(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]), undefined=StrictUndefined,
    )
    env.globals.update(fmt_time=fmt_time, role_names=ROLE_NAMES, cjk_font_stack=CJK_FONT_STACK)
    env.filters.update(when=when, kappa=kappa, seg=lambda s: quote(str(s), safe=""))
    return env


def render(template: str, **context) -> str:
    context.setdefault("standalone", False)
    return environment().get_template(template).render(**context)
