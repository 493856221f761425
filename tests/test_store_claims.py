"""Claims on one SQLite store, case by case: a call is taken when it is wanted (pending, failed,
finished with other inputs, or forced) and nobody live holds it; a claim whose worker is gone (dead
process on this host, no worker recorded, or another host's claim past STALE_CLAIM_S) is taken over;
a live one is not.  tests/test_scale_out_postgres.py races real workers on PostgreSQL."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest
from sqlalchemy import update

from pipelines.results.store import STALE_CLAIM_S, CallRow, Store, default_store_url
from qa_rules.records import CallSource


@pytest.fixture
def store(tmp_path) -> Store:
    store = Store(default_store_url(tmp_path))
    store.register([CallSource(call_id="c1", path=tmp_path / "c1.wav")])
    return store


def _set(store: Store, **values) -> None:
    with store.engine.begin() as conn:
        conn.execute(update(CallRow).where(CallRow.call_id == "c1").values(**values))


def _row(store: Store) -> CallRow:
    return next(r for r in store.calls() if r.call_id == "c1")


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_pending_call_is_taken_once(store):
    assert store.claim("c1", "w1", "in", "rb")
    row = _row(store)
    assert (row.status, row.claimed_by, row.claims) == ("processing", "w1", 1) and row.claimed_at
    assert not store.claim("c1", "w2", "in", "rb")  # "w1" names no process: held until it is stale
    assert _row(store).claims == 1


def test_an_unknown_call_is_not_taken(store):
    assert not store.claim("nope", "w1", "in", "rb")


@pytest.mark.parametrize("status, input_key, rulebook_key, force, taken", [
    ("done", "in", "rb", False, False),  # finished with the same inputs
    ("done", "in", "rb", True, True),  # ... unless forced
    ("done", "in", "other", False, True),  # a rulebook change
    ("done", "other", "rb", False, True),  # other audio or settings
    ("done", None, None, False, True),  # finished before keys were recorded
    ("failed", "in", "rb", False, True),
    ("pending", "in", "rb", False, True),
])
def test_finished_calls_are_taken_only_when_their_inputs_changed(store, status, input_key, rulebook_key, force, taken):
    _set(store, status=status, input_key=input_key, rulebook_key=rulebook_key)
    assert store.claim("c1", "w1", "in", "rb", force=force) is taken
    assert store.wants_processing("c1", "in", "rb", force=force) is False  # taken now, or never wanted
    assert _row(store).claims == int(taken)


def _hold(store: Store, claimed_by: str | None, claimed_at: float | None) -> None:
    _set(store, status="processing", claimed_by=claimed_by, claimed_at=claimed_at)


@pytest.mark.parametrize("force", [False, True])
def test_a_live_workers_claim_is_respected(store, force):
    _hold(store, f"{socket.gethostname()}:{os.getpid()}:abc", time.time())
    assert not store.claim("c1", "w2", "in", "rb", force=force)
    assert _row(store).claimed_by.endswith(":abc")


def test_another_hosts_recent_claim_is_respected_and_a_stale_one_taken_over(store):
    _hold(store, "elsewhere:123:abc", time.time() - 60)
    assert not store.claim("c1", "w2", "in", "rb")
    _hold(store, "elsewhere:123:abc", time.time() - STALE_CLAIM_S - 60)
    assert store.claim("c1", "w2", "in", "rb")
    assert _row(store).claimed_by == "w2"


@pytest.mark.parametrize("claimed_by, claimed_at", [
    (None, None), (None, 1.0), ("x:1:a", None),  # a claim with no worker or no time
    ("DEAD", 1.0),  # a process of this host that is gone
])
def test_a_dead_claim_is_taken_over(store, claimed_by, claimed_at):
    if claimed_by == "DEAD":
        claimed_by, claimed_at = f"{socket.gethostname()}:{_dead_pid()}:abc", time.time()
    _hold(store, claimed_by, claimed_at)
    assert store.claim("c1", "w2", "in", "rb")
    row = _row(store)
    assert (row.status, row.claimed_by, row.claims) == ("processing", "w2", 1)


def test_register_adds_calls_once_and_refreshes_only_the_metadata_given(tmp_path):
    store = Store(default_store_url(tmp_path))
    store.register([CallSource(call_id="a", path=tmp_path / "a.wav", agent_id="A1", team="T1"),
                    CallSource(call_id="b", path=tmp_path / "b.wav", started_at="2024-06-01")])
    assert store.claim("a", "w1", "in", "rb")
    store.register([CallSource(call_id="a", path=tmp_path / "a2.wav", team="T2", root=tmp_path),
                    CallSource(call_id="b", path=tmp_path / "b.wav"), CallSource(call_id="c", path=tmp_path / "c.wav")])
    rows = {r.call_id: r for r in store.calls()}
    assert (rows["a"].agent_id, rows["a"].team, rows["a"].source, rows["a"].source_root) == (
        "A1", "T2", str(tmp_path / "a2.wav"), str(tmp_path))  # kept, refreshed, moved
    assert (rows["a"].status, rows["a"].claims) == ("processing", 1)  # a known call is not reset
    assert (rows["b"].started_at, rows["b"].agent_id) == ("2024-06-01", None)
    assert (rows["c"].status, rows["c"].claims, rows["c"].agent_id) == ("pending", 0, None)


def test_wanted_answers_as_wants_processing_does_call_by_call(store, tmp_path):
    store.register([CallSource(call_id=f"c{k}", path=tmp_path / f"c{k}.wav") for k in range(2, 6)])
    _set(store, status="done", input_key="in", rulebook_key="rb")  # c1 finished
    assert store.claim("c2", f"{socket.gethostname()}:{os.getpid()}:abc", "in", "rb")  # c2 held by a live worker
    inputs = {f"c{k}": "in" for k in range(1, 6)} | {"unknown": "in"}
    for force in (False, True):
        expected = {c for c, key in inputs.items() if store.wants_processing(c, key, "rb", force)}
        assert store.wanted(inputs, "rb", force) == expected
    assert store.wanted(inputs, "rb") == {"c3", "c4", "c5"}
    assert store.wanted(inputs, "rb", force=True) == {"c1", "c3", "c4", "c5"}
