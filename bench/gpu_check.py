"""GPU-ready check: can this machine run the pipeline on its NVIDIA GPU, and how much faster than on
its CPU?  Run by ``bench/gpu_check.sh`` (see README, "Tests and bench").

For each device (the GPU when one is visible, then the CPU) it loads the models the way a worker
does (Whisper float16 on the GPU / int8 on the CPU, pyannote + CAM++ moved to the device), runs the
dev calls through the pipeline's own stages, and prints one ``figure: value`` line per figure:
real-time factor per stage, calls/hour, peak GPU memory; then the GPU/CPU ratios.  With
``--cpu-only``, or when no GPU is visible, the GPU part is skipped and the output says why (CI mode).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import threading
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.shared_data import SHARED  # noqa: E402
DEV_CALLS = [
    ROOT / "samples" / "calls" / "zh_good_stereo.flac",  # stereo: both channels' speech in one batched Whisper pass
    ROOT / "samples" / "calls" / "zh_good_mono.flac",  # mono: Whisper + pyannote diarization
    SHARED / "data" / "calls2" / "D05_transfer_ok.flac",  # stereo transfer: CAM++ voice comparison
    SHARED / "data" / "calls2" / "D13_customer_first_8k.wav",  # 8 kHz mono
]
STAGES = ("decode", "transcribe", "speakers", "measure", "score")
"""The pipeline's stages in flow order (``speakers``: channel voice activity, or pyannote on a mono call)."""


@dataclass
class DeviceFigures:
    """What one device did with the dev calls; ``rtf`` is stage seconds per second of audio."""

    device: str
    asr: str = ""
    """The transcription mode the calls ran in (``batched, batch size 8`` or ``sequential``)."""
    load_s: float = 0.0
    audio_s: float = 0.0
    calls: int = 0
    stage_s: dict[str, float] = field(default_factory=lambda: {s: 0.0 for s in STAGES})
    pyannote_rtf: float | None = None
    """pyannote + CAM++ on a mono signal, timed on its own (every device runs it at least once)."""
    peak_gpu_torch_mb: float | None = None
    peak_gpu_process_mb: float | None = None

    @property
    def total_s(self) -> float:
        return sum(self.stage_s.values())

    def rtf(self) -> dict[str, float]:
        return {stage: seconds / self.audio_s for stage, seconds in self.stage_s.items()} | {"total": self.total_s / self.audio_s}

    def calls_per_hour(self) -> float:
        return 3600.0 * self.calls / self.total_s


