"""Decode a recorded call once: every channel kept, resampled to 16 kHz float32.

PyAV (FFmpeg) reads wav (PCM, 8 kHz μ-law/A-law), mp3, m4a, flac and ogg/opus alike, so call
recordings from any switch come through the same door.  Channels are kept because a stereo
recording with one party per channel tells us who spoke without any diarization.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from qa_rules.records import BadAudioError

log = logging.getLogger(__name__)

SAMPLE_RATE = 16000
MAX_DURATION_S = 4 * 3600.0
"""Longer inputs are refused: a call recording is not a day-long stream."""


@dataclass(frozen=True)
class CallAudio:
    """Decoded samples of one call: ``samples`` has shape ``(channels, n)`` at ``SAMPLE_RATE``."""

    source: Path
    samples: np.ndarray
    original_sample_rate: int
    codec: str
    damage: str | None = None
    """What went wrong while decoding though samples came out (``audio ends early at 7.9 s of
    37.8 s``): the call is scored on what decoded and flagged for a human look."""

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE

    @property
    def channels(self) -> int:
        return int(self.samples.shape[0])

    @property
    def duration_s(self) -> float:
        return self.samples.shape[1] / SAMPLE_RATE

    def mono(self) -> np.ndarray:
        """Channels mixed down (mean), for models that want one signal."""
        if self.channels == 1:
            return self.samples[0]
        return self.samples.mean(axis=0).astype(np.float32)


def decode_audio(path: str | Path, max_duration_s: float = MAX_DURATION_S) -> CallAudio:
    """Decode ``path`` into a :class:`CallAudio`; raise :class:`BadAudioError` with the reason."""
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise BadAudioError(name, f"file not found: {path}")
    if path.stat().st_size == 0:
        raise BadAudioError(name, "empty file (0 bytes)")
    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise BadAudioError(name, f"not an audio file (ffmpeg: {_ffmpeg_reason(exc)})") from exc
    with container:
        if not container.streams.audio:
            raise BadAudioError(name, "no audio stream in file")
        stream = container.streams.audio[0]
        codec = stream.codec_context.name
        rate = stream.codec_context.sample_rate or 0
        channels = stream.codec_context.channels or 1
        layout = "mono" if channels == 1 else "stereo" if channels == 2 else stream.codec_context.layout.name
        resampler = av.AudioResampler(format="fltp", layout=layout, rate=SAMPLE_RATE)
        chunks: list[np.ndarray] = []
        damage: str | None = None
        ffmpeg_error = ""
        n = 0
        max_samples = int(max_duration_s * SAMPLE_RATE)
        try:
            for frame in container.decode(stream):
                frame.pts = None  # let the resampler re-time frames; broken pts in some wavs
                for out in resampler.resample(frame):
                    array = out.to_ndarray()
                    chunks.append(array)
                    n += array.shape[1]
                if n > max_samples:
                    raise BadAudioError(name, f"longer than the {_duration_text(max_duration_s)} limit for one call")
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray())
        except av.FFmpegError as exc:
            if not chunks:
                raise BadAudioError(name, f"corrupt audio (ffmpeg: {_ffmpeg_reason(exc)})") from exc
            ffmpeg_error = f"ffmpeg: {_ffmpeg_reason(exc)}"
            damage = f"audio damaged after {n / SAMPLE_RATE:.1f} s ({ffmpeg_error})"
        declared = _declared_duration(container, stream)
    if not chunks:
        raise BadAudioError(name, "no audio samples decoded (empty or truncated file)")
    samples = _join(chunks)
    if samples.shape[1] < SAMPLE_RATE // 4:
        raise BadAudioError(name, f"too short to be a call ({samples.shape[1] / SAMPLE_RATE:.2f} s)")
    decoded = samples.shape[1] / SAMPLE_RATE
    if declared is not None and decoded < declared - max(EARLY_END_TOLERANCE_S, 0.02 * declared):
        damage = f"audio ends early at {decoded:.1f} s of {declared:.1f} s" + (f" ({ffmpeg_error})" if ffmpeg_error else "")
    if damage:
        log.warning("call %s: %s (truncated or damaged file), using what decoded", name, damage)
    return CallAudio(source=path, samples=samples, original_sample_rate=rate, codec=codec, damage=damage)


def _join(chunks: list[np.ndarray]) -> np.ndarray:
    """The decoded frames as one ``(channels, n)`` float32 array, each frame freed once copied: an
    hour of stereo is 460 MB, and holding the frames and the joined copy at once would double it."""
    out = np.empty((chunks[0].shape[0], sum(c.shape[1] for c in chunks)), dtype=np.float32)
    at = 0
    chunks.reverse()  # pop from the end, in time order
    while chunks:
        chunk = chunks.pop()
        out[:, at : at + chunk.shape[1]] = chunk
        at += chunk.shape[1]
    return out


EARLY_END_TOLERANCE_S = 0.5
"""Decoded audio this much (or 2 %) shorter than the file's header says is a truncated file."""


