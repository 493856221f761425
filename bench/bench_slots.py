"""Overlapping model calls on the CPU: `callqa run --gpu-slots N --threads T` over the labelled mono dev
calls (:data:`LEFT_OUT` aside), the configurations run alternately, and bare faster-whisper's two ways of using the cores.

A mono call has two model calls, transcription (CTranslate2) and diarization (pyannote + CAM++ on
torch).  With one slot a call's diarization waits for the other call's transcription; with two
they run at once.  A Whisper model loaded with one CTranslate2 worker (``num_workers=1``, what the
pipeline loads) runs one transcription at a time, so a second slot overlaps *different* models,
never two transcriptions.

    PYTHONPATH=. python -m bench.bench_slots [--config 1:0 2:0 2:1] [--repeat 2] [--skip-bare]

``--config SLOTS:THREADS`` (threads 0: one per core, the default).  Each run is a whole
``callqa run`` into a new output folder, so no call comes from the cache.  Printed per
configuration: wall seconds of every run, their mean, CPU seconds (the command's processes
together) and the peak RSS of the largest process; then whether every configuration gave the same
verdicts.  The bare part transcribes the Mandarin stereo dev calls' channels with one model
(``cpu_threads`` = every core) one channel after the other, then with ``num_workers=2`` and one
thread each from two Python threads — the thread split a second slot would need to transcribe two
calls at once.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.shared_data import DATA  # noqa: E402

LEFT_OUT = ("D16_long_8k",)
"""The 3-minute mono copy: as long as the other mono calls together, it would make each run a
batch of one long call instead of several calls whose model calls can overlap."""


def mono_calls() -> list[Path]:
    """The labelled mono dev calls (:func:`bench.bench_diarization.labelled_mono_calls`) but
    :data:`LEFT_OUT`."""
    from bench.bench_diarization import labelled_mono_calls

    return [path for call_id, path, _ in labelled_mono_calls() if call_id not in LEFT_OUT]


STEREO_ZH = ["calls/zh_good_stereo.flac", "calls/zh_interrupt.flac", "calls/zh_loud_agent.flac",
             "calls/zh_no_greeting.flac", "calls/zh_rude_repeat.flac", "calls/zh_fast_agent.flac"]


def run_once(calls: Path, out: Path, slots: int, threads: int) -> tuple[float, float, float]:
    """Wall s, CPU s and peak RSS (GB, largest process) of one ``callqa run``."""
    args = [sys.executable, "-m", "pipelines.shell.cli", "run", str(calls), "--out", str(out), "--gpu-slots", str(slots)]
    if threads:
        args += ["--threads", str(threads)]
    start = time.perf_counter()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # this run's own figures: its process and those it waited for
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"callqa run --gpu-slots {slots} failed:\n{output[-4000:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1e6


def verdicts(out: Path) -> dict[str, list[str]]:
    return {p.name: [r["verdict"] for r in json.loads(p.read_text(encoding="utf-8"))["rules"]]
            for p in sorted(out.glob("*.scorecard.json"))}


def bare_thread_split() -> None:
    """Bare faster-whisper (batched, as the pipeline): every core on one channel at a time, against
    two one-thread workers taking the channels two at a time."""
    from faster_whisper import BatchedInferencePipeline, WhisperModel, decode_audio

    from models.model_store import ModelStore
    from pipelines.settings import Settings

    settings = Settings.load()
    model_dir = str(ModelStore(settings.model_store).whisper(settings.asr_model))
    channels = [ch for f in STEREO_ZH for ch in decode_audio(str(DATA / f), split_stereo=True)]
    cores = os.cpu_count() or 1

    def transcribe(pipeline, signals) -> None:
        for signal in signals:
            segments, _ = pipeline.transcribe(signal, language="zh", batch_size=8, word_timestamps=True)
            list(segments)

    for workers, threads in ((1, cores), (2, max(1, cores // 2))):
        pipeline = BatchedInferencePipeline(WhisperModel(model_dir, device="cpu", compute_type="int8",
                                                         cpu_threads=threads, num_workers=workers))
        transcribe(pipeline, channels[:1])  # warm-up
        start, began = time.perf_counter(), time.process_time()
        if workers == 1:
            transcribe(pipeline, channels)
        else:
            pool = [threading.Thread(target=transcribe, args=(pipeline, channels[k::workers])) for k in range(workers)]
            for t in pool:
                t.start()
            for t in pool:
                t.join()
        print(f"bare faster-whisper, {len(channels)} channels ({sum(len(c) for c in channels) / 16000:.0f} s), "
              f"{workers} worker(s) x {threads} thread(s): {time.perf_counter() - start:.1f} s wall, "
              f"CPU {time.process_time() - began:.1f} s")


def slots_and_threads(text: str) -> tuple[int, int]:
    """``SLOTS:THREADS`` as two whole numbers, slots at least 1 and threads at least 0."""
    try:
        slots, threads = (int(x) for x in text.split(":"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not SLOTS:THREADS, e.g. 2:0") from None
    if slots < 1 or threads < 0:
        raise argparse.ArgumentTypeError(f"{text!r}: slots must be 1 or more, threads 0 (every core) or more")
    return slots, threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", nargs="+", type=slots_and_threads, default=[(1, 0), (2, 0), (2, 1)],
                        help="SLOTS:THREADS (threads 0: every core)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--skip-bare", action="store_true", help="leave out bare faster-whisper's thread split")
    args = parser.parse_args()
    if args.repeat < 1:
        parser.error("--repeat must be 1 or more")
    configs = list(dict.fromkeys(args.config))  # each configuration once, in the order given
    with tempfile.TemporaryDirectory() as tmp:
        calls = Path(tmp) / "calls"
        calls.mkdir()
        chosen = mono_calls()
        for path in chosen:
            shutil.copy(path, calls / path.name)
        runs: dict[tuple[int, int], list[tuple[float, float, float]]] = {c: [] for c in configs}
        seen: dict[tuple[int, int], dict[str, list[str]]] = {}
        for rep in range(args.repeat):
            for config in configs if rep % 2 == 0 else configs[::-1]:  # alternately, so drift hits all
                out = Path(tmp) / f"out_{config[0]}_{config[1]}_{rep}"
                runs[config].append(run_once(calls, out, *config))
                seen[config] = verdicts(out)
                print(f"--gpu-slots {config[0]} --threads {config[1] or 'every core'}: "
                      f"{runs[config][-1][0]:.1f} s wall", flush=True)
        names = ", ".join(path.stem for path in chosen)
        print(f"callqa run over {len(chosen)} mono dev calls ({names}), {args.repeat} run(s) each, alternately:")
        for config, figures in runs.items():
            walls = ", ".join(f"{w:.1f}" for w, _, _ in figures)
            print(f"  --gpu-slots {config[0]} --threads {config[1] or os.cpu_count()}: wall {walls} s "
                  f"(mean {sum(w for w, _, _ in figures) / len(figures):.1f}); CPU "
                  f"{', '.join(f'{c:.0f}' for _, c, _ in figures)} s; peak RSS {max(m for _, _, m in figures):.2f} GB")
        same = all(v == seen[configs[0]] for v in seen.values())
        print(f"verdicts the same in every configuration: {'yes' if same else 'NO'}")
    if not args.skip_bare:
        bare_thread_split()


if __name__ == "__main__":
    main()
