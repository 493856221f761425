"""Transcript search over a real store: Chinese words found through jieba segmentation, English
words, filters by role, agent, period and rule verdict, homophones by sound, and the index kept
up to date when a call is saved again."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from pipelines.shell.cli import app
from pipelines.results.search import query_terms, search, tokens
from store_fixtures import build_store
from tests.review_support import copy_store


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("search"))


def test_chinese_is_segmented_and_english_lower_cased():
    assert "退订" in tokens("我想退订这个套餐")
    assert query_terms("Cancel my PLAN") == ["cancel", "my", "plan"]


def test_search_finds_lines_with_time_speaker_and_filters(built):
    engine = built.store.engine
    hits = search(engine, "久等")
    assert hits and all("久等" in h.text for h in hits)
    assert {h.role for h in hits} == {"agent"}
    assert search(engine, "久等", role="customer") == []
    customers = search(engine, "谢谢", role="customer")
    assert customers and all(h.role == "customer" for h in customers)
    one = customers[0]
    assert search(engine, "谢谢", role="customer", agent=one.agent_id)
    assert all(h.agent_id == one.agent_id for h in search(engine, "谢谢", agent=one.agent_id))
    month = one.started_at[:7]
    assert all(h.started_at.startswith(month) for h in search(engine, "谢谢", since=month, until=month))
    assert search(engine, "谢谢", since="1999-01", until="1999-01") == []
    english = search(engine, "thank you")
    assert english and all("thank you" in h.text.lower() for h in english)


def test_rule_verdict_filter(built):
    engine = built.store.engine
    failed = search(engine, "您好", rule="greeting.standard", verdict="fail")
    assert {h.call_id for h in failed} <= {"zh_no_greeting"}
    passed = search(engine, "您好", rule="greeting.standard", verdict="pass")
    assert "zh_no_greeting" not in {h.call_id for h in passed} and passed


def _resave_with(built, tmp_path, call_id: str, extra: str):
    """A copy of the store where ``call_id``'s customer also said ``extra``."""
    from qa_rules.records import Conversation, Measures
    from pipelines.stages.scoring import score_and_report

    store = copy_store(built, tmp_path).store
    conversation = Conversation.read(built.out_dir / f"{call_id}.conversation.json")
    measures = Measures.read(built.out_dir / f"{call_id}.measures.json")
    changed = conversation.model_copy(update={"utterances": [
        u.model_copy(update={"text": u.text + extra}) if u.role == "customer" else u for u in conversation.utterances
    ]})
    card = score_and_report(changed, measures, tmp_path / "out")
    store.save(call_id, "t", "t", "t", changed, measures, card)
    return store


def test_homophones_are_found_by_sound(built, tmp_path):
    # the recogniser wrote 推定 (tui ding) where the customer said 退订 (tui ding)
    store = _resave_with(built, tmp_path, "zh_good_mono", "我想推定这个套餐")
    assert "zh_good_mono" not in {h.call_id for h in search(store.engine, "退订")}
    by_sound = search(store.engine, "退订", by_sound=True)
    assert "zh_good_mono" in {h.call_id for h in by_sound}
    assert any("推定" in h.text for h in by_sound)


def test_index_follows_a_re_saved_call(built, tmp_path):
    store = _resave_with(built, tmp_path, "zh_good_stereo", "宠物医院")
    assert {h.call_id for h in search(store.engine, "宠物医院")} == {"zh_good_stereo"}
    assert search(built.store.engine, "宠物医院") == []


def test_search_command(built):
    result = CliRunner().invoke(app, ["search", "久等", "--store-dir", str(built.out_dir), "--role", "agent"])
    assert result.exit_code == 0, result.output
    first = result.output.splitlines()[0].split("\t")
    assert len(first) == 5 and ":" in first[1] and first[2] == "agent" and "久等" in first[4]
    bad = CliRunner().invoke(app, ["search", "久等", "--store-dir", str(built.out_dir), "--role", "boss"])
    assert bad.exit_code == 1 and "--role must be agent or customer" in bad.output


@pytest.mark.parametrize("query", ['"', 'NEAR(a b)', "退订 OR *", "a' OR '1'='1", "\x00\x1b[31m", "投诉" * 500])
def test_hostile_queries_find_nothing_or_lines_but_never_break(built, query):
    hits = search(built.store.engine, query)
    assert all(isinstance(h.text, str) for h in hits)


def test_bad_period_is_one_clear_error(built):
    from tests.review_support import signed_in_client

    result = CliRunner().invoke(app, ["search", "久等", "--store-dir", str(built.out_dir), "--period", "2024-13"])
    assert result.exit_code == 1 and "month must be 01–12" in result.output
    page = signed_in_client(built.store, "tok").get("/search", params={"q": "久等", "period": "last week"})
    assert page.status_code == 400 and "period" in page.text
