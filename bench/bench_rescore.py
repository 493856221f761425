"""Re-scoring speed: `callqa score` over N saved conversations (no audio, no model).

The saved calls are the pipeline's own outputs kept as test fixtures (``tests/fixtures/calls``:
Chinese and English, stereo and mono), copied under new call ids until there are N of them.

    PYTHONPATH=. python -m bench.bench_rescore [--calls 500] [--workers 0]

Prints calls/s for the whole command (process start-up included, every core: ``--workers 0``) with
the language's default rulebooks, again into the same folder (every file replaced, every rule's
outcome reused), with one ``--rulebook`` into a new folder, then after two edits of that rulebook
into the same folder (the pass mark: no rule judged again; the greeting's window: that rule judged
again on every call); and the rules-only rate in this process, also with
every call's text new to the process (see :func:`rules_only`: the copies repeat a dozen
conversations, which the engine's per-text caches answer faster than real calls).  Beside each
wall-clock rate, the CPU seconds the command used (its processes together, from ``getrusage``) and
the rate they allow on 2 cores — a figure that holds on a machine shared with other work.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SAVED = ROOT / "tests" / "fixtures" / "calls"


def make_saved_calls(folder: Path, n: int) -> list[Path]:
    """``n`` conversation + measures pairs under distinct call ids, from the fixture calls."""
    sources = sorted(SAVED.glob("*.conversation.json"))
    made = []
    for k in range(n):
        conv_path = sources[k % len(sources)]
        call_id = f"{conv_path.name.removesuffix('.conversation.json')}_{k:04d}"
        conversation = json.loads(conv_path.read_text(encoding="utf-8"))
        measures = json.loads(conv_path.with_name(conv_path.name.replace(".conversation.", ".measures.")).read_text(encoding="utf-8"))
        conversation["call_id"] = measures["call_id"] = call_id
        (folder / f"{call_id}.conversation.json").write_text(json.dumps(conversation, ensure_ascii=False), encoding="utf-8")
        (folder / f"{call_id}.measures.json").write_text(json.dumps(measures, ensure_ascii=False), encoding="utf-8")
        made.append(folder / f"{call_id}.conversation.json")
    return made


def time_cli(args: list[str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, the command's processes together) of one
    ``callqa`` run."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pipelines.shell.cli", *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"callqa {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def rates(n: int, wall: float, cpu: float) -> str:
    return (f"{wall:.1f} s = {n / wall:.0f} calls/s; CPU {cpu:.1f} s = {1000 * cpu / n:.1f} ms/call "
            f"= {2 * n / cpu:.0f} calls/s on 2 cores")


def rules_only(files: list[Path], new_text: bool = False) -> tuple[float, float]:
    """Calls/s of ``qa_rules.score`` alone on already parsed records (one rulebook per language).

    The saved calls are a dozen conversations repeated, so from the second copy on the engine's
    per-text caches (an utterance's words cleaned, a run of characters read as pinyin) answer at
    once.  With ``new_text`` those caches are emptied before each call, as if every call's text
    were new to the process, which is what a night of real calls is; the readings of single words
    are kept, as a batch keeps them (words recur from call to call)."""
    import qa_rules
    from qa_rules import matching
    from qa_rules.records import Conversation, Measures

    books = {lang: qa_rules.load_rulebook(qa_rules.default_rulebook_path(lang)) for lang in ("zh", "en")}
    saved = [(Conversation.read(f), Measures.read(f.with_name(f.name.replace(".conversation.", ".measures.")))) for f in files]
    for conversation, measures in saved[:20]:  # the rulebooks' phrase searches are learnt on the first calls
        qa_rules.score(conversation, measures, books["zh" if conversation.language == "zh" else "en"])
    wall = cpu = 0.0
    for conversation, measures in saved:
        if new_text:
            matching._pinyin_run.cache_clear()
            matching._clean_word.cache_clear()
        start, began = time.perf_counter(), time.process_time()
        qa_rules.score(conversation, measures, books["zh" if conversation.language == "zh" else "en"])
        wall, cpu = wall + time.perf_counter() - start, cpu + time.process_time() - began
    return len(saved) / wall, len(saved) / cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--workers", type=int, default=0, help="callqa score --workers (0: one per core)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "saved"
        folder.mkdir()
        files = make_saved_calls(folder, args.calls)
        out = str(Path(tmp) / "a")
        default = time_cli(["score", str(folder), "--out", out, "--workers", str(args.workers)])
        again = time_cli(["score", str(folder), "--out", out, "--workers", str(args.workers)])
        zh_only = [f for f in files if json.loads(f.read_text(encoding="utf-8"))["language"] == "zh"]
        zh_book = ROOT / "qa_rules" / "zh_default.yaml"
        one_book = time_cli(["score", *map(str, zh_only), "--out", str(Path(tmp) / "b"), "--workers", str(args.workers),
                             "--rulebook", str(zh_book)])
        base = zh_book.read_text(encoding="utf-8")
        texts = {"pass mark 80 → 85": base.replace("pass_mark: 80", "pass_mark: 85")}
        texts["greeting window 15 → 12 s"] = texts["pass mark 80 → 85"].replace(
            "window: {first_turns: 1, first_s: 15}", "window: {first_turns: 1, first_s: 12}")
        if len({base, *texts.values()}) != 3:
            raise SystemExit("the edits no longer apply to zh_default.yaml: update this bench")
        edits = {}
        for k, (name, text) in enumerate(texts.items()):
            edited = Path(tmp) / f"edit{k}.yaml"
            edited.write_text(text, encoding="utf-8")
            edits[name] = time_cli(["score", *map(str, zh_only), "--out", str(Path(tmp) / "b"), "--workers",
                                    str(args.workers), "--rulebook", str(edited)])
        print(f"callqa score, {len(files)} calls, default rulebooks, every core: {rates(len(files), *default)} "
              "(process start-up included; every rule judged, outcomes recorded)")
        print(f"callqa score again into the same folder (every file replaced, every outcome reused): {rates(len(files), *again)}")
        print(f"callqa score --rulebook zh_default.yaml into a new folder, {len(zh_only)} calls: {rates(len(zh_only), *one_book)}")
        for name, timed in edits.items():
            print(f"callqa score after an edit of that rulebook ({name}), same folder: {rates(len(zh_only), *timed)}")
        wall_rate, cpu_rate = rules_only(files[:100])
        print(f"rules only, one process: {wall_rate:.0f} calls/s ({cpu_rate:.0f} calls/s of CPU time)")
        wall_rate, cpu_rate = rules_only(files[:100], new_text=True)
        print(f"rules only, one process, every call's text new to the process: {wall_rate:.0f} calls/s "
              f"({cpu_rate:.0f} calls/s of CPU time)")


if __name__ == "__main__":
    main()
