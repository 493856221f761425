"""Scale-out on a real PostgreSQL: the whole nightly set-up on one machine, started by the test.

- a PostgreSQL server (Debian's package, :func:`tests.pg_server.postgres_server`) with two
  databases: ``prefect`` (the Prefect server's own database) and ``callqa`` (the results store);
- a Prefect server on that PostgreSQL;
- the ``gpu-process`` work pool and the ``nightly-qa`` deployment of ``prefect.yaml``
  (``prefect deploy``), and two Prefect ``process`` workers (``prefect worker start``), each told
  the store URL in ``CALLQA_BATCH_STORE_URL``, as the README says deployment workers should be;
- a batch of 20 short stereo calls (a manifest CSV), two flow runs of the deployment over it, one
  per worker, sharing the calls through the store's claims.

Mid-batch, once some calls are finished and a call claimed by one worker's flow run is being
processed, that worker is killed with SIGKILL together with its flow-run process (nothing runs its
clean-up).  A follow-up flow run of the deployment, picked up by the surviving worker, finishes the
batch.  The store must then hold every call done exactly once: one finished result per call (its
utterances and rule results stored once), no call lost, every call the killed run held taken over
(claimed twice, finished by the survivor) and every other call claimed once — and no SQLite store.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.prefect_support import wait_healthy
from tests.pg_server import postgres_missing, postgres_server

ROOT = Path(__file__).resolve().parents[1]
SOURCE_AUDIO = ROOT / "samples" / "calls" / "zh_good_stereo.flac"
CALLS = 20
PIECE_S = 5.0
# Starts (s) of the 5-second pieces cut from zh_good_stereo.flac: in each one party speaks and the
# other channel is quiet (found from the channels' levels), so every call has speech and costs one
# transcription pass; no two pieces hold the same audio, so the content-keyed analysis cache answers
# none of them and every call goes through the model.
STARTS = [0, 1, 2, 3, 9, 10, 20, 25, 26, 42, 43, 44, 45, 46, 47, 48, 49, 54, 55, 64]
assert len(STARTS) == CALLS

pytestmark = [
    pytest.mark.scale_out,
    pytest.mark.skipif(postgres_missing() is not None, reason=f"scale-out test skipped: {postgres_missing()}"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _write_batch(folder: Path) -> Path:
    """20 stereo calls (agent on the right channel, as in the samples' manifest) and their manifest."""
    import soundfile as sf

    audio, sr = sf.read(str(SOURCE_AUDIO), dtype="float32")
    folder.mkdir(parents=True)
    manifest = folder / "manifest.csv"
    with manifest.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["call_id", "path", "agent_id", "team", "started_at", "channel_map"])
        for i, start in enumerate(STARTS):
            call_id = f"scale_{i:02d}"
            sf.write(str(folder / f"{call_id}.flac"), audio[int(start * sr):int((start + PIECE_S) * sr)], sr)
            writer.writerow([call_id, f"{call_id}.flac", f"A{100 + i % 4}", "scale-out", f"2024-06-01T08:{i:02d}:00+08:00", "right"])
    return manifest


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rpartition(")")[2].split()[1])
            tree.setdefault(ppid, []).append(int(entry.name))
    return tree


