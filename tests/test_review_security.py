"""The review console against an attacker (issue 11): no file served that is not a scored call's
audio inside its recording folder, no review stored from another origin or without the session's
CSRF token, relative redirects only, security headers on every response, the token kept out of
the access log."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from pipelines.review.app import create_app
from pipelines.review.auth import TOKEN_COOKIE
from qa_rules.records import CallSource
from store_fixtures import SAMPLE_CALLS, build_store
from tests.review_support import signed_in_client, copy_store, csrf_token, post_review

TOKEN = "security-token-456"
ROOT = Path(__file__).resolve().parents[1]
REVIEW = {"rule_id": "greeting.standard", "human_verdict": "pass", "reviewer": "Ann"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return build_store(tmp_path_factory.mktemp("security"))


@pytest.fixture()
def fresh(built, tmp_path):
    return copy_store(built, tmp_path)


def _client(store) -> TestClient:
    return signed_in_client(store, TOKEN)


# --------------------------------------------------------------------------- 2. audio
def test_audio_only_for_scored_calls_inside_their_recording_folder(fresh, tmp_path):
    calls = tmp_path / "calls"
    calls.mkdir()
    (calls / "leak.wav").symlink_to("/etc/passwd")
    shutil.copy(SAMPLE_CALLS / "en_no_closing.wav", calls / "fine.wav")
    (calls / "inside.wav").symlink_to(calls / "fine.wav")
    outside = tmp_path / "elsewhere.wav"
    shutil.copy(SAMPLE_CALLS / "en_no_closing.wav", outside)
    (calls / "away.wav").symlink_to(outside)
    store = fresh.store
    store.register([CallSource(call_id=name, path=calls / f"{name}.wav", root=calls.resolve())
                    for name in ("leak", "fine", "inside", "away")])
    store.mark_failed("leak", "test", "not an audio file (ffmpeg: Invalid data found when processing input)")
    client = _client(store)

    failed = client.get("/audio/leak")
    assert failed.status_code == 404 and b"root:" not in failed.content and "was not scored" in failed.text
    # even a call marked done (say, an edited store) never serves a link out of its folder
    from sqlalchemy import update
    from sqlalchemy.orm import Session

    from pipelines.results.store import CallRow

    with Session(store.engine) as session, session.begin():
        session.execute(update(CallRow).values(status="done").where(CallRow.call_id.in_(["leak", "fine", "inside", "away"])))
    for call_id in ("leak", "away"):
        refused = client.get(f"/audio/{call_id}")
        assert refused.status_code == 403 and b"root:" not in refused.content, call_id
        assert "outside its recording folder" in refused.text
    for call_id in ("fine", "inside"):
        served = client.get(f"/audio/{call_id}")
        assert served.status_code == 200 and served.headers["content-type"] == "audio/wav"
        assert served.content == (calls / "fine.wav").read_bytes()
    assert 'src="/audio/leak"' not in client.get("/calls/leak").text


# --------------------------------------------------------------------------- 3. CSRF
def test_review_posts_need_the_session_csrf_token(fresh):
    client = _client(fresh.store)
    missing = client.post("/calls/zh_no_greeting/reviews", data=REVIEW)
    assert missing.status_code == 403 and "Reload the call page" in missing.text
    forged = client.post("/calls/zh_no_greeting/reviews", data={**REVIEW, "csrf": "0" * 64})
    assert forged.status_code == 403
    other_session = _client(fresh.store)
    stolen = csrf_token(other_session, "zh_no_greeting")
    assert client.post("/calls/zh_no_greeting/reviews", data={**REVIEW, "csrf": stolen}).status_code == 403
    assert fresh.store.count("reviews") == 0
    assert post_review(client, "zh_no_greeting", REVIEW, follow_redirects=False).status_code == 303
    assert fresh.store.count("reviews") == 1


@pytest.mark.parametrize("headers", [
    {"Origin": "http://127.0.0.1:9999"}, {"Origin": "null"}, {"Sec-Fetch-Site": "same-site"},
    {"Sec-Fetch-Site": "cross-site", "Origin": "http://evil.example"},
])
def test_review_posts_from_another_origin_are_refused(fresh, headers):
    client = _client(fresh.store)
    data = {**REVIEW, "csrf": csrf_token(client, "zh_no_greeting")}
    response = client.post("/calls/zh_no_greeting/reviews", data=data, headers=headers, follow_redirects=False)
    assert response.status_code == 403 and "another web page" in response.text
    assert fresh.store.count("reviews") == 0
    same = client.post("/calls/zh_no_greeting/reviews", data=data, follow_redirects=False,
                       headers={"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"})
    assert same.status_code == 303 and fresh.store.count("reviews") == 1


def test_scripts_with_the_bearer_token_need_no_form_token(fresh):
    client = TestClient(create_app(fresh.store, TOKEN))
    response = client.post("/calls/zh_no_greeting/reviews", data=REVIEW, headers={"Authorization": f"Bearer {TOKEN}"},
                           follow_redirects=False)
    assert response.status_code == 303 and fresh.store.count("reviews") == 1


# --------------------------------------------------------------------------- 9. redirects, headers
def test_token_redirect_is_relative_and_ignores_the_host_header(built):
    from pipelines.review.auth import same_site_location

    client = TestClient(create_app(built.store, TOKEN))
    response = client.get(f"/queue?sort=agent&token={TOKEN}", headers={"Host": "evil.example"}, follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/queue?sort=agent"
    # a path that a browser would read as another host stays on this one
    assert same_site_location("//evil.example/queue") == "/evil.example/queue"
    assert same_site_location("/\\evil.example", "a=1") == "/evil.example?a=1"


@pytest.mark.parametrize("path, status", [("/queue", 200), ("/calls/zh_rude_repeat", 200), ("/audio/zh_rude_repeat", 200),
                                          ("/calibration", 200), ("/calls/nope", 404)])
def test_security_headers_on_every_response(built, path, status):
    response = _client(built.store).get(path)
    assert response.status_code == status
    refused = TestClient(create_app(built.store, TOKEN)).get(path)
    for r in (response, refused):
        assert r.headers["x-frame-options"] == "DENY"
        assert r.headers["x-content-type-options"] == "nosniff"
        assert r.headers["cache-control"] == "no-store"
        csp = r.headers["content-security-policy"]
        assert "default-src 'none'" in csp and "frame-ancestors 'none'" in csp and "form-action 'self'" in csp
    if path.startswith("/calls/zh"):
        nonce = re.search(r"script-src 'nonce-([^']+)'", response.headers["content-security-policy"]).group(1)
        assert f'<script nonce="{nonce}">' in response.text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_token_is_not_written_to_the_access_log(built, tmp_path):
    port = _free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipelines.shell.cli", "serve", "--store-dir", str(built.out_dir), "--port", str(port),
         "--token", TOKEN], stdout=log, stderr=subprocess.STDOUT, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        deadline = time.monotonic() + 60
        browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        while True:
            try:
                with browser.open(f"http://127.0.0.1:{port}/queue?sort=agent&token={TOKEN}", timeout=5) as reply:
                    assert reply.status == 200  # after the redirect that cookies the token
                break
            except urllib.error.URLError as exc:
                assert not isinstance(exc, urllib.error.HTTPError), exc
                assert proc.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
                time.sleep(0.3)
        time.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
    lines = (tmp_path / "serve.log").read_text().splitlines()
    access = [line for line in lines if "GET /queue" in line]
    assert access and any("token=***" in line for line in access), lines
    assert [line for line in lines if TOKEN in line] == [f"review console: http://127.0.0.1:{port}/queue?token={TOKEN}"]