def _declared_duration(container, stream) -> float | None:
    """The duration the file's header declares (FLAC STREAMINFO, WAV data size, MP3 Xing frames…),
    ``None`` when it declares none.  Estimates from the bit rate are not trusted."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration and getattr(container, "format", None) is not None and container.format.name in ("wav", "flac", "ogg"):
        return container.duration / 1_000_000
    return None


def _duration_text(seconds: float) -> str:
    return f"{seconds / 3600:g} h" if seconds >= 3600 else f"{seconds:g} s"


FLOOR_DBFS = -200.0
"""Frame levels are floored here (RMS 1e-10): a digitally silent frame still has a finite level."""


LEVEL_BLOCK_SAMPLES = 1 << 20
"""Levels are computed this many samples (about a minute at 16 kHz) at a time: the float64 working
copy of an hour-long channel would otherwise cost 460 MB at once."""


def frame_levels_dbfs(signal: np.ndarray, frame_length: int, floor_dbfs: float = FLOOR_DBFS) -> np.ndarray:
    """RMS level in dBFS of each whole, non-overlapping frame of ``frame_length`` samples along the
    last axis (a tail shorter than a frame is left out), floored at ``floor_dbfs``.

    Every level in the pipeline — voice activity frames, noise floor, channel and utterance levels —
    is this one computation (librosa's RMS and amplitude-to-dB), in float64 so that quiet channels
    keep their precision, block by block of whole frames so that memory does not grow with the call
    (a frame longer than a block — a whole-signal level — goes through :func:`signal_levels_dbfs`).
    librosa is imported here, not at module level: decoding a clip for the review console needs no
    signal analysis."""
    import librosa

    if signal.shape[-1] < frame_length or frame_length <= 0:
        return np.zeros(signal.shape[:-1] + (0,))
    n_frames = signal.shape[-1] // frame_length
    if frame_length > LEVEL_BLOCK_SAMPLES // 2:
        levels = [_mean_square(signal[..., k * frame_length : (k + 1) * frame_length]) for k in range(n_frames)]
        rms = np.sqrt(np.stack(levels, axis=-1))
    else:
        per_block = LEVEL_BLOCK_SAMPLES // frame_length
        rms = np.concatenate([
            librosa.feature.rms(y=signal[..., first * frame_length : min(first + per_block, n_frames) * frame_length],
                                frame_length=frame_length, hop_length=frame_length, center=False, dtype=np.float64)[..., 0, :]
            for first in range(0, n_frames, per_block)
        ], axis=-1)
    return librosa.amplitude_to_db(rms, ref=1.0, amin=10 ** (floor_dbfs / 20), top_db=None)


def _mean_square(signal: np.ndarray) -> np.ndarray:
    """Mean of the squared samples along the last axis, summed in float64 block by block."""
    total = np.zeros(signal.shape[:-1])
    for first in range(0, signal.shape[-1], LEVEL_BLOCK_SAMPLES):
        block = signal[..., first : first + LEVEL_BLOCK_SAMPLES].astype(np.float64)
        total += np.einsum("...i,...i->...", block, block)
    return total / signal.shape[-1]


def signal_levels_dbfs(signal: np.ndarray, floor_dbfs: float = FLOOR_DBFS) -> np.ndarray:
    """RMS level in dBFS of the whole signal along the last axis (one level per channel)."""
    return frame_levels_dbfs(signal, signal.shape[-1], floor_dbfs)[..., 0]


def rms_dbfs(signal: np.ndarray) -> float:
    """RMS level of the whole signal in dBFS (−inf for digital silence or an empty signal).

    Not floored like frame levels: a float32 signal that is not all zeros has an RMS far above
    1e-150, so the floor below is never the answer, and all zeros is −inf as before."""
    if not signal.size or not np.any(signal):
        return -np.inf
    return float(signal_levels_dbfs(signal, floor_dbfs=-3000.0))


def _ffmpeg_reason(exc: Exception) -> str:
    text = getattr(exc, "strerror", None) or str(exc)
    return text.split(":")[-1].strip() if ":" in text and "Errno" in text else text
