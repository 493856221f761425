"""抽样: a sampling plan draws each agent's random calls plus every fatal and flagged call for a
period, reproducibly (seed), never the same call twice nor a reviewed one, assigned round-robin;
calibration tells the random (unbiased) part from the selected (biased) part."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pipelines.shell.cli import app
from pipelines.results.period import parse_period
from pipelines.review import calibration, queries
from pipelines.review.sampling import PlanError, assignments, draw, load_plan
from store_fixtures import build_store
from tests.review_support import copy_store

PLAN = """
id: monthly
seed: 7
random_per_agent: 2
include_fatal: true
include_flagged: true
strata: {length_s: [30]}
"""


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("sampling"), months=2)


def _month(built) -> str:
    return min(c.started_at[:7] for c in built.store.calls() if c.started_at)


def test_draw_is_reproducible_and_says_why(built, tmp_path):
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(PLAN, encoding="utf-8")
    plan = load_plan(plan_file)
    period = parse_period(_month(built))
    first = draw(copy_store(built, tmp_path / "a").store, plan, period, ["qa1", "qa2"])
    again = draw(copy_store(built, tmp_path / "b").store, plan, period, ["qa1", "qa2"])
    assert [(d.call_id, d.reason) for d in first] == [(d.call_id, d.reason) for d in again]
    calls = {c.call_id: c for c in built.store.calls() if period.contains(c.started_at)}
    assert all(d.call_id in calls for d in first)
    fatal = {cid for cid, c in calls.items() if c.fatal}
    assert fatal and fatal <= {d.call_id for d in first if d.reason == "fatal"}
    random_part = [d for d in first if d.reason == "random"]
    per_agent: dict[str, int] = {}
    for d in random_part:
        per_agent[d.agent_id] = per_agent.get(d.agent_id, 0) + 1
    assert random_part and all(n <= 2 for n in per_agent.values())
    assert all(d.stratum in ("length<30s", "length≥30s") for d in random_part)
    assert len({d.call_id for d in first}) == len(first)
    assert {d.assignee for d in first} == {"qa1", "qa2"}


def test_no_call_is_drawn_twice_nor_a_reviewed_one(built, tmp_path):
    store = copy_store(built, tmp_path).store
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(PLAN.replace("seed: 7", "seed: 8"), encoding="utf-8")
    plan, period = load_plan(plan_file), parse_period(_month(built))
    reviewed = "zh_good_stereo" if period.contains(next(c for c in store.calls() if c.call_id == "zh_good_stereo").started_at) else None
    if reviewed:
        queries.save_review(store, reviewed, "greeting.standard", "pass", "qa1")
    first = draw(store, plan, period)
    second = draw(store, plan, period)
    assert not {d.call_id for d in first} & {d.call_id for d in second}
    assert reviewed not in {d.call_id for d in first + second}
    assert set(assignments(store)) == {d.call_id for d in first + second}


def test_calibration_separates_the_random_part(built, tmp_path):
    store = copy_store(built, tmp_path).store
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(PLAN, encoding="utf-8")
    drawn = draw(store, load_plan(plan_file), parse_period(_month(built)))
    random_call = next(d.call_id for d in drawn if d.reason == "random")
    selected_call = next(d.call_id for d in drawn if d.reason != "random")
    queries.save_review(store, random_call, "greeting.standard", "pass", "qa1")
    queries.save_review(store, selected_call, "greeting.standard", "fail", "qa1")
    parts = calibration.pairs_by_sample(store)
    assert len(parts["random"]) == 1 and len(parts["selected"]) == 1
    from tests.review_support import signed_in_client

    page = signed_in_client(store, "tok").get("/calibration").text
    assert 'data-part="random"' in page and "unbiased" in page and 'data-part="selected"' in page


def test_bad_plans_are_refused_with_the_reason(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("seed: 1\nstrata: {team: true}\n", encoding="utf-8")
    with pytest.raises(PlanError, match="random_per_agent"):
        load_plan(bad)
    bad.write_text("random_per_agent: 2\nrandom_per_agnet: 3\n", encoding="utf-8")
    with pytest.raises(PlanError, match="random_per_agnet"):
        load_plan(bad)


def test_sample_command(built, tmp_path):
    copy = copy_store(built, tmp_path)
    plan_file = tmp_path / "plan.yaml"
    plan_file.write_text(PLAN, encoding="utf-8")
    result = CliRunner().invoke(app, ["sample", "--plan", str(plan_file), "--period", _month(built), "--assign", "qa1,qa2",
                                      "--store-dir", str(copy.out_dir)])
    assert result.exit_code == 0, result.output
    assert "calls drawn for" in result.output and "\trandom\t" in result.output
