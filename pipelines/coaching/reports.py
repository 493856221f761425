"""Agent / team / period reports: the numbers (``build_report``), then an HTML page with charts
and an Excel workbook for supervisors (``write_report``).

With ``monthly=True`` the report is the 月报: the tables cover the report month (or period) and the
charts show each group's trend over the months up to it, so a supervisor sees whether an agent's
coaching is working.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import pandas as pd

from pipelines.coaching import charts, metrics
from pipelines.coaching.data import load_calls, load_category_results, load_rule_results
from pipelines.coaching.excel import write_workbook
from pipelines.coaching.html import render
from pipelines.results.period import Period, parse_period
from pipelines.results.store import Store

log = logging.getLogger(__name__)

TREND_MONTHS = 6
"""Months shown in the 月报's trend charts, ending with the report month."""
BY_NAMES = {"agent": "坐席 agent", "team": "班组 team", "month": "月份 month"}


class ReportError(ValueError):
    """Nothing to report (empty store, empty period); the message says what to change."""


@dataclass
class Report:
    """The figures of one report; frames use the column names of :mod:`pipelines.coaching.metrics`."""

    by: str
    period: Period | None
    summary: pd.DataFrame
    rules: pd.DataFrame
    categories: pd.DataFrame
    by_agent: pd.DataFrame
    by_team: pd.DataFrame
    by_month: pd.DataFrame
    overall: dict
    trend: pd.DataFrame | None = None
    category_trend: pd.DataFrame | None = None
    trend_months: list[str] = field(default_factory=list)

    @property
    def monthly(self) -> bool:
        return self.trend is not None


@dataclass(frozen=True)
class ReportFiles:
    html: Path
    xlsx: Path
    charts: list[Path]


def build_report(store: Store, by: str = "agent", period: Period | None = None, monthly: bool = False,
                 agent: str | None = None, team: str | None = None, trend_months: int = TREND_MONTHS) -> Report:
    """Compute the report's tables (and, for ``monthly``, the trends over ``trend_months`` months)."""
    if by not in metrics.GROUP_COLUMNS:
        raise ReportError(f"cannot group a report by {by!r} — use one of: {', '.join(metrics.GROUP_COLUMNS)}")
    all_calls = load_calls(store, agent=agent, team=team)
    if all_calls.empty:
        raise ReportError("the store holds no finished calls — run `callqa run` first, or check --store/--store-dir")
    if monthly and period is None:
        latest = all_calls["month"].dropna().max()
        if not isinstance(latest, str):
            raise ReportError("no call in the store has a start date (started_at) — a monthly report needs one")
        period = parse_period(latest)
    calls = all_calls[all_calls["started_at"].map(period.contains)] if period else all_calls
    if calls.empty:
        raise ReportError(f"no finished calls in period {period.label} — months with calls: "
                          f"{', '.join(sorted(all_calls['month'].dropna().unique())) or 'none'}")
    results = load_rule_results(store, list(calls["call_id"]))
    categories = load_category_results(store, list(calls["call_id"]))
    report = Report(
        by=by, period=period, summary=metrics.summary(calls, by), rules=metrics.rule_rates(calls, results, by),
        categories=metrics.category_rates(calls, categories, by), by_agent=metrics.summary(calls, "agent"),
        by_team=metrics.summary(calls, "team"), by_month=metrics.summary(calls, "month"),
        overall=_overall(calls),
    )
    if monthly:
        months = _months_back(period.last, trend_months)
        window = all_calls[all_calls["month"].isin(months)]
        report.trend = metrics.trend(window, by)
        report.category_trend = metrics.category_trend(window, load_category_results(store, list(window["call_id"])))
        report.trend_months = [m for m in months if m in set(window["month"])]
    return report


