"""Integration on real recordings with ground truth (../shared/data/real): the default models,
on the CPU, must meet the foundation issue's accuracy bars."""

from __future__ import annotations

import re
from pathlib import Path

import jiwer
import pytest

from pipelines.stages.analysis import analyse_call
from pipelines.stages.audio import decode_audio
from qa_rules.records import CallSource


def _conversation(path: Path, settings, engines):
    """The pipeline's own chain on one recording."""
    return analyse_call(CallSource(call_id=path.stem, path=path), settings, engines).conversation


def _transcript(conversation) -> str:
    return "".join(u.text for u in sorted(conversation.utterances, key=lambda u: u.start))


def _chars(text: str) -> str:
    return "".join(re.findall(r"[\u3400-\u9fff]", text))


def _words(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split())


def test_mandarin_cer_after_traditional_to_simplified(engines, settings, real_data):
    errors = []
    for wav in sorted((real_data / "zh_asr").glob("*.wav")):
        reference = _chars(wav.with_suffix(".txt").read_text(encoding="utf-8"))
        conversation = _conversation(wav, settings, engines)
        assert conversation.language == "zh", f"{wav.name}: detected {conversation.language}"
        hypothesis = _chars(_transcript(conversation))
        errors.append(jiwer.cer(reference, hypothesis))
        print(f"{wav.name}: CER {errors[-1]:.3f}  {hypothesis}")
    assert len(errors) == 2
    assert sum(errors) / len(errors) <= 0.15


@pytest.mark.parametrize("name", ["jfk.flac", "librispeech-1995-1837-0001.wav"])
def test_english_clips(engines, settings, real_data, name):
    audio_path = real_data / "en_asr" / name
    reference = _words((audio_path.with_suffix(".txt")).read_text())
    conversation = _conversation(audio_path, settings, engines)
    assert conversation.language == "en"
    wer = jiwer.wer(reference, _words(" ".join(u.text for u in conversation.utterances)))
    print(f"{name}: WER {wer:.3f}")
    assert wer <= 0.10


def test_two_channel_file_gives_two_speakers_with_their_own_text(engines, settings, real_data):
    folder = real_data / "en_stereo_2ch_fasterwhisper"
    expected = {}
    for line in (folder / "stereo_diarization.channels.txt").read_text().splitlines():
        side, text = line.split(":", 1)
        expected[{"left": 0, "right": 1}[side.strip()]] = _words(text)
    conversation = _conversation(folder / "stereo_diarization.wav", settings.model_copy(update={"language": "en"}), engines)
    assert conversation.speaker_mode == "channels"
    assert len(conversation.speakers) == 2
    for speaker in conversation.speakers:
        said = _words(" ".join(u.text for u in conversation.utterances if u.speaker == speaker.id))
        wer = jiwer.wer(expected[speaker.channel], said)
        print(f"channel {speaker.channel}: WER {wer:.3f} {said}")
        assert wer <= 0.15


def _der(engines, wav: Path, reference, uem_end: float | None = None):
    from pyannote.core import Annotation, Segment
    from pyannote.metrics.diarization import DiarizationErrorRate

    audio = decode_audio(wav)
    hypothesis = Annotation(uri=wav.stem)
    for span in engines.diarizer.diarize(audio.mono()):
        hypothesis[Segment(span.start, span.end)] = span.speaker
    return hypothesis, Segment(0, uem_end or audio.duration_s)


def test_der_on_pyannote_telephone_sample(engines):
    from pyannote.database.util import load_rttm
    from pyannote.metrics.diarization import DiarizationErrorRate

    import pyannote.audio.sample as sample_pkg

    folder = Path(sample_pkg.__file__).parent
    reference = load_rttm(folder / "sample.rttm")["sample"]
    hypothesis, uem = _der(engines, folder / "sample.wav", reference)
    metric = DiarizationErrorRate(collar=0.5, skip_overlap=False)  # collar ±0.25 s, overlap scored
    der = metric(reference, hypothesis, uem=uem)
    print(f"sample.wav DER {der:.3f}")
    assert der <= 0.10


def test_der_on_ami_meeting_clips_pooled(engines, real_data):
    from pyannote.database.util import load_rttm
    from pyannote.metrics.diarization import DiarizationErrorRate

    folder = real_data / "ami_meeting"
    references = load_rttm(folder / "reference.rttm")
    metric = DiarizationErrorRate(collar=0.5, skip_overlap=False)
    for uri in ("dev00", "dev01"):
        hypothesis, uem = _der(engines, folder / f"{uri}.wav", references[uri], uem_end=30.0)
        print(f"{uri}: DER {metric(references[uri], hypothesis, uem=uem):.3f}")
    pooled = abs(metric)
    print(f"AMI pooled DER {pooled:.3f}")
    assert pooled <= 0.40
