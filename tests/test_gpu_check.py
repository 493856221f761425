"""bench/gpu_check.sh in CI mode (--cpu-only) on one short call: it runs the pipeline's stages on the
CPU, names every figure, and says that the GPU part was skipped and why.  The figures' values are
speed, measured on a GPU worker, never asserted here."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_gpu_check_cpu_mode_names_every_figure(real_data, tmp_path):
    call = real_data / "en_stereo_2ch_fasterwhisper" / "stereo_diarization.wav"
    figures_json = tmp_path / "gpu_check.json"
    proc = subprocess.run(
        [str(ROOT / "bench" / "gpu_check.sh"), "--cpu-only", "--call", str(call), "--threads", "2", "--json", str(figures_json)],
        env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "device detection: " in out and "CTranslate2" in out and "torch" in out
    assert "GPU part SKIPPED: --cpu-only was given (CI mode)" in out
    figures = out.split("== GPU check figures ==")[1]
    names = [f"cpu RTF {stage}" for stage in ("decode", "transcribe", "speakers", "measure", "score", "total")]
    names += ["cpu RTF pyannote diarization", "cpu calls/hour", "cpu models loaded (s)", "cpu calls: 1",
              "ratio GPU/CPU: not measured (GPU part SKIPPED"]
    for name in names:
        assert name in figures, f"{name!r} missing from:\n{figures}"
    data = json.loads(figures_json.read_text(encoding="utf-8"))
    assert data["gpu_skipped"].startswith("GPU part SKIPPED")
    assert [d["device"] for d in data["devices"]] == ["cpu"]
    cpu = data["devices"][0]
    assert cpu["calls"] == 1 and cpu["pyannote_rtf"] > 0 and cpu["calls_per_hour"] > 0
    assert all(seconds > 0 for seconds in cpu["stage_s"].values()), cpu["stage_s"]  # each stage really ran
