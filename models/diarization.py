"""Speaker diarization with pyannote.audio 4, built from local files only.

The pipeline is pyannote's ``SpeakerDiarization`` with the segmentation-3.0 checkpoint and CAM++
embeddings (see :mod:`models.speaker_embedding`), clustered agglomeratively.  Calls have two
parties plus, on a transferred call, the agent who takes the transfer, so clustering chooses between
2 and 3 speakers.  A free lower bound is not used: measured here, it let the threshold merge two
similar voices (DER 0.34 against 0.01 on a 3-min 8 kHz dev call; 46.8 % against 5.0 % on a real
183 s customer-service call with an entirely free count).  A silent caller's single voice still
comes out as one speaker: the segmentation model hears only one.
"""

from __future__ import annotations

import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from models.device import DeviceChoice
from models.errors import ModelUnavailableError
from models.options import DiarizationOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpeakerSpan:
    speaker: str
    start: float
    end: float


def _unused_plda():
    """pyannote 4.0.7 asks for a PLDA object even for clustering that never uses one."""
    from pyannote.audio.core.plda import PLDA

    class UnusedPLDA(PLDA):
        def __init__(self) -> None:  # no transform files: agglomerative clustering needs none
            pass

        def __call__(self, embeddings):  # pragma: no cover - only VBx would call it
            raise RuntimeError("PLDA is not available in the local model store")

    return UnusedPLDA()


class Diarizer:
    """A loaded diarization pipeline.  Build once per worker; call :meth:`diarize` per call."""

    def __init__(
        self,
        segmentation: Path,
        embedding: Path,
        device: DeviceChoice,
        options: DiarizationOptions | None = None,
    ):
        # torch and pyannote.audio (with lightning) cost seconds to import: only a call that needs
        # diarization pays for them, never a stereo-only or nothing-to-do batch (see README).
        import torch
        from pyannote.audio import Model

        from models.speaker_embedding import CamPlusPlusEmbedding
        from models.speaker_tracking import tracked_diarization_class

        self.options = options or DiarizationOptions()
        self.device = device
        self.segmentation_path = Path(segmentation)
        self.embedding_path = Path(embedding)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                seg_model = Model.from_pretrained(str(self.segmentation_path))
        except Exception as exc:  # noqa: BLE001
            raise ModelUnavailableError(
                f"pyannote segmentation checkpoint {self.segmentation_path} failed to load "
                f"({type(exc).__name__}: {exc})",
                "run `callqa models prepare` again, or fix diarization.segmentation in your config",
            ) from exc
        if seg_model is None:
            raise ModelUnavailableError(f"no segmentation model in {self.segmentation_path}",
                                        "run `callqa models prepare`")
        emb_model = CamPlusPlusEmbedding(self.embedding_path)
        opts = self.options
        self._pipeline = tracked_diarization_class()(
            segmentation=seg_model,
            embedding=emb_model,
            plda=_unused_plda(),
            clustering="AgglomerativeClustering",
            segmentation_step=opts.segmentation_step,
            embedding_batch_size=opts.batch_size,
            segmentation_batch_size=opts.batch_size,
            embedding_stride=opts.embedding_stride,
        )
        # default_parameters() only covers VBx: agglomerative parameters are set here.
        self._pipeline.instantiate(
            {
                "segmentation": {"min_duration_off": opts.min_duration_off},
                "clustering": {
                    "method": "centroid",
                    "min_cluster_size": opts.min_cluster_size,
                    "threshold": opts.clustering_threshold,
                },
            }
        )
        self._pipeline.to(device.torch_device())
        if device.device == "cpu":
            torch.set_num_threads(device.threads)

    def halve_batches(self) -> None:
        """Halve the segmentation and embedding batches (never below one): after the device ran out
        of memory, the retry of the call asks for less of it at once."""
        self._pipeline.embedding_batch_size = max(1, self._pipeline.embedding_batch_size // 2)
        self._pipeline.segmentation_batch_size = max(1, self._pipeline.segmentation_batch_size // 2)

    @property
    def name(self) -> str:
        return f"pyannote/{self.segmentation_path.parent.name}+{self.embedding_path.parent.name}"

    def diarize(self, audio: np.ndarray, sample_rate: int = 16000, num_speakers: int | None = -1) -> list[SpeakerSpan]:
        """Speaker turns of a mono signal; overlapping turns are kept.

        ``num_speakers=-1`` uses the configured default; ``None`` lets clustering decide.
        """
        opts = self.options
        count = opts.num_speakers if num_speakers == -1 else num_speakers
        import torch  # already loaded by __init__; kept local so importing this module stays light

        waveform = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None]
        kwargs: dict[str, int] = {}
        if count:
            kwargs["num_speakers"] = count
        else:
            if opts.min_speakers:
                kwargs["min_speakers"] = opts.min_speakers
            if opts.max_speakers:
                kwargs["max_speakers"] = opts.max_speakers
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            output = self._pipeline({"waveform": waveform, "sample_rate": sample_rate}, **kwargs)
        annotation = getattr(output, "speaker_diarization", output)
        spans = [
            SpeakerSpan(str(label), float(segment.start), float(segment.end))
            for segment, _, label in annotation.itertracks(yield_label=True)
        ]
        return sorted(spans, key=lambda s: (s.start, s.end))
