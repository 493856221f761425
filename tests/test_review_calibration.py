"""Calibration numbers on a hand-made set of reviews, the page, and the ``calibrate`` command."""

from __future__ import annotations

import csv
import io
import re

import pytest
import typer
from fastapi.testclient import TestClient
from sklearn.metrics import cohen_kappa_score
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from pipelines.review import calibration, commands
from pipelines.review.app import create_app
from pipelines.review.auth import TOKEN_COOKIE
from pipelines.results.store import ReviewRow
from store_fixtures import build_store
from tests.review_support import copy_store, post_review

# rule A over 10 calls (machine, human): 4 pass/pass, 1 pass/fail, 2 fail/pass, 3 fail/fail.
# By hand: p_o = 7/10 = 0.7; machine pass 5/10, human pass 6/10 -> p_e = .5*.6 + .5*.4 = 0.5;
# kappa = (0.7 - 0.5) / (1 - 0.5) = 0.4.
RULE_A = [("pass", "pass")] * 4 + [("pass", "fail")] + [("fail", "pass")] * 2 + [("fail", "fail")] * 3
# rule B: 3 agreeing passes -> 100 %, kappa undefined (one verdict on both sides).
RULE_B = [("pass", "pass")] * 3
# rule C: na judged fail (a disagreement outside pass/fail) and one fail/fail -> 50 %, kappa undefined.
RULE_C = [("na", "fail"), ("fail", "fail")]


def _add_reviews(store, call_ids: list[str]) -> None:
    rows = []
    t = 1_700_000_000.0
    for rule_id, pairs in (("rule.a", RULE_A), ("rule.b", RULE_B), ("rule.c", RULE_C)):
        for call_id, (machine, human) in zip(call_ids, pairs):
            t += 1
            rows.append(ReviewRow(call_id=call_id, rule_id=rule_id, machine_verdict=machine, human_verdict=human,
                                  reviewer="hand", note="", created_at=t))
    # an older review of (call 0, rule.a) that the reviewer later changed: must not count
    rows.append(ReviewRow(call_id=call_ids[0], rule_id="rule.a", machine_verdict="pass", human_verdict="fail",
                          reviewer="hand", note="first look", created_at=1_600_000_000.0))
    with Session(store.engine) as session, session.begin():
        session.add_all(rows)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("calibration"))


@pytest.fixture(scope="module")
def hand_made(pristine, tmp_path_factory):
    built = copy_store(pristine, tmp_path_factory.mktemp("hand_made"))
    _add_reviews(built.store, built.call_ids)
    return built


def test_kappa_by_hand():
    assert calibration.cohen_kappa(RULE_A) == pytest.approx(0.4)
    assert calibration.cohen_kappa(RULE_A) == pytest.approx(cohen_kappa_score(*zip(*RULE_A)))
    assert calibration.cohen_kappa([("pass", "fail"), ("fail", "pass")]) == pytest.approx(-1.0)
    assert calibration.cohen_kappa(RULE_B) is None
    assert calibration.cohen_kappa([]) is None
    assert calibration.cohen_kappa([("na", "na")]) is None


def test_agreement_per_rule_most_disagreeing_first(hand_made):
    pairs = calibration.current_pairs(hand_made.store)
    assert len(pairs) == 15  # the superseded review is not counted
    rows = calibration.agreement(pairs)
    assert [r.rule_id for r in rows] == ["rule.a", "rule.c", "rule.b"]
    a, c, b = rows
    assert (a.reviewed, a.agree, a.disagree) == (10, 7, 3)
    assert a.percent_agree == pytest.approx(70.0)
    assert a.kappa == pytest.approx(0.4)
    assert (a.machine_pass_human_fail, a.machine_fail_human_pass, a.other_disagree) == (1, 2, 0)
    assert (c.reviewed, c.agree, c.other_disagree, c.kappa) == (2, 1, 1, None)
    assert (b.reviewed, b.agree, b.percent_agree, b.kappa) == (3, 3, 100.0, None)
    total = calibration.overall(pairs)
    assert (total.reviewed, total.agree) == (15, 11)
    # all 14 pass/fail items together: 11 agree; machine pass 8, human pass 9 -> p_e = (8*9 + 6*5)/196
    expected = (11 / 14 - (8 * 9 + 6 * 5) / 196) / (1 - (8 * 9 + 6 * 5) / 196)
    assert total.kappa == pytest.approx(expected)


def test_calibration_page_and_csv(hand_made):
    client = TestClient(create_app(hand_made.store, "t"), cookies={TOKEN_COOKIE: "t"})
    html = client.get("/calibration").text
    assert html.index('data-rule="rule.a"') < html.index('data-rule="rule.c"') < html.index('data-rule="rule.b"')
    row_a = html.split('data-rule="rule.a"', 1)[1].split("</tr>", 1)[0]
    assert '<td class="pct">70.0</td>' in row_a and '<td class="kappa">0.40</td>' in row_a
    row_b = html.split('data-rule="rule.b"', 1)[1].split("</tr>", 1)[0]
    assert '<td class="kappa">—</td>' in row_b
    response = client.get("/calibration?format=csv")
    assert response.headers["content-type"].startswith("text/csv")
    records = list(csv.DictReader(io.StringIO(response.text)))
    assert records[0]["rule_id"] == "rule.a" and records[0]["kappa"] == "0.4" and records[0]["percent_agree"] == "70.0"
    assert records[2]["kappa"] == ""
    # the overturned cases, most-disagreeing rule first, linked to their call pages
    cases = re.findall(r'<tr class="case" data-rule="([^"]+)" data-call="([^"]+)"', html)
    assert [rule for rule, _ in cases] == ["rule.a"] * 3 + ["rule.c"]
    assert f'href="/calls/{cases[0][1]}#rule-rule.a"' in html


