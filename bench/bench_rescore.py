"""Re-scoring speed: `callqa score` over N saved conversations (no audio, no model).

The saved calls are the pipeline's own outputs kept as test fixtures (``tests/fixtures/calls``:
Chinese and English, stereo and mono), copied under new call ids until there are N of them.

    PYTHONPATH=. python -m bench.bench_rescore [--calls 500] [--workers 0]

Prints calls/s for the whole command (process start-up included) with the language's default
rulebooks and with one ``--rulebook``, and the rules-only rate in this process.
"""

from __future__ import annotations

import argparse
import json
import os
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


def time_cli(args: list[str]) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "pipelines.shell.cli", *args], env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"callqa {' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return wall


def rules_only(files: list[Path]) -> float:
    """Calls/s of ``qa_rules.score`` alone on already parsed records (one rulebook per language)."""
    import qa_rules
    from qa_rules.records import Conversation, Measures

    books = {lang: qa_rules.load_rulebook(qa_rules.default_rulebook_path(lang)) for lang in ("zh", "en")}
    saved = [(Conversation.read(f), Measures.read(f.with_name(f.name.replace(".conversation.", ".measures.")))) for f in files]
    start = time.perf_counter()
    for conversation, measures in saved:
        qa_rules.score(conversation, measures, books["zh" if conversation.language == "zh" else "en"])
    return len(saved) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=500)
    parser.add_argument("--workers", type=int, default=0, help="callqa score --workers (0: one per core)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "saved"
        folder.mkdir()
        files = make_saved_calls(folder, args.calls)
        default = time_cli(["score", str(folder), "--out", str(Path(tmp) / "a"), "--workers", str(args.workers)])
        zh_only = [f for f in files if json.loads(f.read_text(encoding="utf-8"))["language"] == "zh"]
        one_book = time_cli(["score", *map(str, zh_only), "--out", str(Path(tmp) / "b"), "--workers", str(args.workers),
                             "--rulebook", str(ROOT / "qa_rules" / "zh_default.yaml")])
        print(f"callqa score, {len(files)} calls, default rulebooks: {default:.1f} s = {len(files) / default:.0f} calls/s "
              "(process start-up included)")
        print(f"callqa score --rulebook zh_default.yaml, {len(zh_only)} calls: {one_book:.1f} s = {len(zh_only) / one_book:.0f} calls/s")
        print(f"rules only, one process: {rules_only(files[:100]):.0f} calls/s")


if __name__ == "__main__":
    main()
