"""Diarization cost against accuracy: DER and CPU seconds per audio second of pyannote +
CAM++ at several segmentation steps and embedding strides, side by side, on the AMI meeting clips, pyannote's telephone
sample and the mono dev calls (references: their RTTM, or the labelled turns of the dev calls).

    PYTHONPATH=. python -m bench.bench_diarization [--steps 0.1] [--strides 1 2] [--threads 1] [--exclude-overlap off|on|both]

Stride 1 embeds every window's speakers (pyannote); stride n embeds every n-th window and lets the
others' speakers follow (``models/speaker_tracking.py``).

DER: collar ±0.25 s, overlap scored (dev calls: one speaker's pauses under 1 s joined, as in
``bench/bench_roles.py``); the AMI clips are scored over their first 30 s, like
``bench_stages``.  CPU seconds are this process's (all threads), so a busy machine does not skew
them the way it skews wall time.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from dataclasses import replace
from pathlib import Path

warnings.filterwarnings("ignore")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.shared_data import DATA  # noqa: E402


def labelled_mono_calls() -> list[tuple[str, Path, list[tuple[str, float, float]]]]:
    """The mono dev calls with their labelled turns (speaker: agent / customer / receiver)."""
    out = []
    for folder in ("calls", "calls2"):
        labels_path = DATA / folder / "labels.json"
        if not labels_path.is_file():
            continue
        for call_id, label in json.loads(labels_path.read_text(encoding="utf-8"))["calls"].items():
            path = DATA / folder / label["file"]
            if label.get("channels") == 1 or "mono" in call_id:
                turns = [(t.get("speaker") or t["role"], t["start"], t["end"]) for t in label["turns"]]
                out.append((call_id, path, turns))
    return out


def test_set():
    """``bench_stages``' diarization files (telephone sample, AMI clips scored over 30 s) and the
    labelled mono dev calls."""
    from bench.bench_stages import _annotation, diarization_files

    items = [(name, path, reference, 30.0 if "AMI" in name else None) for name, path, reference in diarization_files()]
    for call_id, path, turns in labelled_mono_calls():
        items.append((call_id, path, _annotation(turns, call_id), None))
    return items


def _hypothesis(spans, name: str, labelled_call: bool):
    """The diarizer's turns; for a labelled dev call one speaker's turns closer than
    ``JOIN_PAUSES_S`` are joined first, as in ``bench/role_eval.py`` (labels mark whole utterances)."""
    from bench.bench_stages import _annotation
    from bench.role_eval import JOIN_PAUSES_S

    ann = _annotation([(s.speaker, s.start, s.end) for s in spans], name)
    return ann.support(JOIN_PAUSES_S) if labelled_call else ann


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=float, nargs="+", default=[0.1])
    parser.add_argument("--strides", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--exclude-overlap", choices=("off", "on", "both"), default="off",
                        help="CAM++ embeddings without the frames where two speakers overlap (pyannote 3.1's recipe)")
    args = parser.parse_args()
    from pyannote.core import Segment
    from pyannote.metrics.diarization import DiarizationErrorRate
    from rich.console import Console
    from rich.table import Table

    from models.diarization import Diarizer
    from pipelines.settings import Settings
    from pipelines.stages.audio import decode_audio
    from pipelines.stages.engines import SpeechEngines

    console = Console()
    settings = Settings.load(device="cpu", threads=args.threads)
    base = SpeechEngines.load(settings)
    items = [(name, decode_audio(path).mono(), ref, uem) for name, path, ref, uem in test_set()]
    table = Table(title="Diarization: DER (CPU s per audio s) by segmentation step and embedding stride")
    table.add_column("file")
    table.add_column("audio s")
    excludes = {"off": [False], "on": [True], "both": [False, True]}[args.exclude_overlap]
    configs = [(step, stride, exclude) for step in args.steps for stride in args.strides for exclude in excludes]

    def label(config: tuple) -> str:
        step, stride, exclude = config
        return f"step {step:g} stride {stride}" + (" no overlap" if exclude else "")

    for config in configs:
        table.add_column(label(config))
    results: dict[tuple, list[tuple[float, float]]] = {}
    pooled: dict[tuple, DiarizationErrorRate] = {}
    for config in configs:
        step, stride, exclude = config
        diarizer = Diarizer(base.diarizer.segmentation_path, base.diarizer.embedding_path, base.device,
                            replace(base.diarizer.options, segmentation_step=step, embedding_stride=stride))
        # pyannote 3.1's recipe, tried here only: not a setting (it would be part of every call's
        # analysis key), and measured no better (README, "Measured here")
        diarizer._pipeline.embedding_exclude_overlap = exclude
        metric = pooled[config] = DiarizationErrorRate(collar=0.5)
        for name, signal, reference, uem_s in items:
            duration = len(signal) / 16000
            uem = Segment(0, min(duration, uem_s or duration))
            cpu = time.process_time()
            spans = diarizer.diarize(signal)
            cpu = time.process_time() - cpu
            hypothesis = _hypothesis(spans, name, labelled_call=uem_s is None and not name.startswith("pyannote"))
            der = DiarizationErrorRate(collar=0.5)(reference, hypothesis, uem=uem)
            metric(reference, hypothesis, uem=uem)
            results.setdefault(config, []).append((der, cpu / duration))
            console.print(f"{label(config)} {name}: DER {der:.3f}, {cpu / duration:.3f} CPU s per audio s", highlight=False)
    for k, (name, signal, _, _) in enumerate(items):
        table.add_row(name, f"{len(signal) / 16000:.1f}", *(f"{results[c][k][0]:.3f} ({results[c][k][1]:.2f})" for c in configs))
    total_audio = sum(len(signal) / 16000 for _, signal, _, _ in items)
    table.add_row("[b]pooled DER (CPU s / audio s)", f"{total_audio:.0f}",
                  *(f"{abs(pooled[c]):.3f} ({sum(cpu * len(sig) / 16000 for (_, cpu), (_, sig, _, _) in zip(results[c], items)) / total_audio:.2f})"
                    for c in configs))
    console.print(table)


if __name__ == "__main__":
    main()