def test_overturning_a_verdict_changes_calibration(pristine, tmp_path):
    built = copy_store(pristine, tmp_path)
    client = TestClient(create_app(built.store, "t"), cookies={TOKEN_COOKIE: "t"})
    assert "No reviews yet" in client.get("/calibration").text
    rule = "greeting.standard"
    post_review(client, "zh_good_mono", {"rule_id": rule, "human_verdict": "pass", "reviewer": "Ann"})
    row = client.get("/calibration").text.split(f'data-rule="{rule}"', 1)[1].split("</tr>", 1)[0]
    assert '<td class="agree">1</td>' in row and '<td class="pct">100.0</td>' in row
    post_review(client, "zh_no_greeting", {"rule_id": rule, "human_verdict": "pass", "reviewer": "Ann"})
    row = client.get("/calibration").text.split(f'data-rule="{rule}"', 1)[1].split("</tr>", 1)[0]
    assert '<td class="disagree">1</td>' in row and '<td class="pct">50.0</td>' in row
    assert '<td class="kappa">0.00</td>' in row  # machine pass+fail vs human pass+pass: p_o = p_e = 0.5


# --------------------------------------------------------------------------- command line
def _cli() -> typer.Typer:
    app = typer.Typer()
    commands.register(app)
    return app


def test_calibrate_cli_writes_csv_and_html(hand_made, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cal.csv"
    result = runner.invoke(_cli(), ["calibrate", "--store-dir", str(hand_made.out_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    records = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["rule_id"] for r in records] == ["rule.a", "rule.c", "rule.b"]
    assert records[0]["reviewed"] == "10" and records[0]["kappa"] == "0.4"

    html = tmp_path / "cal.html"
    result = runner.invoke(_cli(), ["calibrate", "--store", hand_made.store.url, "--out", str(html)])
    assert result.exit_code == 0, result.output
    text = html.read_text(encoding="utf-8")
    assert 'data-rule="rule.a"' in text and "0.40" in text
    assert text.count('<tr class="case"') == 4
    assert "/queue" not in text and "/calls/" not in text  # standalone: no console links

    result = runner.invoke(_cli(), ["calibrate", "--store-dir", str(hand_made.out_dir)])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[1].split()[:5] == ["rule.a", "10", "7", "70.0", "0.40"]
    overall = next(i for i, line in enumerate(lines) if line.startswith("(all rules)"))
    # then the same figure for why the calls were reviewed: none was drawn at random here
    assert [line.split("  ")[0] for line in lines[overall + 1:]] == ["flagged/fatal/picked calls (biased)"]


def test_calibrate_cli_errors(pristine, tmp_path):
    runner = CliRunner()
    result = runner.invoke(_cli(), ["calibrate"])
    assert result.exit_code == 1 and "--store-dir" in result.output
    result = runner.invoke(_cli(), ["calibrate", "--store-dir", str(tmp_path / "none")])
    assert result.exit_code == 1 and "no results store" in result.output
    built = copy_store(pristine, tmp_path)
    result = runner.invoke(_cli(), ["calibrate", "--store-dir", str(built.out_dir), "--out", str(tmp_path / "x.pdf")])
    assert result.exit_code == 1 and ".csv or .html" in result.output
    result = runner.invoke(_cli(), ["calibrate", "--store-dir", str(built.out_dir)])
    assert result.exit_code == 0 and "no human reviews" in result.output


def test_serve_prints_the_tokened_address_and_binds_localhost(pristine, monkeypatch):
    import uvicorn

    built = pristine
    seen = {}
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: seen.update(app=app, **kw))
    monkeypatch.delenv("CALLQA_REVIEW_TOKEN", raising=False)
    result = CliRunner().invoke(_cli(), ["serve", "--store-dir", str(built.out_dir)])
    assert result.exit_code == 0, result.output
    assert seen["host"] == "127.0.0.1" and seen["port"] == 8765
    token = result.output.split("?token=", 1)[1].split()[0]
    assert len(token) >= 20 and "generated" in result.output
    client = TestClient(seen["app"])
    assert client.get("/queue").status_code == 401
    assert client.get("/queue", headers={"Authorization": f"Bearer {token}"}).status_code == 200

    monkeypatch.setenv("CALLQA_REVIEW_TOKEN", "from-env")
    result = CliRunner().invoke(_cli(), ["serve", "--store-dir", str(built.out_dir), "--port", "9000"])
    assert "?token=from-env" in result.output and seen["port"] == 9000


def test_main_cli_has_the_review_commands():
    from pipelines.shell.cli import app

    names = {c.name for c in app.registered_commands}
    assert {"serve", "calibrate"} <= names
