"""Choose where models run: a CUDA GPU (float16) when one is visible, else the CPU (int8)."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger(__name__)

DeviceName = Literal["auto", "cpu", "cuda"]


@dataclass(frozen=True)
class DeviceChoice:
    device: Literal["cpu", "cuda"]
    compute_type: str
    """CTranslate2 compute type for Whisper: ``float16`` on GPU, ``int8`` on CPU."""
    threads: int
    device_index: int = 0

    def describe(self) -> str:
        where = f"cuda:{self.device_index}" if self.device == "cuda" else "cpu"
        return f"{where} ({self.compute_type}, {self.threads} threads)"

    def torch_device(self):
        import torch

        return torch.device(f"cuda:{self.device_index}" if self.device == "cuda" else "cpu")


def cuda_available() -> bool:
    try:
        import ctranslate2

        return ctranslate2.get_cuda_device_count() > 0
    except Exception:  # noqa: BLE001 - no CUDA runtime at all means CPU
        return False


def choose_device(
    requested: DeviceName = "auto",
    compute_type: str | None = None,
    threads: int | None = None,
    device_index: int = 0,
) -> DeviceChoice:
    """Resolve ``auto`` to what this machine has; honour an explicit request or fail clearly."""
    threads = threads or int(os.environ.get("CALLQA_THREADS", 0)) or (os.cpu_count() or 1)
    if requested == "auto":
        requested = "cuda" if cuda_available() else "cpu"
    elif requested == "cuda" and not cuda_available():
        raise RuntimeError("device 'cuda' was asked for but no CUDA GPU is visible — fix: use --device cpu")
    default_compute = "float16" if requested == "cuda" else "int8"
    choice = DeviceChoice(requested, compute_type or default_compute, threads, device_index)
    log.info("models run on %s", choice.describe())
    return choice
