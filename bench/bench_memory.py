"""Peak memory by call duration: a 5/15/30/60-minute stereo call and 5/15/30-minute mono calls,
built from the constructed dev calls (``../shared/data/calls``), each analysed in a fresh process.

Each call goes through the pipeline's own chain (:func:`pipelines.stages.analysis.analyse_call`:
decode, transcribe, speakers, measure) on CPU.  The child samples its resident memory every 50 ms,
so the table says not only the peak but in which stage it came; ``MB/min`` is the growth per audio
minute between the shortest and the longest call of a layout (memory must grow linearly, not
faster).

    PYTHONPATH=. python -m bench.bench_memory [--stereo 5 15 30 60] [--mono 5 15 30]

Targets (issue 14): 60-min stereo ≤ 3 GB, 30-min mono ≤ 3.5 GB peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.shared_data import DATA  # noqa: E402
DEV_CALLS = DATA / "calls"
SAMPLES = ROOT / "samples" / "calls"
LIMIT_MB = {"stereo": {60: 3 * 1024}, "mono": {30: 3.5 * 1024}}


def _dev_stereo_calls() -> list[Path]:
    """The Mandarin stereo 16 kHz dev calls (customer left, agent right)."""
    import csv

    folder = DEV_CALLS if (DEV_CALLS / "manifest.csv").is_file() else SAMPLES
    with open(folder / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    picked = [folder / r["file"] for r in rows if r.get("channels") == "2" and r.get("sample_rate") == "16000"
              and r.get("language") == "zh" and (folder / r["file"]).is_file()]
    if not picked:  # the bundled samples have no manifest columns: any stereo flac
        picked = sorted(p for p in SAMPLES.glob("zh_*stereo*.flac"))
    return picked


def build_call(minutes: float, layout: str, out: Path) -> Path:
    """A call of ``minutes`` made by joining the dev calls end to end (a 2 s pause between them),
    stereo as recorded or mixed down to mono; written as 16 kHz FLAC."""
    import soundfile as sf

    from pipelines.stages.audio import decode_audio

    pieces = [decode_audio(p).samples for p in _dev_stereo_calls()]
    gap = np.full((2, 32000), 0.0, dtype=np.float32)
    rng = np.random.default_rng(0)
    want = int(minutes * 60 * 16000)
    parts, n, k = [], 0, 0
    while n < want:
        piece = pieces[k % len(pieces)]
        parts += [piece, gap + rng.normal(0, 0.001, gap.shape).astype(np.float32)]  # -60 dBFS floor, like the calls
        n += piece.shape[1] + gap.shape[1]
        k += 1
    samples = np.concatenate(parts, axis=1)[:, :want]
    if layout == "mono":
        samples = samples.mean(axis=0, keepdims=True)
    sf.write(out, samples.T, 16000, format="FLAC", subtype="PCM_16")
    return out


class RssSampler:
    """Resident set size of this process every ``interval`` seconds, in a daemon thread."""

    def __init__(self, interval: float = 0.05) -> None:
        self.samples: list[tuple[float, float]] = []
        self._stop = threading.Event()
        self._interval = interval
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _rss_mb(self) -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page / 2**20

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.perf_counter(), self._rss_mb()))
            time.sleep(self._interval)

    def __enter__(self) -> "RssSampler":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def peak_between(self, start: float, end: float) -> float:
        inside = [mb for t, mb in self.samples if start <= t <= end]
        return max(inside) if inside else 0.0


def child(path: Path) -> dict:
    """Analyse one call here and report peak RSS overall and per stage."""
    import resource

    from pipelines.settings import Settings
    from pipelines.stages.analysis import analyse_call
    from pipelines.stages.engines import SpeechEngines
    from qa_rules.records import CallSource

    settings = Settings.load(device="cpu")
    with RssSampler() as sampler:
        engines = SpeechEngines.load(settings)
        loaded_mb = sampler._rss_mb()
        t0 = time.perf_counter()
        analysed = analyse_call(CallSource(call_id=path.stem, path=path), settings, engines)
        wall = time.perf_counter() - t0
    return {
        "duration_min": analysed.conversation.duration_s / 60,
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "models_loaded_mb": loaded_mb,
        "stage_peak_mb": {stage: sampler.peak_between(a, b) for stage, (a, b) in analysed.stage_spans.items()},
        "stage_s": analysed.stage_s,
        "wall_s": wall,
        "utterances": len(analysed.conversation.utterances),
        "asr_mode": settings.asr_mode,
    }


def measure(minutes: float, layout: str, folder: Path) -> dict:
    path = build_call(minutes, layout, folder / f"{layout}_{minutes:g}min.flac")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "CALLQA_DEVICE": "cpu"}
    proc = subprocess.run([sys.executable, "-m", "bench.bench_memory", "--child", str(path)],
                          env=env, capture_output=True, text=True)
    path.unlink()
    if proc.returncode != 0:
        raise SystemExit(f"{layout} {minutes} min failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stereo", type=float, nargs="*", default=[5, 15, 30, 60])
    parser.add_argument("--mono", type=float, nargs="*", default=[5, 15, 30])
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child)))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console(width=140)
    table = Table(title="Peak memory (RSS) by call duration, CPU, one call per fresh process")
    for col in ("call", "peak MB", "models loaded", "in decode", "in ASR", "in speakers", "in measure", "RTF (wall)", "target"):
        table.add_column(col)
    growth: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for layout, durations in (("stereo", args.stereo), ("mono", args.mono)):
            for minutes in durations:
                r = measure(minutes, layout, Path(tmp))
                limit = LIMIT_MB[layout].get(int(minutes))
                verdict = "" if limit is None else ("ok" if r["peak_mb"] <= limit else "OVER") + f" ≤ {limit:.0f}"
                stage = r["stage_peak_mb"]
                table.add_row(f"{layout} {minutes:g} min", f"{r['peak_mb']:.0f}", f"{r['models_loaded_mb']:.0f}",
                              *(f"{stage.get(s, 0):.0f}" for s in ("decode", "transcribe", "speakers", "measure")),
                              f"{r['wall_s'] / (r['duration_min'] * 60):.3f}", verdict)
                growth.setdefault(layout, []).append((minutes, r["peak_mb"]))
                console.print(f"{layout} {minutes:g} min ({r.get('asr_mode')} ASR): peak {r['peak_mb']:.0f} MB "
                              f"({r['utterances']} utterances, {r['wall_s']:.0f} s)")
    console.print(table)
    for layout, points in growth.items():
        if len(points) >= 2:
            (m0, p0), (m1, p1) = points[0], points[-1]
            console.print(f"{layout}: {(p1 - p0) / (m1 - m0):.1f} MB per audio minute ({m0:g} → {m1:g} min)")
    console.print("stage columns: the highest RSS sampled while that stage ran (50 ms sampling).")


if __name__ == "__main__":
    main()
