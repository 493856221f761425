"""Decoding: every container/codec a call recorder writes, channels kept, 16 kHz out, bad input named."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.stages.audio import SAMPLE_RATE, decode_audio
from qa_rules.records import BadAudioError
from tests.audio_fixtures import encode, tone, write_wav


def _stereo(sr: int, seconds: float = 2.0) -> np.ndarray:
    left = tone(seconds, 300, sr)
    right = np.zeros_like(left)
    right[: len(right) // 2] = tone(seconds / 2, 500, sr)
    return np.stack([left, right])


@pytest.mark.parametrize("subtype", ["ULAW", "ALAW", "PCM_16"])
def test_8khz_telephone_wav_is_resampled_and_keeps_channels(tmp_path, subtype):
    path = write_wav(tmp_path / f"call_{subtype}.wav", _stereo(8000).T, 8000, subtype)
    audio = decode_audio(path)
    assert audio.channels == 2
    assert audio.sample_rate == SAMPLE_RATE
    assert audio.original_sample_rate == 8000
    assert abs(audio.duration_s - 2.0) < 0.05
    # the right channel is silent in its second half, the left is not: channels were not mixed
    half = audio.samples.shape[1] // 2
    assert np.abs(audio.samples[1, half + 1000 :]).max() < 0.01
    assert np.abs(audio.samples[0, half + 1000 :]).max() > 0.05


@pytest.mark.parametrize(
    "name,codec,fmt", [("c.mp3", "libmp3lame", "mp3"), ("c.flac", "flac", "flac"), ("c.m4a", "aac", "mp4"), ("c.ogg", "libopus", "ogg")]
)
def test_compressed_formats_decode(tmp_path, name, codec, fmt):
    sr = 48000 if codec == "libopus" else 16000
    path = encode(tmp_path / name, _stereo(sr), sr, codec, fmt)
    audio = decode_audio(path)
    assert audio.channels == 2
    assert abs(audio.duration_s - 2.0) < 0.15  # lossy codecs add encoder priming (AAC: 1024+ samples)
    assert np.abs(audio.samples[0]).max() > 0.05


def test_mono_stays_mono(tmp_path):
    path = write_wav(tmp_path / "mono.wav", tone(1.0, sr=16000), 16000)
    audio = decode_audio(path)
    assert audio.channels == 1
    assert audio.mono().shape == (16000,)


@pytest.mark.parametrize(
    "content,expected",
    [(b"", "empty file"), (b"this is a text file, not a recording\n" * 20, "not an audio file")],
)
def test_bad_input_is_named(tmp_path, content, expected):
    path = tmp_path / "0042.wav"
    path.write_bytes(content)
    with pytest.raises(BadAudioError) as info:
        decode_audio(path)
    assert expected in str(info.value)
    assert "0042.wav" in str(info.value)


def test_missing_and_truncated_files(tmp_path):
    with pytest.raises(BadAudioError, match="file not found"):
        decode_audio(tmp_path / "nope.wav")
    good = write_wav(tmp_path / "good.wav", tone(1.0), 16000).read_bytes()
    truncated = tmp_path / "truncated.wav"
    truncated.write_bytes(good[:60])
    with pytest.raises(BadAudioError):
        decode_audio(truncated)


def test_too_long_is_refused(tmp_path):
    path = write_wav(tmp_path / "long.wav", tone(3.0), 16000)
    with pytest.raises(BadAudioError, match="longer than"):
        decode_audio(path, max_duration_s=1.0)
