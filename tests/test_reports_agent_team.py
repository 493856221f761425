"""Agent/team reports and the 月报: figures checked against values computed by hand from the store,
the Excel workbook, the HTML with its PNG charts, and `callqa report`."""

from __future__ import annotations

import re
import sqlite3

import openpyxl
import pytest
from typer.testing import CliRunner

from pipelines.results.period import parse_period
from pipelines.coaching.reports import ReportError, build_report, write_report
from store_fixtures import build_store

MAY = "started_at like '2024-05%' and status='done'"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Three months of the sample calls (2024-03..2024-05)."""
    return build_store(tmp_path_factory.mktemp("reports"), months=3)


def _one(built, sql: str, *args):
    with sqlite3.connect(built.out_dir / "callqa.db") as db:
        return db.execute(sql, args).fetchone()


def _row(frame, group: str) -> dict:
    rows = frame[frame["group"] == group].to_dict("records")
    assert len(rows) == 1, f"expected one row for {group}"
    return rows[0]


def test_agent_figures_match_the_store(built):
    report = build_report(built.store, by="agent", period=parse_period("2024-05"))
    a1024 = _row(report.summary, "A1024")
    # by hand (zh_default with the situational scripts and timing rules): A1024's six May calls score
    # 112 (good stereo), 112 (good mono), 94, 94 (unannounced hold, stereo and mono), 84 (rude repeat), 107 (fast) → 100.5
    assert a1024["calls"] == 6 and a1024["mean_score"] == pytest.approx(100.5)
    calls, mean_score, mean_pct, passed, fatal, aht, hold, duration = _one(
        built, f"select count(*), avg(score), avg(percent), avg(passed), sum(fatal), avg(duration_s), sum(hold_s), sum(duration_s) "
        f"from calls where agent_id='A1024' and {MAY}")
    assert a1024["calls"] == calls and a1024["mean_score"] == pytest.approx(mean_score)
    assert a1024["mean_percent"] == pytest.approx(mean_pct) and a1024["pass_rate"] == pytest.approx(passed)
    assert a1024["pass_rate"] == pytest.approx(5 / 6) and a1024["fatal_calls"] == fatal == 1
    assert a1024["avg_handle_time_s"] == pytest.approx(aht) and a1024["hold_share"] == pytest.approx(hold / duration)
    silence, talk = _one(built, f"select avg(silence_share), avg(agent_talk_ratio) from calls where agent_id='A1024' and {MAY}")
    assert a1024["silence_share"] == pytest.approx(silence) and a1024["agent_talk_ratio"] == pytest.approx(talk)
    assert set(report.summary["group"]) == {"A1024", "A2048", "E1024"}
    assert report.summary["calls"].sum() == 13 == report.overall["calls"]


def test_rule_and_category_pass_rates(built):
    report = build_report(built.store, by="agent", period=parse_period("2024-05"))
    rules = report.rules.set_index(["group", "rule_id"])
    # A2048 in May: zh_no_greeting fails the greeting, its three other calls pass → 3/4
    assert rules.loc[("A2048", "greeting.standard"), "pass_rate"] == pytest.approx(0.75)
    passed, applicable = _one(
        built, "select sum(r.verdict='pass'), sum(r.verdict in ('pass','fail')) from rule_results r join calls c using(call_id) "
        f"where c.agent_id='A1024' and r.rule_id='hold.announce_10s' and c.{MAY}")
    assert rules.loc[("A1024", "hold.announce_10s"), "applicable"] == applicable
    assert rules.loc[("A1024", "hold.announce_10s"), "pass_rate"] == pytest.approx(passed / applicable)
    categories = report.categories.set_index(["group", "category"])
    failed_calls = _one(built, "select count(distinct r.call_id) from rule_results r join calls c using(call_id) "
                        f"where c.agent_id='A2048' and r.category='closing' and r.verdict='fail' and c.{MAY}")[0]
    assert categories.loc[("A2048", "closing"), "failed"] == failed_calls == 1
    assert categories.loc[("A2048", "closing"), "pass_rate"] == pytest.approx(3 / 4)


def test_team_grouping_and_period_range(built):
    report = build_report(built.store, by="team", period=parse_period("2024-04-01..2024-05-31"))
    mobile = _row(report.summary, "mobile")
    count, mean = _one(built, "select count(*), avg(score) from calls where team='mobile' and started_at >= '2024-04-01' "
                       "and started_at < '2024-06-01'")
    assert (mobile["calls"], mobile["mean_score"]) == (count, pytest.approx(mean)) and count == 8
    with pytest.raises(ReportError, match="2024-05"):
        build_report(built.store, by="agent", period=parse_period("2023-01"))
    with pytest.raises(ReportError, match="agent, team"):
        build_report(built.store, by="customer")


def test_excel_workbook(built, tmp_path):
    files = write_report(build_report(built.store, by="agent", period=parse_period("2024-05")), tmp_path)
    book = openpyxl.load_workbook(files.xlsx)
    assert book.sheetnames == ["By agent", "By team", "By month", "Rules by agent", "Categories by agent"]
    sheet = book["By agent"]
    header = [c.value for c in sheet[1]]
    assert header[:4] == ["agent", "Calls", "Mean score (points)", "Mean score %"] and "Pass rate" in header
    rows = {r[0]: dict(zip(header, r)) for r in sheet.iter_rows(min_row=2, values_only=True)}
    assert set(rows) == {"A1024", "A2048", "E1024"}
    assert rows["A1024"]["Calls"] == 6 and rows["A1024"]["Mean score (points)"] == pytest.approx(100.5)  # as above
    assert sheet.freeze_panes == "A2" and sheet.column_dimensions["A"].width >= 7
    assert sheet.cell(row=2, column=header.index("Pass rate") + 1).number_format == "0.0%"
    assert book["By team"].max_row == 1 + 5  # five teams in May
    rules = book["Rules by agent"]
    assert rules.max_row - 1 == _distinct_agent_rules(built)


def _distinct_agent_rules(built) -> int:
    return _one(built, "select count(*) from (select distinct c.agent_id, r.rule_id from rule_results r "
                f"join calls c using(call_id) where c.{MAY})")[0]


def test_monthly_report_with_trend_charts(built, tmp_path):
    report = build_report(built.store, by="agent", monthly=True)
    assert report.period.label == "2024-05"  # the latest month by default
    assert report.trend_months == ["2024-03", "2024-04", "2024-05"]
    trend = report.trend.set_index(["month", "group"])
    for month in report.trend_months:
        mean = _one(built, "select avg(score) from calls where agent_id='A2048' and started_at like ?", f"{month}%")[0]
        assert trend.loc[(month, "A2048"), "mean_score"] == pytest.approx(mean)
    files = write_report(report, tmp_path)
    html = files.html.read_text(encoding="utf-8")
    images = re.findall(r'<img src="([^"]+\.png)"', html)
    assert len(images) == 4 and sorted(images) == sorted(p.relative_to(tmp_path).as_posix() for p in files.charts)
    for image in images:
        data = (tmp_path / image).read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    assert "质检月报" in html and 'id="trend"' in html
    book = openpyxl.load_workbook(files.xlsx)
    assert "Trend by agent" in book.sheetnames and book["Trend by agent"].max_row == 1 + 3 * 3


def test_report_command(built, tmp_path):
    from pipelines.shell.cli import app

    result = CliRunner().invoke(app, ["report", "--store-dir", str(built.out_dir), "--by", "team", "--period", "2024-05",
                                      "--monthly", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "report.html").is_file() and (tmp_path / "report.xlsx").is_file()
    assert len(list((tmp_path / "charts").glob("*.png"))) == 4
    store_url = f"sqlite:///{built.out_dir / 'callqa.db'}"
    plain = CliRunner().invoke(app, ["report", "--store", store_url, "--by", "agent", "--out", str(tmp_path / "all")])
    assert plain.exit_code == 0, plain.output
    assert 'data-group="A1024"' in (tmp_path / "all" / "report.html").read_text(encoding="utf-8")
    bad = CliRunner().invoke(app, ["report", "--store-dir", str(built.out_dir), "--period", "May", "--out", str(tmp_path)])
    assert bad.exit_code == 1 and "2024-05-01..2024-05-31" in bad.output
