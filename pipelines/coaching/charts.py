"""Trend charts of the 月报 as PNG files, drawn with matplotlib's object API on the Agg canvas.

``matplotlib.figure.Figure`` is used instead of ``pyplot`` so that drawing a report never switches
the backend of a notebook (or a server) that imported this module.
"""

from __future__ import annotations

import logging
from functools import lru_cache
from pathlib import Path

import pandas as pd
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

log = logging.getLogger(__name__)

CJK_FONTS = ("Noto Sans CJK SC", "Noto Sans SC", "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "SimHei", "Microsoft YaHei", "PingFang SC")


@lru_cache(maxsize=1)
def _font_family() -> list[str]:
    """Installed CJK fonts first (team names may be Chinese), then matplotlib's default."""
    installed = {font.name for font in font_manager.fontManager.ttflist}
    return [name for name in CJK_FONTS if name in installed] + ["DejaVu Sans"]


def line_chart(frame: pd.DataFrame, x: str, y: str, series: str, title: str, ylabel: str, path: Path,
               percent: bool = False) -> Path:
    """One line per ``series`` value of ``y`` over ``x`` (months), saved as a PNG at ``path``."""
    figure = Figure(figsize=(8, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    family = _font_family()
    xs = sorted(frame[x].dropna().unique())
    for name, part in frame.groupby(series, sort=True):
        values = part.set_index(x)[y].reindex(xs).astype(float)
        if percent:
            values = values * 100
        axes.plot(xs, values.to_numpy(), marker="o", label=str(name))
    axes.set_title(title, fontfamily=family)
    axes.set_ylabel(ylabel, fontfamily=family)
    axes.grid(True, alpha=0.3)
    if percent:
        axes.set_ylim(0, 105)
    if frame[series].nunique() > 0:
        legend = axes.legend(loc="best", fontsize="small")
        for text in legend.get_texts():
            text.set_fontfamily(family)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    log.info("chart %s", path)
    return path


def bar_chart(frame: pd.DataFrame, x: str, y: str, title: str, ylabel: str, path: Path, percent: bool = False) -> Path:
    """Bars of ``y`` per ``x`` (one report period, no trend), saved as a PNG at ``path``."""
    figure = Figure(figsize=(8, 4), dpi=100)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    family = _font_family()
    values = frame[y].astype(float) * (100 if percent else 1)
    axes.bar([str(v) for v in frame[x]], values.to_numpy(), color="#4c78a8")
    axes.set_title(title, fontfamily=family)
    axes.set_ylabel(ylabel, fontfamily=family)
    for label in axes.get_xticklabels():
        label.set_fontfamily(family)
    if percent:
        axes.set_ylim(0, 105)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png")
    return path
