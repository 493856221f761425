"""The console in a real browser: headless Debian Chromium (no Playwright browser download) opens
the queue, opens a call, clicks evidence and the audio seeks there, then saves a review; a page on
another 127.0.0.1 port (same *site* for the browser, so the token cookie goes along) cannot."""

from __future__ import annotations

import socket
import threading

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from pipelines.results.store import ReviewRow
from store_fixtures import build_store
from tests.review_support import CHROMIUM, CHROMIUM_ARGS, live_console, require_chromium

TOKEN = "browser-token"


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    """The app served by uvicorn on a free 127.0.0.1 port, in a background thread."""
    built = build_store(tmp_path_factory.mktemp("browser"))
    with live_console(built.store, TOKEN) as base:
        yield built, base


def test_queue_call_seek_and_review_in_chromium(console):
    require_chromium()
    from playwright.sync_api import sync_playwright

    built, base = console
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            page.goto(f"{base}/queue?token={TOKEN}")
            assert page.url == f"{base}/queue", "the token is dropped from the address once cookied"
            rows = page.locator("tr.call")
            assert rows.count() == 10
            assert rows.first.get_attribute("data-call") == "zh_rude_repeat"

            rows.first.locator("a.call-link").click()
            page.wait_for_url(f"{base}/calls/zh_rude_repeat")
            page.wait_for_function("document.getElementById('player').readyState >= 1")
            duration = page.evaluate("document.getElementById('player').duration")
            assert duration > 30, f"audio metadata not loaded (duration {duration})"

            rule_row = page.locator('tr.rule[data-rule="forbidden.rude_repeat_request"]')
            evidence = rule_row.locator("a.seek").first
            target = float(evidence.get_attribute("data-t"))
            assert 2.0 < target < duration - 1, f"pick evidence away from the start (got {target})"
            assert page.evaluate("document.getElementById('player').currentTime") < 0.5
            evidence.click()
            page.wait_for_function(
                "t => { const a = document.getElementById('player'); return !a.seeking && Math.abs(a.currentTime - t) <= 0.5; }",
                arg=target, timeout=10_000,
            )
            now = page.evaluate("document.getElementById('player').currentTime")
            assert abs(now - target) <= 0.5, f"audio at {now} s after clicking evidence at {target} s"

            page.fill("#reviewer", "Browser Reviewer")
            rule_row.locator("input[name=note]").fill("polite request, not rude")
            rule_row.locator("button.overturn").click()
            page.wait_for_selector('tr.rule[data-rule="forbidden.rude_repeat_request"] .human')
            shown = page.locator('tr.rule[data-rule="forbidden.rude_repeat_request"] .human').inner_text()
            assert "PASS" in shown and "overturned fail" in shown and "Browser Reviewer" in shown

            page.goto(f"{base}/calibration")
            assert page.locator('tr.cal-rule[data-rule="forbidden.rude_repeat_request"] td.disagree').inner_text() == "1"
        finally:
            browser.close()

    with Session(built.store.engine) as session:
        reviews = list(session.scalars(select(ReviewRow)))
    assert [(r.call_id, r.rule_id, r.machine_verdict, r.human_verdict, r.reviewer, r.note) for r in reviews] == [
        ("zh_rude_repeat", "forbidden.rude_repeat_request", "fail", "pass", "Browser Reviewer", "polite request, not rude")
    ]


def test_raw_traversal_request_to_live_server_is_404(console):
    """Send ``..`` segments exactly as written (clients normalise them away) to the real server."""
    _, base = console
    port = int(base.rsplit(":", 1)[1])
    for target in ("/audio/../../etc/passwd", "/audio/..%2F..%2Fetc%2Fpasswd", "/audio/%2e%2e/%2e%2e/etc/passwd"):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n".encode())
            reply = b""
            while chunk := conn.recv(65536):
                reply += chunk
        status = reply.split(b"\r\n", 1)[0]
        assert b" 404 " in status, f"{target}: {status!r}"
        assert b"root:" not in reply


ATTACK_PAGE = """<!doctype html><meta charset=utf-8><title>win a prize</title>
<form id=f method=post action="{target}">
<input name=rule_id value="forbidden.rude_repeat_request"><input name=human_verdict value=pass>
<input name=reviewer value=mallory><input name=note value=forged><input name=csrf value=guess></form>
<script>document.getElementById('f').submit()</script>"""


@pytest.fixture()
def attacker_site():
    """A page served by another server on another 127.0.0.1 port that posts a review on load."""
    import http.server

    pages: dict[str, bytes] = {}

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            body = pages.get(self.path, b"")
            self.send_response(200 if body else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):  # keep the test output quiet
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield pages, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_cross_origin_review_post_is_refused_in_chromium(console, attacker_site):
    from playwright.sync_api import sync_playwright

    built, base = console
    pages, evil = attacker_site
    target = f"{base}/calls/zh_rude_repeat/reviews"
    pages["/prize.html"] = ATTACK_PAGE.format(target=target).encode()
    with Session(built.store.engine) as session:
        before = len(list(session.scalars(select(ReviewRow))))
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(15_000)
            page.goto(f"{base}/queue?token={TOKEN}")  # the reviewer is signed in: the token cookie is set
            assert page.url == f"{base}/queue"
            with page.expect_response(target) as posted:
                page.goto(f"{evil}/prize.html")
            response = posted.value
            assert response.request.method == "POST"
            sent = response.request.all_headers()
            # the browser sent the reviewer's token cookie along: only CSRF and origin checks stop it
            assert "callqa_review_token=" in sent.get("cookie", ""), sent
            assert response.status == 403, f"cross-origin POST answered {response.status}"
            assert "another web page" in page.content()
        finally:
            browser.close()
    with Session(built.store.engine) as session:
        reviews = list(session.scalars(select(ReviewRow)))
    assert len(reviews) == before and not any(r.reviewer == "mallory" for r in reviews)
