"""The review console over a real store: token enforcement, the flagged-call queue and its orders,
the call page, the audio route (Range, no path traversal) and human reviews stored beside the
machine verdict."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from pipelines.review import queries
from pipelines.review.app import create_app
from pipelines.review.auth import TOKEN_COOKIE
from pipelines.results.store import CallRow, ReviewRow, RuleResultRow
from store_fixtures import build_store
from tests.review_support import signed_in_client, copy_store, post_review

TOKEN = "test-token-123"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("review"))


@pytest.fixture()
def fresh(built, tmp_path):
    """A store of its own, for tests that write reviews or edit rows."""
    return copy_store(built, tmp_path)


def _client(store) -> TestClient:
    return signed_in_client(store, TOKEN)


def _queue_ids(html: str) -> list[str]:
    return re.findall(r'<tr class="call" data-call="([^"]+)"', html)


# --------------------------------------------------------------------------- token
@pytest.mark.parametrize("path", ["/queue", "/calls/zh_rude_repeat", "/audio/zh_rude_repeat", "/calibration", "/"])
def test_every_route_needs_the_token(built, path):
    client = TestClient(create_app(built.store, TOKEN))
    missing = client.get(path, follow_redirects=False)
    assert missing.status_code == 401
    assert "callqa serve" in missing.text
    wrong = client.get(path, headers={"Authorization": "Bearer nope"}, follow_redirects=False)
    assert wrong.status_code == 403
    wrong_cookie = TestClient(create_app(built.store, TOKEN), cookies={TOKEN_COOKIE: "old"})
    assert wrong_cookie.get(path, follow_redirects=False).status_code == 403
    assert client.get(path, headers={"Authorization": f"Bearer {TOKEN}"}, follow_redirects=False).status_code in (200, 303)


def test_post_review_needs_the_token(fresh):
    client = TestClient(create_app(fresh.store, TOKEN))
    response = client.post("/calls/zh_rude_repeat/reviews", data={
        "rule_id": "forbidden.rude_repeat_request", "human_verdict": "pass", "reviewer": "mallory"})
    assert response.status_code == 401
    assert fresh.store.count("reviews") == 0


def test_query_token_is_kept_in_a_cookie_and_dropped_from_the_address(built):
    client = TestClient(create_app(built.store, TOKEN))
    first = client.get(f"/queue?sort=agent&token={TOKEN}", follow_redirects=False)
    assert first.status_code == 303
    assert first.headers["location"].endswith("/queue?sort=agent")
    cookie = first.headers["set-cookie"]
    assert f"{TOKEN_COOKIE}={TOKEN}" in cookie and "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    assert client.get("/queue?sort=agent").status_code == 200  # the cookie alone now


# --------------------------------------------------------------------------- queue
def test_queue_lists_flagged_and_failing_calls_fatal_first(built):
    html = _client(built.store).get("/queue").text
    ids = _queue_ids(html)
    # every call with a failed rule is there; the three clean calls are not
    assert set(ids) == set(built.call_ids) - {"en_good_stereo", "zh_good_mono", "zh_good_stereo"}
    assert ids[0] == "zh_rude_repeat"  # the only fatal call
    by_id = {c.call_id: c for c in built.store.calls()}
    percents = [by_id[i].percent for i in ids[1:]]
    assert percents == sorted(percents), "after fatal calls, lowest score first"
    assert "fatal rule failed" in html


def test_queue_sort_orders(built):
    client = _client(built.store)
    by_id = {c.call_id: c for c in built.store.calls()}

    agents = [by_id[i].agent_id for i in _queue_ids(client.get("/queue?sort=agent").text)]
    assert agents == sorted(agents) and len(set(agents)) > 1

    dates = [by_id[i].started_at for i in _queue_ids(client.get("/queue?sort=date").text)]
    assert dates == sorted(dates, reverse=True), "newest first"
    assert dates[0] == "2024-05-15T09:20:44+08:00"

    items = queries.flagged_queue(built.store, sort="rule")
    first_rules = [i.failed_rules[0] for i in items]
    assert first_rules == sorted(first_rules)
    assert _queue_ids(client.get("/queue?sort=rule").text) == [i.call_id for i in items]

    bad = client.get("/queue?sort=colour")
    assert bad.status_code == 400 and "severity" in bad.text


def test_queue_filters(built):
    client = _client(built.store)
    ids = _queue_ids(client.get("/queue?rule=closing.welcome_again").text)
    assert sorted(ids) == ["en_no_closing", "zh_no_closing"]
    ids = _queue_ids(client.get("/queue?agent=E1024").text)
    assert ids == ["en_no_closing", "en_good_8k"]  # lower score first
    empty = client.get("/queue?agent=E1024&rule=greeting.standard").text
    assert _queue_ids(empty) == [] and "clear them" in empty


# --------------------------------------------------------------------------- call page
def test_call_page_shows_audio_evidence_and_transcript(built):
    html = _client(built.store).get("/calls/zh_rude_repeat").text
    assert '<audio id="player"' in html and 'src="/audio/zh_rude_repeat"' in html
    with Session(built.store.engine) as session:
        rows = list(session.scalars(select(RuleResultRow).where(RuleResultRow.call_id == "zh_rude_repeat")))
        utterances = built.store.count("utterances", "zh_rude_repeat")
    fatal = next(r for r in rows if r.rule_id == "forbidden.rude_repeat_request")
    evidence = json.loads(fatal.evidence)
    assert evidence, "the fatal rule has evidence to show"
    row_html = html.split('id="rule-forbidden.rude_repeat_request"', 1)[1].split("</tr>", 1)[0]
    for item in evidence:
        assert f'class="seek" data-t="{item["start"]}"' in row_html
        assert item["text"] in row_html
    assert len(re.findall(r'<tr class="rule"', html)) == len(rows)
    # the transcript, one line per utterance, labelled by role
    transcript = html.split('id="transcript"', 1)[1]
    assert transcript.count('<div class="utt ') == utterances
    assert "坐席 agent" in transcript and "客户 customer" in transcript
    # failed rules are listed first
    verdicts = re.findall(r'<tr class="rule" id="[^"]+" data-rule="[^"]+" data-verdict="(\w+)"', html)
    assert verdicts[0] == "fail" and "fail" not in verdicts[verdicts.index("pass"):]


def test_unknown_call_page_is_404(built):
    response = _client(built.store).get("/calls/nope")
    assert response.status_code == 404 and "queue" in response.text


# --------------------------------------------------------------------------- audio
def test_audio_is_served_with_range_support(built):
    client = _client(built.store)
    source = Path(next(c.source for c in built.store.calls() if c.call_id == "zh_rude_repeat"))
    full = client.get("/audio/zh_rude_repeat")
    assert full.status_code == 200
    assert full.headers["content-type"] == "audio/flac"
    assert full.content == source.read_bytes()
    part = client.get("/audio/zh_rude_repeat", headers={"Range": "bytes=0-99"})
    assert part.status_code == 206
    assert part.content == source.read_bytes()[:100]
    assert part.headers["content-range"] == f"bytes 0-99/{source.stat().st_size}"
    mp3 = client.get("/audio/en_good_stereo", headers={"Range": "bytes=100-"})
    assert mp3.status_code == 206 and mp3.headers["content-type"] == "audio/mpeg"


@pytest.mark.parametrize("path", [
    "/audio/nope", "/audio/../../etc/passwd", "/audio/..%2F..%2Fetc%2Fpasswd", "/audio/%2Fetc%2Fpasswd",
    "/audio/samples%2Fcalls%2Fzh_rude_repeat.flac",
])
def test_audio_only_for_calls_in_the_store(built, path):
    response = _client(built.store).get(path)
    assert response.status_code == 404
    assert b"root:" not in response.content


def test_audio_missing_file_is_404_with_a_fix(fresh):
    with Session(fresh.store.engine) as session, session.begin():
        session.execute(update(CallRow).where(CallRow.call_id == "zh_interrupt").values(source="/nonexistent/x.flac"))
    client = _client(fresh.store)
    response = client.get("/audio/zh_interrupt")
    assert response.status_code == 404 and "/nonexistent/x.flac" in response.text and "restore" in response.text
    assert "restore the file" in client.get("/calls/zh_interrupt").text


# --------------------------------------------------------------------------- reviews
def _rule_row(store, call_id: str, rule_id: str) -> dict:
    with Session(store.engine) as session:
        row = session.scalars(select(RuleResultRow).where(
            RuleResultRow.call_id == call_id, RuleResultRow.rule_id == rule_id)).one()
        return {c: getattr(row, c) for c in ("id", "verdict", "points", "max_points", "fatal", "evidence")}


def test_review_is_stored_beside_the_machine_verdict(fresh):
    client = _client(fresh.store)
    rule = "forbidden.rude_repeat_request"
    before = _rule_row(fresh.store, "zh_rude_repeat", rule)
    t0 = time.time()
    response = post_review(client, "zh_rude_repeat", follow_redirects=False, data={
        "rule_id": rule, "human_verdict": "pass", "reviewer": " Li Na ", "note": "customer asked to repeat politely"})
    t1 = time.time()
    assert response.status_code == 303
    assert response.headers["location"] == f"/calls/zh_rude_repeat#rule-{rule}"
    assert "callqa_reviewer=" in response.headers["set-cookie"]

    assert _rule_row(fresh.store, "zh_rude_repeat", rule) == before  # machine verdict untouched
    with Session(fresh.store.engine) as session:
        reviews = list(session.scalars(select(ReviewRow)))
    assert len(reviews) == 1
    review = reviews[0]
    assert (review.call_id, review.rule_id, review.machine_verdict, review.human_verdict) == ("zh_rude_repeat", rule, "fail", "pass")
    assert review.reviewer == "Li Na" and review.note == "customer asked to repeat politely"
    assert t0 <= review.created_at <= t1

    page = client.get("/calls/zh_rude_repeat").text
    row_html = page.split(f'id="rule-{rule}"', 1)[1].split("</tr>", 1)[0]
    assert "overturned fail" in row_html and "by Li Na" in row_html
    assert '<b>FAIL</b>' in row_html  # the machine's verdict still shown
    assert 'id="reviewer" value="Li Na"' in page  # remembered for the next review
    assert _queue_ids(client.get("/queue").text)  # queue still renders with review counts
    assert re.search(r'data-call="zh_rude_repeat">.*?<td>1</td>\s*</tr>', client.get("/queue").text, re.S)


def test_second_review_adds_a_row_and_uses_remembered_reviewer(fresh):
    client = _client(fresh.store)
    data = {"rule_id": "greeting.standard", "human_verdict": "fail", "reviewer": "Ann"}
    assert post_review(client, "zh_no_greeting", data, follow_redirects=False).status_code == 303
    client.cookies.set("callqa_reviewer", "Ann")
    data = {"rule_id": "greeting.standard", "human_verdict": "pass", "note": "greeting was there, ASR missed it"}
    assert post_review(client, "zh_no_greeting", data, follow_redirects=False).status_code == 303
    with Session(fresh.store.engine) as session:
        reviews = list(session.scalars(select(ReviewRow).order_by(ReviewRow.id)))
    assert [(r.human_verdict, r.reviewer) for r in reviews] == [("fail", "Ann"), ("pass", "Ann")]


@pytest.mark.parametrize("data, message", [
    ({"rule_id": "greeting.standard", "human_verdict": "pass", "reviewer": ""}, "reviewer field"),
    ({"rule_id": "greeting.standard", "human_verdict": "maybe", "reviewer": "Ann"}, "pass, fail, na"),
    ({"rule_id": "no.such_rule", "human_verdict": "pass", "reviewer": "Ann"}, "no result for rule no.such_rule"),
])
def test_bad_reviews_are_refused_and_not_stored(fresh, data, message):
    response = post_review(_client(fresh.store), "zh_no_greeting", data)
    assert response.status_code == 400
    assert message in response.text and "not saved" in response.text
    assert fresh.store.count("reviews") == 0


def test_review_for_unknown_call_is_404(fresh):
    response = post_review(_client(fresh.store), "nope", token_from="zh_no_greeting", data={
        "rule_id": "greeting.standard", "human_verdict": "pass", "reviewer": "Ann"})
    assert response.status_code == 404
    assert fresh.store.count("reviews") == 0