def detect_gpu() -> tuple[bool, str]:
    """Whether both model runtimes see a CUDA GPU, and a line that says what was found (or why not)."""
    lines = []
    smi = shutil.which("nvidia-smi")
    if smi:
        proc = subprocess.run([smi, "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=60)
        lines.append(f"nvidia-smi: {proc.stdout.strip() or proc.stderr.strip() or 'no output'}")
    else:
        lines.append("nvidia-smi: not found (no NVIDIA driver on this machine)")
    import ctranslate2
    import torch

    ct2 = ctranslate2.get_cuda_device_count()
    lines.append(f"CTranslate2 {ctranslate2.__version__} sees {ct2} CUDA device(s)")
    if torch.cuda.is_available():
        lines.append(f"torch {torch.__version__} (CUDA {torch.version.cuda}) sees {torch.cuda.get_device_name(0)}")
    else:
        lines.append(f"torch {torch.__version__} (CUDA build: {torch.version.cuda or 'none'}) sees no CUDA device")
    return ct2 > 0 and torch.cuda.is_available(), "; ".join(lines)


class GpuMemorySampler:
    """Peak GPU memory of this process as the driver reports it (``nvidia-smi``), sampled twice a
    second: CTranslate2 allocates outside torch, so torch.cuda.max_memory_allocated misses Whisper."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._smi = shutil.which("nvidia-smi")

    def _run(self) -> None:
        pid = str(os.getpid())
        while not self._stop.wait(0.5):
            try:
                out = subprocess.run([self._smi, "--query-compute-apps=pid,used_memory", "--format=csv,noheader,nounits"],
                                     capture_output=True, text=True, timeout=10).stdout
            except (OSError, subprocess.SubprocessError):
                continue
            for line in out.splitlines():
                parts = [p.strip() for p in line.split(",")]
                if len(parts) == 2 and parts[0] == pid and parts[1].isdigit():
                    self.peak_mb = max(self.peak_mb, float(parts[1]))

    def __enter__(self) -> "GpuMemorySampler":
        if self._smi:
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=15)


def run_device(device: str, calls: list[Path], threads: int | None, asr_mode: str | None = None,
               asr_batch_size: int | None = None) -> DeviceFigures:
    """Load the models on ``device`` as a worker does and run every call through the stages, in the
    pipeline's transcription mode (``asr_mode``; the settings' default, batched, when ``None``)."""
    import qa_rules
    import torch

    from pipelines.settings import Settings
    from pipelines.stages.analysis import analyse_call
    from pipelines.stages.audio import decode_audio
    from pipelines.stages.engines import SpeechEngines
    from qa_rules.records import CallSource

    figures = DeviceFigures(device)
    cuda = device == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    with GpuMemorySampler() if cuda else _Null() as sampler:
        t0 = time.perf_counter()
        settings = Settings.load(device=device, threads=threads, asr_mode=asr_mode, asr_batch_size=asr_batch_size)
        engines = SpeechEngines.load(settings)
        figures.asr = settings.asr_mode + (f", batch size {settings.asr_batch_size}" if settings.asr_mode == "batched" else "")
        _ = engines.diarizer  # pyannote on the device: a worker loads it on its first mono call
        figures.load_s = time.perf_counter() - t0
        print(f"[{device}] models on {engines.device.describe()} loaded in {figures.load_s:.1f} s", flush=True)
        books = {lang: qa_rules.load_rulebook(qa_rules.default_rulebook_path(lang)) for lang in ("zh", "en")}
        for path in calls:
            # the pipeline's own chain; its stage outputs are on the host, so each stage's time is its own
            analysed = analyse_call(CallSource(call_id=path.stem, path=path), settings, engines)
            conversation = analysed.conversation
            times = dict(analysed.stage_s)
            t = time.perf_counter()
            qa_rules.score(conversation, analysed.measures, books["zh" if conversation.language == "zh" else "en"])
            times["score"] = time.perf_counter() - t
            for stage, seconds in times.items():
                figures.stage_s[stage] += seconds
            figures.audio_s += conversation.duration_s
            figures.calls += 1
            print(f"[{device}] {path.name}: {conversation.duration_s:.1f} s audio, {conversation.speaker_mode}, "
                  + ", ".join(f"{k} {v:.2f} s" for k, v in times.items()), flush=True)
        mono_signal = decode_audio(calls[0]).mono()
        # pyannote on its own, on the first call's mono mix: every run exercises it, stereo-only too
        t = time.perf_counter()
        engines.diarizer.diarize(mono_signal)
        _sync(cuda)
        figures.pyannote_rtf = (time.perf_counter() - t) / (len(mono_signal) / 16000)
    if cuda:
        figures.peak_gpu_torch_mb = torch.cuda.max_memory_allocated() / 2**20
        figures.peak_gpu_process_mb = sampler.peak_mb or None
    return figures


class _Null:
    peak_mb = 0.0

    def __enter__(self) -> "_Null":
        return self

    def __exit__(self, *exc) -> None:
        return None


def _sync(cuda: bool) -> None:
    """Wait for queued GPU work so a stage's time is its own."""
    if cuda:
        import torch

        torch.cuda.synchronize()


def report(figures: DeviceFigures) -> list[str]:
    """``figure: value`` lines, one per figure, named so a reader (or a test) can find each one."""
    d = figures.device
    lines = [f"{d} ASR mode: {figures.asr}",
             f"{d} models loaded (s): {figures.load_s:.1f}",
             f"{d} calls: {figures.calls} ({figures.audio_s:.1f} s of audio)"]
    lines += [f"{d} RTF {stage}: {value:.4f}" for stage, value in figures.rtf().items()]
    lines.append(f"{d} RTF pyannote diarization: {figures.pyannote_rtf:.4f}")
    lines.append(f"{d} calls/hour: {figures.calls_per_hour():.0f}")
    if d == "cuda":
        lines.append(f"cuda peak GPU memory, torch allocator (pyannote, CAM++) (MB): {figures.peak_gpu_torch_mb:.0f}")
        process = f"{figures.peak_gpu_process_mb:.0f}" if figures.peak_gpu_process_mb else "not reported by nvidia-smi"
        lines.append(f"cuda peak GPU memory, whole process incl. CTranslate2 (MB): {process}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-only", action="store_true", help="CI mode: skip the GPU part even when a GPU is visible")
    parser.add_argument("--call", type=Path, action="append", help="a call to run (repeatable; default: the dev calls)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: all cores)")
    parser.add_argument("--json", type=Path, help="also write the figures here as JSON")
    parser.add_argument("--asr-mode", choices=("batched", "sequential"), default=None,
                        help="transcription mode (default: the settings', batched)")
    parser.add_argument("--asr-batch-size", type=int, default=None, help="chunks per batch in batched mode (default 8)")
    args = parser.parse_args(argv)
    warnings.filterwarnings("ignore")
    calls = args.call or DEV_CALLS
    missing = [str(p) for p in calls if not p.is_file()]
    if missing:
        print(f"error: call(s) not found: {', '.join(missing)} — fix: put ../shared beside the checkout "
              "(or set CALLQA_SHARED), or name calls with --call", file=sys.stderr)
        return 2
    start = time.perf_counter()
    gpu, found = detect_gpu()
    print(f"device detection: {found}", flush=True)
    if args.cpu_only:
        skipped = "GPU part SKIPPED: --cpu-only was given (CI mode)"
    elif not gpu:
        skipped = "GPU part SKIPPED: no CUDA GPU visible to both CTranslate2 and torch (CI mode) — see device detection above"
    else:
        skipped = None
    results: list[DeviceFigures] = []
    if skipped:
        print(skipped, flush=True)
    else:
        results.append(run_device("cuda", calls, args.threads, args.asr_mode, args.asr_batch_size))
    results.append(run_device("cpu", calls, args.threads, args.asr_mode, args.asr_batch_size))
    lines = [line for figures in results for line in report(figures)]
    if len(results) == 2:
        gpu_f, cpu_f = results
        lines += [f"ratio CPU/GPU time {stage}: {cpu_f.stage_s[stage] / gpu_f.stage_s[stage]:.2f}"
                  for stage in ("transcribe", "speakers") if gpu_f.stage_s[stage] > 0]
        lines.append(f"ratio CPU/GPU pyannote diarization: {cpu_f.pyannote_rtf / gpu_f.pyannote_rtf:.2f}")
        lines.append(f"ratio GPU/CPU calls/hour: {gpu_f.calls_per_hour() / cpu_f.calls_per_hour():.2f}")
    else:
        lines.append(f"ratio GPU/CPU: not measured ({skipped})")
    print("\n== GPU check figures ==")
    print("\n".join(lines))
    print(f"check took {time.perf_counter() - start:.0f} s", flush=True)
    if args.json:
        data = {"gpu_skipped": skipped, "detection": found,
                "devices": [asdict(f) | {"rtf": f.rtf(), "calls_per_hour": f.calls_per_hour()} for f in results]}
        args.json.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
