"""`callqa run` after a rulebook change over N calls answered from the analysis cache.

The nightly batch's re-score path (README, "Lean start-up"): every call is looked up in the store
and the content-keyed cache, scored with the new rulebook, its JSON + HTML written and its rows
replaced in the SQLite store, then the batch summary.  To have N cached calls without transcribing
N recordings, each call is a distinct 1-s recording whose cache entry is one of the saved fixture
analyses (``tests/fixtures/calls``) put under its content key, as the flow would have left it.

    PYTHONPATH=. python -m bench.bench_rerun [--calls 500]

All runs use one rulebook for every call of both languages, as a call center runs its own: the
default one copied (the first run), then edited.  Prints calls/s of the whole command (start-up
included) and the CPU seconds it used, for the first run (scored from the cache), a run with nothing
to do, a change of the pass mark (no rule is judged again: every outcome is reused) and an edit of
one rule (the greeting's window: that rule is judged again on every call).
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
        # the house rulebook (the default one, copied) for every call of both languages, then edits of it
        house = qa_rules.default_rulebook_path("zh").read_text(encoding="utf-8")
        books = {name: work / f"{name}.yaml" for name in ("house", "mark85", "rule", "mark86")}
        books["house"].write_text(house, encoding="utf-8")
        books["mark85"].write_text(house.replace("pass_mark: 80", "pass_mark: 85"), encoding="utf-8")
        greeting = "match: {at_least: 2}\n          window: {first_turns: 1, first_s: 15}"
        if greeting not in house:
            raise SystemExit("the greeting rule's window changed: update the edit this bench makes")
        books["rule"].write_text(house.replace("pass_mark: 80", "pass_mark: 85").replace(
            greeting, greeting.replace("first_s: 15", "first_s: 12")), encoding="utf-8")
        books["mark86"].write_text(books["rule"].read_text(encoding="utf-8").replace("pass_mark: 85", "pass_mark: 86"),
                                   encoding="utf-8")
        run = ["run", str(calls), "--out", str(out), "--json-result", str(result)]
        first = time_cli([*run, "--rulebook", str(books["house"])])
        done = json.loads(result.read_text(encoding="utf-8"))
        if len(done["cached"]) != args.calls or done["prefect"]:
            raise SystemExit(f"expected {args.calls} calls from the cache without Prefect, got {done}")
        idle = time_cli([*run, "--rulebook", str(books["house"])])
        timed = {}
        for name in ("mark85", "rule"):
            timed[name] = time_cli([*run, "--rulebook", str(books[name])])
            changed = json.loads(result.read_text(encoding="utf-8"))
            if len(changed["done"]) != args.calls:
                raise SystemExit(f"the rulebook change re-scored {len(changed['done'])} of {args.calls} calls")
        print(f"callqa run, {args.calls} calls answered from the analysis cache (first run): {rates(args.calls, *first)}")
        print(f"callqa run again, nothing to do: {idle[0]:.1f} s wall, CPU {idle[1]:.1f} s")
        print(f"callqa run after a rulebook change (pass mark): {rates(args.calls, *timed['mark85'])}")
        print(f"callqa run after a rule's edit (greeting window): {rates(args.calls, *timed['rule'])}")
        print_phases([*run, "--rulebook", str(books["mark86"])], args.calls)
        print_audio_hashing(work)


def print_audio_hashing(work: Path) -> None:
    """What finding a real recording's analysis costs: this bench's recordings are 1 s long, a
    call's are minutes.  A 5-min 8 kHz mono and a 5-min 16 kHz stereo WAV, hashed, then their
    remembered hash read (:class:`pipelines.shell.cache.AudioHashes`), best of 5."""
    import time

    from pipelines.shell.cache import AudioHashes, audio_sha256

    rng = np.random.default_rng(11)
    for label, rate, channels in (("5-min 8 kHz mono", 8000, 1), ("5-min 16 kHz stereo", 16000, 2)):
        path = work / f"{rate}_{channels}.wav"
        soundfile.write(path, rng.normal(0, 0.05, (300 * rate, channels)).astype(np.float32), rate, subtype="PCM_16")
        audio_sha256(path)  # read once, so both timings below find it in the page cache
        hashed, remembered = [], []
        for k in range(5):
            start = time.perf_counter()
            audio_sha256(path)
            hashed.append(time.perf_counter() - start)
            hashes = AudioHashes(work / f"hashes{k}")
            hashes.sha256(path)
            start = time.perf_counter()
            hashes.sha256(path)
            remembered.append(time.perf_counter() - start)
        print(f"finding a {label} WAV's analysis ({path.stat().st_size / 1e6:.1f} MB): hashing it "
              f"{1000 * min(hashed):.1f} ms, its remembered hash {1000 * min(remembered):.2f} ms")


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
