"""The one Jinja2 environment behind every HTML page callqa writes or serves: the scorecard and the
batch summary (``reports/templates``), the review console and the calibration report
(``review/templates``), the coaching pages and supervisor reports (``coaching/templates``).

One loader over the three template folders, one autoescape rule, one set of display filters, and
one stylesheet (``page.css``, included inline by every page: pages are opened from a folder or an
e-mail attachment and must fetch nothing), so a time, a percentage or a verdict colour reads the
same on every page.  Template names are unique across the folders (a test checks it), so a page
names its template without saying which app it belongs to.

The display helpers live here and not with the apps because the stages write the scorecard page:
the stages may import ``pipelines.reports`` but never the console or the coaching library.
"""

from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path
from urllib.parse import quote

from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, select_autoescape

PIPELINES = Path(__file__).resolve().parents[1]
TEMPLATE_FOLDERS = tuple(PIPELINES / app / "templates" for app in ("reports", "review", "coaching"))

ROLE_NAMES = {"agent": "坐席 agent", "receiver": "接转坐席 receiving agent", "customer": "客户 customer", "unknown": "?"}

CJK_FONT_STACK = (
    'system-ui, -apple-system, "Segoe UI", "Microsoft YaHei", "微软雅黑", "PingFang SC", "Hiragino Sans GB", '
    '"Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", sans-serif'
)
"""Every page's font stack (in ``page.css``): Windows (Microsoft YaHei), macOS (PingFang SC) and Linux
desktops (Noto CJK, WenQuanYi) all find a font with the Chinese rule titles before the generic
fallback.  ``page.css`` is not autoescaped, so the quotes reach the browser as quotes."""


def fmt_time(seconds: float | None) -> str:
    """A position in a call as ``m:ss.s`` (blank when there is none)."""
    if seconds is None:
        return ""
    minutes, secs = divmod(float(seconds), 60)
    return f"{int(minutes)}:{secs:04.1f}"


def when(timestamp: float | None) -> str:
    """A review's time as the reviewer's local clock shows it."""
    if timestamp is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))


def kappa(value: float | None) -> str:
    """Cohen's kappa to two places; a dash where it is undefined."""
    return "—" if value is None else f"{value:.2f}"


def url_segment(value: object) -> str:
    """One path segment of a console URL (a call id may hold ``/``, ``?`` or ``#``)."""
    return quote(str(value), safe="")


def pct(value, digits: int = 1) -> str:
    """A 0–1 share as a percentage; blank when there is nothing to measure (no applicable calls)."""
    if value is None or value != value:  # None or NaN
        return "–"
    return f"{100 * float(value):.{digits}f}%"


def num(value, digits: int = 1) -> str:
    """A figure to ``digits`` places; a dash for none or NaN (pandas' missing value)."""
    if value is None or value != value:
        return "–"
    return f"{float(value):.{digits}f}"


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The shared environment: files written to disk (scorecards, summaries, coaching pages) render
    an absent value as blank, as a partly filled scorecard must still be readable."""
    env = Environment(
        loader=ChoiceLoader([FileSystemLoader(folder) for folder in TEMPLATE_FOLDERS]),
        autoescape=select_autoescape(["html", "j2"]),  # page.css is CSS: not HTML-escaped
    )
    env.globals.update(fmt_time=fmt_time, role_names=ROLE_NAMES, cjk_font_stack=CJK_FONT_STACK)
    env.filters.update(when=when, kappa=kappa, seg=url_segment, pct=pct, num=num)
    return env


@lru_cache(maxsize=1)
def strict_environment() -> Environment:
    """The same environment (loader, filters, globals shared) where a missing value is an error: the
    console's views are typed, so a name a template cannot find is a bug to show, not a blank."""
    return environment().overlay(undefined=StrictUndefined)
