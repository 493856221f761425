"""Helpers shared by the review tests (named ``test_review_*`` only because that is the review
package's share of ``tests/``; it holds no tests).

Building a store scores 13 calls (about a second); tests that write to a store get a copy of a
store built once per session instead, which keeps the review tests well under a minute.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path

from pipelines.results.store import Store, default_store_url
from store_fixtures import BuiltStore


def copy_store(built: BuiltStore, dest: Path) -> BuiltStore:
    """A private copy of ``built``'s SQLite store under ``dest/results`` (scorecards stay shared, read-only)."""
    out_dir = dest / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(built.store.url.split("///", 1)[1])
    target = sqlite3.connect(out_dir / "callqa.db")
    try:
        source.backup(target)
    finally:
        source.close()
        target.close()
    return BuiltStore(store=Store(default_store_url(out_dir)), out_dir=out_dir, call_ids=list(built.call_ids))


def csrf_token(client, call_id: str) -> str:
    """The CSRF token the call page gives this client's session, as a reviewer's browser gets it."""
    import re

    page = client.get(f"/calls/{call_id}")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found, f"no CSRF token on the page of {call_id} ({page.status_code})"
    return found.group(1)


def post_review(client, call_id: str, data: dict, token_from: str | None = None, **kwargs):
    """POST a review the way the call page's form does: with the session's CSRF token."""
    return client.post(f"/calls/{call_id}/reviews", data={**data, "csrf": csrf_token(client, token_from or call_id)}, **kwargs)


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def require_chromium() -> None:
    assert CHROMIUM.is_file(), (
        f"Debian Chromium is missing at {CHROMIUM}: the browser test needs it — install it with "
        "`apt-get install -y chromium` (Playwright's own browser download is not used)"
    )


@contextmanager
def live_console(store: Store, token: str):
    """The console app served by uvicorn on a free 127.0.0.1 port in a background thread; yields
    its base URL and stops it afterwards."""
    import socket
    import threading
    import time

    import uvicorn

    from pipelines.review.app import create_app

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(store, token), log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the console did not start within 10 s"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def signed_in_client(store: Store, token: str, **options):
    """A test client of the console whose token cookie is already set, as after signing in."""
    from fastapi.testclient import TestClient

    from pipelines.review.app import create_app
    from pipelines.review.auth import TOKEN_COOKIE

    client = TestClient(create_app(store, token, **options))
    client.cookies.set(TOKEN_COOKIE, token)
    return client
