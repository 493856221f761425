"""`callqa run` after a rulebook change over N calls answered from the analysis cache.

The nightly batch's re-score path (README, "Lean start-up"): every call is looked up in the store
and the content-keyed cache, scored with the new rulebook, its JSON + HTML written and its rows
replaced in the SQLite store, then the batch summary.  To have N cached calls without transcribing
N recordings, each call is a distinct 1-s recording whose cache entry is one of the saved fixture
analyses (``tests/fixtures/calls``) put under its content key, as the flow would have left it.

    PYTHONPATH=. python -m bench.bench_rerun [--calls 500]

Prints calls/s of the whole command (start-up included) and the CPU seconds it used, for the first
run (scored from the cache), a run with nothing to do, and a rulebook change.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import soundfile

from bench.bench_rescore import SAVED, time_cli


def rates(n: int, wall: float, cpu: float) -> str:
    return f"{wall:.1f} s = {n / wall:.0f} calls/s; CPU {cpu:.1f} s = {1000 * cpu / n:.1f} ms/call = {n / cpu:.0f} calls/s of CPU time"


def make_cached_calls(calls: Path, cache: Path, n: int) -> None:
    """``n`` distinct short recordings in ``calls``, each with a fixture analysis in the cache."""
    from models.model_store import ModelStore
    from pipelines.settings import Settings
    from pipelines.shell.cache import AnalysisCache, analysis_key, audio_sha256
    from qa_rules.records import Conversation, Measures

    settings = Settings.load()
    model_dir = ModelStore(settings.model_store).whisper(settings.asr_model)
    sources = sorted(SAVED.glob("*.conversation.json"))
    store = AnalysisCache(cache)
    rng = np.random.default_rng(7)
    for k in range(n):
        conv_path = sources[k % len(sources)]
        call_id = f"call_{k:04d}"
        path = calls / f"{call_id}.wav"
        soundfile.write(path, rng.normal(0, 0.01, 8000).astype(np.float32), 8000, subtype="PCM_16")
        conversation = Conversation.read(conv_path)
        measures = Measures.read(conv_path.with_name(conv_path.name.replace(".conversation.", ".measures.")))
        key = analysis_key(audio_sha256(path), settings, model_dir, None)
        store.put(key, conversation.model_copy(update={"call_id": call_id}), measures.model_copy(update={"call_id": call_id}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=500)
    args = parser.parse_args()
    import qa_rules

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        calls, out = work / "calls", work / "out"
        calls.mkdir()
        make_cached_calls(calls, out / ".cache" / "analysis", args.calls)
        result = work / "result.json"
        run = ["run", str(calls), "--out", str(out), "--json-result", str(result)]
        first = time_cli(run)
        done = json.loads(result.read_text(encoding="utf-8"))
        if len(done["cached"]) != args.calls or done["prefect"]:
            raise SystemExit(f"expected {args.calls} calls from the cache without Prefect, got {done}")
        idle = time_cli(run)
        books = {}
        for language in ("zh", "en"):
            text = qa_rules.default_rulebook_path(language).read_text(encoding="utf-8")
            books[language] = work / f"{language}.yaml"
            books[language].write_text(text.replace("pass_mark: 80", "pass_mark: 85"), encoding="utf-8")
        # one rulebook for every call, as after an edit of the house rulebook (both languages' calls)
        change = time_cli([*run, "--rulebook", str(books["zh"])])
        changed = json.loads(result.read_text(encoding="utf-8"))
        if len(changed["done"]) != args.calls:
            raise SystemExit(f"the rulebook change re-scored {len(changed['done'])} of {args.calls} calls")
        print(f"callqa run, {args.calls} calls answered from the analysis cache (first run): {rates(args.calls, *first)}")
        print(f"callqa run again, nothing to do: {idle[0]:.1f} s wall, CPU {idle[1]:.1f} s")
        print(f"callqa run after a rulebook change (--rulebook): {rates(args.calls, *change)}")
        books["zh"].write_text(books["zh"].read_text(encoding="utf-8").replace("pass_mark: 85", "pass_mark: 86"),
                               encoding="utf-8")
        print_phases([*run, "--rulebook", str(books["zh"])], args.calls)


def print_phases(run: list[str], calls: int) -> None:
    """One more rulebook change through :mod:`bench.rerun_phases`: where its time goes."""
    import os
    import subprocess
    import sys

    from bench.bench_rescore import ROOT
    from bench.rerun_phases import PHASES_PREFIX

    proc = subprocess.run([sys.executable, "-m", "bench.rerun_phases", *run], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    lines = [line for line in proc.stderr.splitlines() if line.startswith(PHASES_PREFIX)]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"the phased run failed:\n{proc.stdout}\n{proc.stderr}")
    print(f"where a rulebook change's time goes ({calls} calls; CPU of the batch's process only):")
    wall = cpu = 0.0
    for name, at, used in json.loads(lines[-1].removeprefix(PHASES_PREFIX)):
        print(f"  {name:36s} wall {at:5.2f} s (+{at - wall:4.2f})  CPU +{used - cpu:4.2f} s")
        wall, cpu = at, used


if __name__ == "__main__":
    main()