def write_report(report: Report, out_dir: Path) -> ReportFiles:
    """Write ``report.html`` (charts under ``charts/``) and ``report.xlsx`` into ``out_dir``."""
    out_dir = Path(out_dir)
    chart_paths = _draw_charts(report, out_dir / "charts")
    by_label = BY_NAMES.get(report.by, report.by)
    html = render(
        "report.html.j2", out_dir / "report.html", report=report, by_label=by_label,
        charts=[p.relative_to(out_dir).as_posix() for p in chart_paths],
        rule_pivot=_pivot(report.rules, ["category", "rule_id"]), category_pivot=_pivot(report.categories, ["category"]),
    )
    xlsx = write_workbook(_sheets(report), out_dir / "report.xlsx")
    log.info("report written: %s, %s, %d charts", html, xlsx, len(chart_paths))
    return ReportFiles(html=html, xlsx=xlsx, charts=chart_paths)


def _overall(calls: pd.DataFrame) -> dict:
    row = metrics.summary(calls.assign(agent_id="all"), "agent").iloc[0].to_dict()
    row.pop("group", None)
    return row


def _months_back(last: date, count: int) -> list[str]:
    year, month = last.year, last.month
    months = []
    for _ in range(max(count, 1)):
        months.append(f"{year:04d}-{month:02d}")
        month -= 1
        if month == 0:
            year, month = year - 1, 12
    return sorted(months)


def _pivot(frame: pd.DataFrame, index: list[str]) -> dict:
    """Pass rates with a row per rule/category and a column per group, for the HTML tables."""
    if frame.empty:
        return {"groups": [], "rows": []}
    table = frame.pivot_table(index=index, columns="group", values="pass_rate", aggfunc="first", dropna=False)
    applicable = frame.pivot_table(index=index, columns="group", values="applicable", aggfunc="first", dropna=False)
    groups = [str(g) for g in table.columns]
    rows = []
    for key, values in table.iterrows():
        key = key if isinstance(key, tuple) else (key,)
        rows.append({"key": key, "cells": [(values[g], applicable.loc[key if len(key) > 1 else key[0], g]) for g in table.columns]})
    return {"groups": groups, "rows": rows}


def _draw_charts(report: Report, folder: Path) -> list[Path]:
    paths: list[Path] = []
    if report.monthly and report.trend is not None and not report.trend.empty:
        paths.append(charts.line_chart(report.trend, "month", "mean_percent", "group", f"Mean QA score by {report.by}",
                                       "score %", folder / "trend_mean_score.png", percent=False))
        paths.append(charts.line_chart(report.trend, "month", "pass_rate", "group", f"QA pass rate by {report.by}",
                                       "pass rate %", folder / "trend_pass_rate.png", percent=True))
        paths.append(charts.line_chart(report.trend, "month", "avg_handle_time_s", "group",
                                       f"Average handle time by {report.by}", "seconds", folder / "trend_handle_time.png"))
        if report.category_trend is not None and not report.category_trend.empty:
            paths.append(charts.line_chart(report.category_trend, "month", "pass_rate", "category",
                                           "Pass rate per category", "pass rate %", folder / "trend_categories.png", percent=True))
    elif not report.summary.empty:
        paths.append(charts.bar_chart(report.summary, "group", "mean_percent", f"Mean QA score by {report.by}", "score %",
                                      folder / "mean_score.png", percent=False))
        paths.append(charts.bar_chart(report.summary, "group", "pass_rate", f"QA pass rate by {report.by}", "pass rate %",
                                      folder / "pass_rate.png", percent=True))
    return paths


def _sheets(report: Report) -> dict[str, pd.DataFrame]:
    sheets = {
        "By agent": report.by_agent.rename(columns={"group": "agent"}),
        "By team": report.by_team.rename(columns={"group": "team"}),
        "By month": report.by_month.rename(columns={"group": "month"}),
        f"Rules by {report.by}": report.rules.rename(columns={"group": report.by}),
        f"Categories by {report.by}": report.categories.rename(columns={"group": report.by}),
    }
    if report.monthly:
        sheets[f"Trend by {report.by}"] = report.trend.rename(columns={"group": report.by})
        sheets["Category trend"] = report.category_trend
    return sheets