def _descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _signal_tree(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to ``proc`` (started in a session of its own) and every process below it,
    whatever group they are in — never to this test's own process group."""
    below = _descendants(proc.pid)
    own = os.getpgrp()
    for pid in [proc.pid, *below]:
        try:
            group = os.getpgid(pid)
            if group != own:
                os.killpg(group, sig)
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass





def test_two_process_workers_on_postgres_one_killed_mid_batch_every_call_done_exactly_once(tmp_path):
    import sqlalchemy as sa

    from pipelines.results.store import Store

    started = time.monotonic()
    timings: dict[str, float] = {}

    def mark(what: str) -> None:
        timings[what] = round(time.monotonic() - started, 1)

    manifest = _write_batch(tmp_path / "calls")
    out = tmp_path / "out"
    home = tmp_path / "prefect_home"
    home.mkdir()
    spawned: list[subprocess.Popen] = []
    with postgres_server() as server:
        with sa.create_engine(server, isolation_level="AUTOCOMMIT").connect() as admin:
            admin.execute(sa.text("CREATE DATABASE prefect"))
            admin.execute(sa.text("CREATE DATABASE callqa"))
        base = server.rsplit("/", 1)[0]
        store_url = base + "/callqa"
        mark("postgres")
        port = _free_port()
        api = f"http://127.0.0.1:{port}/api"
        env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_API_URL": api,
               "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_LOGGING_LEVEL": "WARNING",
               "PYTHONPATH": str(ROOT), "CALLQA_HOME": str(ROOT)}
        for leak in ("CALLQA_STORE_URL", "CALLQA_BATCH_STORE_URL", "PREFECT_PROFILE"):
            env.pop(leak, None)
        server_env = {
            **env, "PREFECT_SERVER_DATABASE_CONNECTION_URL": base.replace("+psycopg", "+asyncpg") + "/prefect",
            "PREFECT_UI_ENABLED": "false",
            # nothing scheduled by the deployment's cron may start during the test
            "PREFECT_SERVER_SERVICES_SCHEDULER_ENABLED": "false",
            # model-slot waits ask again after 1 s (README, "Concurrent model calls")
            "PREFECT_SERVER_CONCURRENCY_MAXIMUM_CONCURRENCY_SLOT_WAIT_SECONDS": "1",
        }
        server_env.pop("PREFECT_API_URL")
        server_log = tmp_path / "prefect-server.log"
        try:
            spawned.append(subprocess.Popen(
                [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                env=server_env, cwd=tmp_path, stdout=server_log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
            ))
            wait_healthy(api, spawned[0], server_log, 180)
            mark("prefect server on postgres")

            def prefect(*args: str, timeout: float = 180) -> subprocess.Popen:
                proc = subprocess.Popen([sys.executable, "-m", "prefect", *args], env=env, cwd=ROOT, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
                proc.args_text, proc.deadline = " ".join(args), time.monotonic() + timeout
                spawned.append(proc)
                return proc

            def finish(*procs: subprocess.Popen) -> None:
                for proc in procs:
                    output = proc.communicate(timeout=max(1.0, proc.deadline - time.monotonic()))[0]
                    assert proc.returncode == 0, f"prefect {proc.args_text}:\n{output}"

            finish(prefect("work-pool", "create", "gpu-process", "--type", "process", "--overwrite"))
            deploy = prefect("--no-prompt", "deploy", "--name", "nightly-qa")  # prefect.yaml at the checkout's root
            # the workers start (importing Prefect takes seconds) while the deployment is made
            worker_env = {**env, "CALLQA_BATCH_STORE_URL": store_url, "CALLQA_ASR_MODEL": "base",
                          "CALLQA_DEVICE": "cpu", "CALLQA_THREADS": "2", "CALLQA_LANGUAGE": "zh",
                          "PREFECT_WORKER_QUERY_SECONDS": "1", "PREFECT_WORKER_PREFETCH_SECONDS": "5"}
            workers = []
            for n in range(2):
                proc = subprocess.Popen(
                    [sys.executable, "-m", "prefect", "worker", "start", "--pool", "gpu-process", "--limit", "1",
                     "--name", f"scale-out-{n}"],
                    env=worker_env, cwd=ROOT, stdout=(tmp_path / f"worker-{n}.log").open("w"), stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
                spawned.append(proc)
                workers.append(proc)
            finish(deploy)
            mark("pool + deployment")

            params = ["--param", f"source={manifest}", "--param", f"out={out}"]
            # the same batch twice: the two runs share it through the store's claims
            finish(*[prefect("deployment", "run", "qa-batch/nightly-qa", *params) for _ in range(2)])
            mark("two flow runs created")

            store = _wait_for_store(store_url, [spawned[0], *workers])
            victim, rows = _wait_for_mid_batch(store, workers, timeout=240)  # stopped, holding a call
            victim_pids = {str(pid) for pid in _descendants(victim.pid)}
            _signal_tree(victim)  # SIGKILL
            victim.wait(timeout=30)
            # what the killed run held at its death (read while it was stopped): left "processing"
            # under a dead process
            held = {r.call_id: r.claimed_by for r in rows
                    if r.status == "processing" and _pid(r.claimed_by) in victim_pids}
            done_at_kill = sum(r.status == "done" for r in rows)
            done_by_victim = {r.call_id for r in rows if r.status == "done" and _pid(r.processed_by) in victim_pids}
            mark(f"worker killed ({done_at_kill} calls done, {len(held)} held by the killed run)")
            assert held, "the kill must interrupt a call in progress"
            assert 0 < done_at_kill < CALLS - len(held), "the kill must land mid-batch"
            survivor = next(w for w in workers if w is not victim)

            # a follow-up run of the deployment: the survivor takes it after its own run
            finish(prefect("deployment", "run", "qa-batch/nightly-qa", *params, "--watch", "--watch-timeout", "500", timeout=600))
            mark("follow-up run finished")
            assert survivor.poll() is None, (tmp_path / f"worker-{workers.index(survivor)}.log").read_text()
        except BaseException:
            for log in sorted(tmp_path.glob("*.log")):
                print(f"\n--- {log.name} (end) ---\n{log.read_text(errors='replace')[-4000:]}")
            raise
        finally:
            for proc in reversed(spawned):
                _signal_tree(proc)
                proc.wait(timeout=30)

        rows = {r.call_id: r for r in store.calls()}
        expected = {f"scale_{i:02d}" for i in range(CALLS)}
        assert set(rows) == expected, "calls lost or added"
        assert {c: r.status for c, r in rows.items() if r.status != "done"} == {}, {c: r.error for c, r in rows.items()}
        retaken = {c for c, r in rows.items() if r.claims == 2}
        assert retaken == set(held), ({c: r.claims for c, r in rows.items()}, held)  # exactly the killed run's calls
        assert all(r.claims == 1 for c, r in rows.items() if c not in held), {c: r.claims for c, r in rows.items()}
        for call_id in held:  # finished by another process than the killed one
            assert _pid(rows[call_id].processed_by) not in victim_pids
        assert done_by_victim, "the killed worker's run had finished calls before its death"
        for call_id in done_by_victim:  # what the killed run finished is kept, not done again
            assert _pid(rows[call_id].processed_by) in victim_pids and rows[call_id].claims == 1
        with store.engine.connect() as connection:  # one result set per call, never doubled
            doubled = connection.execute(sa.text(
                "SELECT call_id, idx, count(*) FROM utterances GROUP BY call_id, idx HAVING count(*) > 1")).all()
            assert doubled == []
            doubled_rules = connection.execute(sa.text(
                "SELECT call_id, rule_id, count(*) FROM rule_results GROUP BY call_id, rule_id HAVING count(*) > 1")).all()
            assert doubled_rules == []
        for call_id in expected:
            conversation = json.loads((out / f"{call_id}.conversation.json").read_text(encoding="utf-8"))
            card = json.loads((out / f"{call_id}.scorecard.json").read_text(encoding="utf-8"))
            assert conversation["utterances"], f"{call_id}: no speech found"
            assert store.count("utterances", call_id) == len(conversation["utterances"])
            assert store.count("rule_results", call_id) == len(card["rules"])
        assert store.engine.dialect.name == "postgresql"
        assert not list(out.glob("*.db")), "a SQLite store was written beside the PostgreSQL one"
        store.engine.dispose()
    mark("checked")
    print(f"\nscale-out timings (s since start): {timings}; finished by the killed worker's run: "
          f"{sorted(done_by_victim)}; taken over after the kill: {sorted(held)}")


def _wait_for_store(url: str, spawned: list[subprocess.Popen], timeout: float = 180):
    """The results store once a flow run has registered the batch in it."""
    from pipelines.results.store import Store

    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            store = Store(url)
            if len(store.calls()) == CALLS:
                return store
            store.engine.dispose()
        except Exception:  # noqa: BLE001 - the first flow run may be creating the schema right now
            pass
        assert all(p.poll() is None for p in spawned), "a worker or the server exited"
        time.sleep(0.5)
    raise AssertionError("no flow run registered the batch in the PostgreSQL store")


def _pid(worker_identity: str | None) -> str:
    return (worker_identity or "").split(":")[1] if worker_identity and worker_identity.count(":") >= 2 else ""


def _wait_for_mid_batch(store, workers: list[subprocess.Popen], timeout: float):
    """Wait until both workers' flow runs are working on the batch and one of them has finished a
    call and is processing another; return that worker, stopped (SIGSTOP, with its flow run) while
    it still holds a call, and the store's calls as they were while it was stopped."""

    def progress(rows, worker) -> tuple[int, int]:
        pids = {str(pid) for pid in _descendants(worker.pid)}
        return (sum(r.status == "done" and _pid(r.processed_by) in pids for r in rows),
                sum(r.status == "processing" and _pid(r.claimed_by) in pids for r in rows))

    deadline = time.time() + timeout
    while time.time() < deadline:
        rows = store.calls()
        done = sum(r.status == "done" for r in rows)
        assert done <= CALLS - 6, "the batch ran past the kill point"
        assert all(w.poll() is None for w in workers), "a worker exited"
        each = [progress(rows, w) for w in workers]
        if all(sum(p) for p in each):
            for worker, (finished, processing) in zip(workers, each):
                if finished and processing:
                    _signal_tree(worker, signal.SIGSTOP)
                    rows = store.calls()
                    finished, processing = progress(rows, worker)
                    if finished and processing:
                        return worker, rows
                    _signal_tree(worker, signal.SIGCONT)  # it finished its call meanwhile: not yet
        time.sleep(0.2)
    raise AssertionError(f"no call in progress to interrupt: {[(r.call_id, r.status) for r in store.calls()]}")
