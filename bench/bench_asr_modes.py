"""Batched against sequential transcription, in one run and on the same loaded model.

1. Accuracy on the real recordings (``../shared/data/real``): Mandarin CER after Traditional→Simplified,
   English WER, per mode.
2. The dev calls (``../shared/data/calls`` and ``calls2``): the pipeline's own chain in each mode —
   CER/WER of the whole call against the labelled turns, every category verdict compared between
   the modes (each difference printed) and with the labels.
3. Speed on a 5-minute stereo call built from dev calls: bare faster-whisper sequential and
   batched on its two channels (library defaults) beside the pipeline in both modes; wall and CPU
   seconds (CPU counts every thread of this process — on a shared machine wall time is inflated
   by the neighbours, CPU time much less).

Run: ``PYTHONPATH=. .venv/bin/python -m bench.bench_asr_modes [--threads N] [--skip-calls] [--json out.json]``
(part of ``make bench``).  Nothing here is asserted; tests/test_asr_modes.py holds the cheap checks.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
import tempfile
import time
import warnings
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.shared_data import SHARED  # noqa: E402
warnings.filterwarnings("ignore")

import jiwer  # noqa: E402
import numpy as np  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from pipelines.settings import Settings  # noqa: E402
from pipelines.stages.analysis import analyse_call  # noqa: E402
from pipelines.stages.audio import decode_audio  # noqa: E402
from pipelines.stages.engines import SpeechEngines  # noqa: E402
from pipelines.stages.text import normalise_word  # noqa: E402
from qa_rules.records import CallSource  # noqa: E402

REAL = SHARED / "data" / "real"
DEV_SETS = (SHARED / "data" / "calls", SHARED / "data" / "calls2")
MODES = ("sequential", "batched")
LONG_CALL_S = 300.0


class Clock:
    """Wall and process CPU seconds (all threads) of a block."""

    def __enter__(self) -> "Clock":
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


def chars(text: str) -> str:
    return "".join(re.findall(r"[\u3400-\u9fff]", normalise_word(text, "zh")))


def words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def error_rate(language: str, references: list[str], hypotheses: list[str]) -> float:
    """Pooled CER (Mandarin, CJK characters after T→S) or WER (English) over the pairs."""
    if language == "zh":
        return jiwer.cer([chars(r) for r in references], [chars(h) or "-" for h in hypotheses])
    return jiwer.wer([words(r) for r in references], [words(h) or "-" for h in hypotheses])


def engines_in(engines: SpeechEngines, mode: str) -> SpeechEngines:
    """The loaded engines, transcribing in ``mode`` (one model in memory for both modes)."""
    transcriber = engines.transcriber.with_options(replace(engines.transcriber.options, mode=mode))
    return replace(engines, transcriber=transcriber)


def call_text(conversation) -> str:
    sep = "" if conversation.language == "zh" else " "
    return sep.join(u.text for u in sorted(conversation.utterances, key=lambda u: u.start))


# ----------------------------------------------------------------------------- 1. real recordings
def real_items() -> list[tuple[str, str, Path, int | None, str]]:
    """(label, language, audio, channel or None for the mono mix, reference text)."""
    items = []
    for wav in sorted((REAL / "zh_asr").glob("*.wav")):
        items.append((wav.name, "zh", wav, None, wav.with_suffix(".txt").read_text(encoding="utf-8")))
    for audio in sorted((REAL / "en_asr").iterdir()):
        if audio.suffix in (".wav", ".flac"):
            items.append((audio.name, "en", audio, None, audio.with_suffix(".txt").read_text(encoding="utf-8")))
    folder = REAL / "en_stereo_2ch_fasterwhisper"
    for line in (folder / "stereo_diarization.channels.txt").read_text().splitlines():
        side, text = line.split(":", 1)
        channel = {"left": 0, "right": 1}[side.strip()]
        items.append((f"stereo_diarization ch{channel}", "en", folder / "stereo_diarization.wav", channel, text))
    import pyannote.audio.sample as sample_pkg

    sample = Path(sample_pkg.__file__).parent
    stm = [line.split(maxsplit=6) for line in (sample / "sample.stm").read_text().splitlines() if line.strip()]
    reference = " ".join(parts[6] for parts in sorted(stm, key=lambda p: float(p[3])) if len(parts) > 6)
    items.append(("pyannote sample.wav (telephone)", "en", sample / "sample.wav", None, reference))
    return items


def bench_real(engines: SpeechEngines, console: Console) -> dict:
    table = Table(title="Real recordings: error rate per mode (CER zh after T→S, WER en)")
    for col in ("file", "lang", *[f"{m} err" for m in MODES], *[f"{m} CPU s" for m in MODES]):
        table.add_column(col)
    pooled: dict[str, dict[str, tuple[list, list]]] = {m: {"zh": ([], []), "en": ([], [])} for m in MODES}
    rows = []
    for label, language, path, channel, reference in real_items():
        audio = decode_audio(path)
        signal = audio.mono() if channel is None else audio.samples[channel]
        row = {"file": label, "language": language}
        for mode in MODES:
            transcriber = engines_in(engines, mode).transcriber
            with Clock() as clock:
                segments = transcriber.transcribe(signal, language)
            sep = "" if language == "zh" else " "
            hypothesis = sep.join(w.text for s in segments for w in s.words)
            row[mode] = {"error": error_rate(language, [reference], [hypothesis]), "cpu_s": clock.cpu,
                         "wall_s": clock.wall, "text": normalise_word(hypothesis, language)}
            pooled[mode][language][0].append(reference)
            pooled[mode][language][1].append(hypothesis)
        rows.append(row)
        table.add_row(label, language, *[f"{row[m]['error']:.3f}" for m in MODES], *[f"{row[m]['cpu_s']:.1f}" for m in MODES])
    summary = {m: {lang: error_rate(lang, *pooled[m][lang]) for lang in ("zh", "en")} for m in MODES}
    for lang in ("zh", "en"):
        table.add_row(f"[b]pooled {lang}", lang, *[f"{summary[m][lang]:.3f}" for m in MODES], "", "")
    console.print(table)
    for row in rows:
        if row["sequential"]["text"] != row["batched"]["text"]:
            console.print(f"  {row['file']}: sequential «{row['sequential']['text'].strip()}»\n"
                          f"  {' ' * len(row['file'])}  batched    «{row['batched']['text'].strip()}»")
    return {"files": rows, "pooled": summary}


# ----------------------------------------------------------------------------- 2. dev calls
def dev_calls() -> list[tuple[CallSource, dict, list[str]]]:
    """Every dev call from the manifests (channel map included), its labels and categories."""
    out = []
    for folder in DEV_SETS:
        labels = json.loads((folder / "labels.json").read_text(encoding="utf-8"))
        with (folder / "manifest.csv").open(encoding="utf-8") as handle:
            for row in csv.DictReader(handle):
                channel_map = row["agent_channel"] if row["agent_channel"] in ("left", "right") else None
                call = CallSource(call_id=row["call_id"], path=folder / row["file"], channel_map=channel_map)
                out.append((call, labels["calls"][row["call_id"]], labels["categories"]))
    return out


def score_call(analysed):
    from pipelines.stages.scoring import load_rulebook_for

    import qa_rules

    conversation = analysed.conversation
    return qa_rules.score(conversation, analysed.measures, load_rulebook_for(conversation.language, None))


def bench_dev_calls(engines: SpeechEngines, settings: Settings, console: Console) -> dict:
    table = Table(title="Dev calls: the pipeline in each mode (error vs labelled turns; transcribe stage)")
    for col in ("call", "audio s", *[f"{m} err" for m in MODES], *[f"{m} transcribe CPU s" for m in MODES], "verdicts"):
        table.add_column(col)
    differences: list[str] = []
    label_agree = {m: 0 for m in MODES}
    judged = 0
    pooled = {m: {"zh": ([], []), "en": ([], [])} for m in MODES}
    totals = {m: {"wall": 0.0, "cpu": 0.0} for m in MODES}
    audio_s = 0.0
    rows = []
    for call, label, categories in dev_calls():
        language = label["language"]
        reference = ("" if language == "zh" else " ").join(t["text"] for t in sorted(label["turns"], key=lambda t: t["start"]))
        row = {"call": call.call_id}
        cards = {}
        for mode in MODES:
            mode_settings = settings.model_copy(update={"asr_mode": mode})
            mode_engines = engines_in(engines, mode)
            cpu0 = time.process_time()
            analysed = analyse_call(call, mode_settings, mode_engines)
            hypothesis = call_text(analysed.conversation)
            cards[mode] = score_call(analysed)
            row[mode] = {
                "error": error_rate(language, [reference], [hypothesis]),
                "transcribe_wall_s": analysed.stage_s["transcribe"],
                "analyse_cpu_s": time.process_time() - cpu0,
                "verdicts": {c: cards[mode].categories.get(c, "na") for c in categories},
            }
            pooled[mode][language][0].append(reference)
            pooled[mode][language][1].append(hypothesis)
            totals[mode]["wall"] += analysed.stage_s["transcribe"]
            totals[mode]["cpu"] += row[mode]["analyse_cpu_s"]
            for category in categories:
                expected = {label["expected"][category], *label.get("acceptable", {}).get(category, [])}
                label_agree[mode] += row[mode]["verdicts"][category] in expected
        judged += len(categories)
        audio_s += analysed.conversation.duration_s
        changed = [
            f"{call.call_id}.{c}: sequential {row['sequential']['verdicts'][c]}, batched {row['batched']['verdicts'][c]}"
            f" (label {label['expected'][c]})"
            for c in categories if row["sequential"]["verdicts"][c] != row["batched"]["verdicts"][c]
        ]
        differences += changed
        rows.append(row)
        console.print(f"  {call.call_id}: error {row['sequential']['error']:.3f} / {row['batched']['error']:.3f}, "
                      f"CPU s {row['sequential']['analyse_cpu_s']:.0f} / {row['batched']['analyse_cpu_s']:.0f}"
                      f"{'' if not changed else ', verdicts differ: ' + '; '.join(changed)}", highlight=False)
        table.add_row(
            call.call_id, f"{analysed.conversation.duration_s:.0f}", *[f"{row[m]['error']:.3f}" for m in MODES],
            *[f"{row[m]['analyse_cpu_s']:.1f}" for m in MODES], "same" if not changed else f"{len(changed)} differ",
        )
    summary = {m: {lang: error_rate(lang, *pooled[m][lang]) for lang in ("zh", "en") if pooled[m][lang][0]} for m in MODES}
    for lang in ("zh", "en"):
        table.add_row(f"[b]pooled {lang}", "", *[f"{summary[m].get(lang, float('nan')):.3f}" for m in MODES], "", "", "")
    console.print(table)
    for mode in MODES:
        console.print(f"{mode}: category verdicts agreeing with the labels {label_agree[mode]}/{judged}; "
                      f"transcribe stage {totals[mode]['wall']:.0f} s wall (RTF {totals[mode]['wall'] / audio_s:.3f}), "
                      f"whole analysis {totals[mode]['cpu']:.0f} CPU s")
    console.print(f"verdicts that differ between the modes: {len(differences)}", *differences, sep="\n  ")
    return {"calls": rows, "pooled": summary, "label_agreement": label_agree, "judged": judged,
            "verdict_differences": differences, "totals": totals, "audio_s": audio_s}


# ----------------------------------------------------------------------------- 3. speed on a 5-min stereo call
def long_stereo_call(folder: Path) -> tuple[Path, list[str]]:
    """Whole 16 kHz stereo Mandarin dev calls, one after another, until 5 minutes are reached."""
    import soundfile as sf

    parts, names, total = [], [], 0.0
    for call, label, _ in dev_calls():
        if label["language"] != "zh" or label["channels"] != 2 or label["sample_rate"] != 16000 or "8k" in call.call_id:
            continue
        audio = decode_audio(call.path)
        parts.append(audio.samples.T)
        names.append(call.call_id)
        total += audio.duration_s
        if total >= LONG_CALL_S:
            break
    path = folder / "long_stereo_5min.wav"
    sf.write(path, np.concatenate(parts), 16000, subtype="PCM_16")
    return path, names


def bench_long_call(engines: SpeechEngines, settings: Settings, console: Console, repeats: int) -> dict:
    from faster_whisper import BatchedInferencePipeline

    model = engines.transcriber._model  # the same loaded model: bare library calls on it
    with tempfile.TemporaryDirectory() as tmp:
        path, names = long_stereo_call(Path(tmp))
        audio = decode_audio(path)
        channels = [audio.samples[c] for c in range(audio.channels)]
        console.print(f"5-min stereo call: {audio.duration_s:.0f} s from {', '.join(names)}")

        def bare_sequential():
            for signal in channels:
                list(model.transcribe(signal)[0])

        def bare_batched():
            for signal in channels:
                list(BatchedInferencePipeline(model).transcribe(signal, batch_size=settings.asr_batch_size)[0])

        verdicts = {}

        def pipeline(mode):
            def run():
                analysed = analyse_call(CallSource(call_id="long", path=path, channel_map="right"),
                                        settings.model_copy(update={"asr_mode": mode}), engines_in(engines, mode))
                verdicts[mode] = score_call(analysed).categories
                run.transcribe_s = analysed.stage_s["transcribe"]
            return run

        runs = {
            "bare faster-whisper sequential (defaults, 2 channels)": bare_sequential,
            "bare faster-whisper batched (defaults, 2 channels)": bare_batched,
            "pipeline, asr_mode=sequential (whole analysis)": pipeline("sequential"),
            "pipeline, asr_mode=batched (whole analysis)": pipeline("batched"),
        }
        engines.transcriber.transcribe(channels[0][: 16000 * 5], "zh")  # warm-up
        figures = {name: {"wall": [], "cpu": [], "transcribe": []} for name in runs}
        for _ in range(repeats):  # interleaved, so a busy spell of the neighbours hits every variant
            for name, run in runs.items():
                with Clock() as clock:
                    run()
                figures[name]["wall"].append(clock.wall)
                figures[name]["cpu"].append(clock.cpu)
                figures[name]["transcribe"].append(getattr(run, "transcribe_s", None))
    base = "bare faster-whisper sequential (defaults, 2 channels)"
    best = {name: {k: min(v) if None not in v else None for k, v in f.items()} for name, f in figures.items()}
    table = Table(title=f"Speed on a {audio.duration_s:.0f} s stereo call (best of {repeats}; CPU = all threads)")
    for col in ("run", "wall s", "RTF", "CPU s", "wall / bare seq", "CPU / bare seq", "transcribe stage s"):
        table.add_column(col)
    for name, f in best.items():
        table.add_row(name, f"{f['wall']:.1f}", f"{f['wall'] / audio.duration_s:.3f}", f"{f['cpu']:.1f}",
                      f"{f['wall'] / best[base]['wall']:.2f}", f"{f['cpu'] / best[base]['cpu']:.2f}",
                      "" if f["transcribe"] is None else f"{f['transcribe']:.1f}")
    console.print(table)
    diff = [c for c in verdicts["sequential"] if verdicts["sequential"].get(c) != verdicts["batched"].get(c)]
    console.print(f"5-min call verdicts, sequential vs batched: {'identical' if not diff else diff}")
    return {"audio_s": audio.duration_s, "parts": names, "runs": figures, "verdicts": verdicts}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--skip-calls", action="store_true", help="skip the dev calls (the longest part)")
    parser.add_argument("--skip-speed", action="store_true")
    parser.add_argument("--repeats", type=int, default=1, help="timing rounds on the 5-min call")
    parser.add_argument("--json", type=Path, help="also write every figure to this file")
    args = parser.parse_args()
    console = Console(width=max(Console().width, 150))
    settings = Settings.load(threads=args.threads)
    engines = SpeechEngines.load(settings)
    _ = engines.diarizer  # loaded once, shared by both modes
    console.print(f"device {engines.device.describe()}; Whisper {engines.transcriber.name}; "
                  f"batch size {settings.asr_batch_size}; default mode {settings.asr_mode}")
    out = {}
    if not args.skip_real:
        out["real"] = bench_real(engines, console)
    if not args.skip_calls:
        out["dev_calls"] = bench_dev_calls(engines, settings, console)
    if not args.skip_speed:
        out["long_call"] = bench_long_call(engines, settings, console, args.repeats)
    if args.json:
        args.json.write_text(json.dumps(out, indent=1, ensure_ascii=False, default=str), encoding="utf-8")


if __name__ == "__main__":
    main()
