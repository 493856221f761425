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


def test_levels_and_correlation_of_a_long_call_are_computed_in_blocks_with_the_same_values():
    """Block-wise levels and channel correlation (bounded memory on hour-long calls) equal the
    whole-array computation: frame levels at frame and block edges, whole-signal levels, the
    stereo/mono decision's correlation."""
    import librosa

    from pipelines.stages.audio import LEVEL_BLOCK_SAMPLES, frame_levels_dbfs, rms_dbfs, signal_levels_dbfs
    from pipelines.stages.speakers import _correlation

    rng = np.random.default_rng(7)
    n = int(2.6 * LEVEL_BLOCK_SAMPLES) + 123
    samples = (rng.normal(0, 0.05, (2, n)) * np.linspace(0.01, 1, n)).astype(np.float32)
    samples[1] += 0.5 * samples[0]
    for frame in (480, 800, 1000):
        whole = librosa.amplitude_to_db(librosa.feature.rms(y=samples, frame_length=frame, hop_length=frame, center=False,
                                                            dtype=np.float64)[..., 0, :], ref=1.0, amin=1e-10, top_db=None)
        assert np.allclose(frame_levels_dbfs(samples, frame), whole, atol=1e-9)
    whole_db = 10 * np.log10(np.mean(samples.astype(np.float64) ** 2, axis=-1))
    assert np.allclose(signal_levels_dbfs(samples), whole_db, atol=1e-9)
    assert abs(rms_dbfs(samples[0]) - whole_db[0]) < 1e-9
    a, b = samples.astype(np.float64)
    assert abs(_correlation(samples[0], samples[1]) - a @ b / np.sqrt((a @ a) * (b @ b))) < 1e-12


def test_decoded_frames_are_joined_in_time_order():
    from pipelines.stages.audio import _join

    chunks = [np.full((2, k + 1), k, dtype=np.float32) for k in range(5)]
    expected = np.concatenate(chunks, axis=1)
    assert np.array_equal(_join(list(chunks)), expected)


def test_long_channels_are_cut_for_transcription_in_their_quietest_moment():
    """A channel longer than the sequential transcription window is cut into windows no longer than
    it, each cut inside a pause; a call shorter than a window is left whole."""
    from models.long_audio import window_bounds

    sr = 100
    rng = np.random.default_rng(3)
    pauses = [(560, 562), (1130, 1131), (1700, 1702)]
    signal = rng.normal(0, 0.3, 2000 * sr).astype(np.float32)
    for a, b in pauses:
        signal[a * sr : b * sr] = 0.0
    bounds = window_bounds(signal, sr, window_s=600, search_s=60)
    assert bounds[0][0] == 0 and bounds[-1][1] == len(signal)
    assert all(end == nxt for (_, end), (nxt, _) in zip(bounds, bounds[1:]))
    assert all(end - start <= 600 * sr for start, end in bounds)
    for (_, cut), (a, b) in zip(bounds, pauses):
        assert a * sr <= cut <= b * sr, (cut, a, b)
    assert window_bounds(signal[: 600 * sr], sr, window_s=600) == [(0, 600 * sr)]
