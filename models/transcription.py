"""Whisper transcription through faster-whisper: audio samples in, timed words out.

One façade, :class:`Transcriber`, loads the CTranslate2 model once per worker process and turns
16 kHz float32 signals into :class:`RecognisedSegment` records with word timestamps.  It knows
nothing of calls, speakers or QA.

Two modes (:attr:`TranscriptionOptions.mode`): ``sequential`` is faster-whisper's
``WhisperModel.transcribe``, one signal after another, 30 s windows decoded one by one;
``batched`` cuts every signal's speech (Silero VAD, the same threshold and minimum silence) into
chunks of at most 30 s of speech, lays the chunks of all the signals given together (both channels
of a stereo call) side by side, and decodes them in batches through faster-whisper's
``BatchedInferencePipeline``; each word is then mapped back to its own signal and time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Sequence

import numpy as np

from models.device import DeviceChoice
from models.errors import DeviceOutOfMemoryError, ModelUnavailableError
from models.options import TranscriptionOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RecognisedWord:
    start: float
    end: float
    text: str
    prob: float


@dataclass(frozen=True)
class RecognisedSegment:
    start: float
    end: float
    text: str
    avg_logprob: float
    no_speech_prob: float
    words: list[RecognisedWord] = field(default_factory=list)


class Transcriber:
    """A loaded Whisper model.  Build once per worker; call :meth:`transcribe` per channel."""

    def __init__(self, model_dir: Path, device: DeviceChoice, options: TranscriptionOptions | None = None):
        from faster_whisper import WhisperModel

        self.model_dir = Path(model_dir)
        self.device = device
        self.options = options or TranscriptionOptions()
        try:
            self._model = WhisperModel(
                str(self.model_dir),
                device=device.device,
                device_index=device.device_index,
                compute_type=device.compute_type,
                cpu_threads=device.threads if device.device == "cpu" else 0,
                local_files_only=True,
            )
        except Exception as exc:  # noqa: BLE001 - any load failure gets the same actionable line
            raise ModelUnavailableError(
                f"Whisper model at {self.model_dir} failed to load ({type(exc).__name__}: {exc})",
                "run `callqa models prepare` again, or point --asr-model at a valid CTranslate2 folder",
            ) from exc

    def with_options(self, options: TranscriptionOptions) -> "Transcriber":
        """The same loaded model decoding with other options (the bench compares modes this way)."""
        other = object.__new__(Transcriber)
        other.__dict__.update(self.__dict__)
        other.options = options
        return other

    @property
    def name(self) -> str:
        return self.model_dir.name

    def detect_language(self, audio: np.ndarray) -> tuple[str, float]:
        """Language of the speech in ``audio`` (VAD-trimmed so hold silence does not vote)."""
        language, probability, _ = self._model.detect_language(
            audio, vad_filter=True, language_detection_segments=2
        )
        return language, float(probability)

    def transcribe(self, audio: np.ndarray, language: str) -> list[RecognisedSegment]:
        """Transcribe a mono 16 kHz signal in ``language`` with word timestamps."""
        return self.transcribe_many([audio], language)[0]

    def transcribe_many(self, signals: Sequence[np.ndarray], language: str) -> list[list[RecognisedSegment]]:
        """Transcribe several mono 16 kHz signals (a stereo call's channels) in ``language``: one
        list of segments per signal, times relative to that signal.  Batched mode decodes the
        speech of all of them together."""
        try:
            if self.options.mode == "sequential":
                return [self._transcribe_sequential(signal, language) for signal in signals]
            return self._transcribe_batched(signals, language)
        except RuntimeError as exc:
            if "out of memory" in str(exc).lower():  # CTranslate2 has no exception type of its own
                raise DeviceOutOfMemoryError(str(exc)) from exc
            raise

    def _transcribe_sequential(self, audio: np.ndarray, language: str) -> list[RecognisedSegment]:
        """faster-whisper's own decoding, window by window of at most ten minutes: it computes the
        features of all it is given at once, over a gigabyte for an hour-long channel
        (:mod:`models.long_audio`).  A signal shorter than a window is passed whole."""
        from models.long_audio import window_bounds

        out: list[RecognisedSegment] = []
        for start, end in window_bounds(audio, SAMPLE_RATE):
            offset = start / SAMPLE_RATE
            out += [
                replace(s, start=s.start + offset, end=s.end + offset,
                        words=[replace(w, start=w.start + offset, end=w.end + offset) for w in s.words])
                for s in self._transcribe_window(audio[start:end], language)
            ]
        return out

    def _transcribe_window(self, audio: np.ndarray, language: str) -> list[RecognisedSegment]:
        opts = self.options
        segments, _info = self._model.transcribe(
            audio,
            language=language,
            task="transcribe",
            beam_size=opts.beam_size,
            word_timestamps=True,
            vad_filter=opts.vad_filter,
            vad_parameters={"min_silence_duration_ms": opts.vad_min_silence_ms, "threshold": opts.vad_threshold},
            condition_on_previous_text=opts.condition_on_previous_text,
            initial_prompt=opts.initial_prompt,
        )
        return [_recognised(seg, seg.start, seg.end, [(w.start, w.end) for w in seg.words or []]) for seg in segments]

    def _transcribe_batched(self, signals: Sequence[np.ndarray], language: str) -> list[list[RecognisedSegment]]:
        from faster_whisper import BatchedInferencePipeline

        opts = self.options
        chunks = [
            SpeechChunk(index, spans)
            for index, signal in enumerate(signals)
            for spans in plan_chunks(self._speech_spans(signal), CHUNK_SAMPLES)
        ]
        out: list[list[RecognisedSegment]] = [[] for _ in signals]
        for _ in range(MAX_BATCHED_PASSES):
            if not chunks:
                break
            chunks = self._decode_chunks(chunks, signals, language, out)
        for segs in out:
            segs.sort(key=lambda s: s.start)
        return out

    def _decode_chunks(self, chunks: list[SpeechChunk], signals: Sequence[np.ndarray], language: str,
                       out: list[list[RecognisedSegment]]) -> list[SpeechChunk]:
        """One batched pass over ``chunks``; recognised segments go to ``out`` by signal.  Returns
        the untranscribed parts of every chunk whose words stop short of its speech or start late
        into it.

        Without timestamp tokens Whisper decodes a chunk once and may end it early — after a quiet
        phrase it can stop and leave the loud speech after it unheard (measured: a caller's
        four later turns lost on a dev call).  Sequential decoding seeks on from where the words
        stopped; this does the same, with the rest of such chunks decoded in the next pass.  It may
        also begin late: speech that starts mid-phrase (a recording cut while someone speaks, a
        long stretch of speech split at 30 s) can be skipped up to the first phrase it recognises
        (measured: the first 2–3 s of a 5-s piece cut from a call); that head is decoded again on
        its own, as sequential decoding's own window would have heard it."""
        from faster_whisper import BatchedInferencePipeline

        opts = self.options
        joined, chunks = lay_out_chunks(chunks, signals)
        # A pipeline per call: it keeps per-run state (the last word's time) that threads must not share.
        pipeline = BatchedInferencePipeline(self._model)
        segments, _info = pipeline.transcribe(
            joined,
            language=language,
            task="transcribe",
            beam_size=opts.beam_size,
            word_timestamps=True,
            without_timestamps=BATCHED_WITHOUT_TIMESTAMPS,
            clip_timestamps=[{"start": c.at / SAMPLE_RATE, "end": (c.at + c.samples) / SAMPLE_RATE} for c in chunks],
            initial_prompt=opts.initial_prompt,
            batch_size=opts.batch_size,
        )
        by_seek = {c.at * FRAMES_PER_SECOND // SAMPLE_RATE: c for c in chunks}
        heard_until: dict[int, float] = {}
        heard_from: dict[int, float] = {}
        for seg in segments:
            chunk = by_seek[seg.seek]
            if seg.words:  # where Whisper began to hear words, even ones then dropped as silence
                first = min(w.start for w in seg.words) - chunk.at / SAMPLE_RATE
                heard_from[chunk.at] = min(heard_from.get(chunk.at, first), first)
            if seg.no_speech_prob > NO_SPEECH_THRESHOLD and seg.avg_logprob < LOGPROB_THRESHOLD:
                continue  # what sequential decoding drops as silence
            words = [chunk.original_span(w.start, w.end) for w in seg.words or []]
            if words:
                start, end = words[0][0], words[-1][1]
                last = max(w.end for w in seg.words) - chunk.at / SAMPLE_RATE
                heard_until[chunk.at] = max(heard_until.get(chunk.at, 0.0), last)
            else:
                start, end = chunk.original_span(seg.start, seg.start)[0], chunk.original_span(seg.end, seg.end)[1]
            out[chunk.signal].append(_recognised(seg, start, end, words))
        rest = []
        for chunk in chunks:
            heard = heard_until.get(chunk.at)
            if heard is not None and chunk.samples / SAMPLE_RATE - heard >= UNHEARD_REST_S:
                rest.append(chunk.after(heard))
            begun = heard_from.get(chunk.at)
            if begun is not None and begun >= UNHEARD_REST_S:
                rest.append(chunk.before(begun))
        return rest

    def _speech_spans(self, signal: np.ndarray) -> list[tuple[int, int]]:
        """Silero VAD speech spans (samples) with the sequential path's threshold and minimum
        silence; no span longer than a chunk."""
        from faster_whisper.vad import VadOptions, get_speech_timestamps

        opts = self.options
        vad = VadOptions(
            threshold=opts.vad_threshold, min_silence_duration_ms=opts.vad_min_silence_ms,
            max_speech_duration_s=CHUNK_SAMPLES / SAMPLE_RATE,
        )
        if not opts.vad_filter:
            return [(0, len(signal))] if len(signal) else []
        return [(t["start"], t["end"]) for t in get_speech_timestamps(signal, vad)]


SAMPLE_RATE = 16000
FRAMES_PER_SECOND = 100
"""Whisper's feature frames per second: faster-whisper names a batched segment's chunk by its
offset in frames (``seek``)."""
CHUNK_SAMPLES = 30 * SAMPLE_RATE
"""Whisper's window: a batched chunk holds at most this much speech."""
BATCHED_WITHOUT_TIMESTAMPS = True
UNHEARD_REST_S = 1.0
"""A chunk whose words end this much (seconds of speech) before the chunk does is decoded again
from its last word on."""
MAX_BATCHED_PASSES = 4
NO_SPEECH_THRESHOLD = 0.6
LOGPROB_THRESHOLD = -1.0
"""faster-whisper's defaults for a window sequential decoding skips as silence: the batched
pipeline does not apply them, so :class:`Transcriber` does."""


@dataclass(frozen=True)
class SpeechChunk:
    """Speech spans of one signal, joined into one ≤ 30 s chunk for the batched decoder, and where
    the chunk sits in the laid-out signal (``at``, samples; set by :func:`lay_out_chunks`)."""

    signal: int
    spans: list[tuple[int, int]]
    at: int = 0

    @property
    def samples(self) -> int:
        return sum(b - a for a, b in self.spans)

    def after(self, seconds: float) -> "SpeechChunk":
        """The chunk's speech from ``seconds`` (of its joined speech) on: what is left to decode."""
        cut = int(seconds * SAMPLE_RATE)
        spans, joined = [], 0
        for a, b in self.spans:
            if joined + (b - a) > cut:
                spans.append((a + max(cut - joined, 0), b))
            joined += b - a
        return SpeechChunk(self.signal, spans)

    def before(self, seconds: float) -> "SpeechChunk":
        """The chunk's speech up to ``seconds`` (of its joined speech): what was skipped at its start."""
        cut = int(seconds * SAMPLE_RATE)
        spans, joined = [], 0
        for a, b in self.spans:
            if joined < cut:
                spans.append((a, min(b, a + cut - joined)))
            joined += b - a
        return SpeechChunk(self.signal, spans)

    def original_span(self, start: float, end: float) -> tuple[float, float]:
        """A word's times in the laid-out signal (seconds) → seconds in its own signal.  Both ends
        are mapped through the speech span holding the word's middle, so a word never straddles a
        cut-out silence (as faster-whisper restores its own VAD timestamps)."""
        offset = self.at / SAMPLE_RATE
        duration = self.samples / SAMPLE_RATE
        a = min(max(start - offset, 0.0), duration)
        b = min(max(end - offset, a), duration)
        middle = (a + b) / 2
        joined = 0.0
        for i, (s0, s1) in enumerate(self.spans):
            length = (s1 - s0) / SAMPLE_RATE
            if middle < joined + length or i == len(self.spans) - 1:
                shift = s0 / SAMPLE_RATE - joined
                return round(a + shift, 3), round(b + shift, 3)
            joined += length
        raise AssertionError("a chunk has speech spans")


def plan_chunks(spans: list[tuple[int, int]], max_samples: int) -> list[list[tuple[int, int]]]:
    """Consecutive speech spans grouped into chunks of at most ``max_samples`` of speech (silence
    between spans is cut out); a span longer than that is split."""
    chunks: list[list[tuple[int, int]]] = []
    current: list[tuple[int, int]] = []
    size = 0
    for a, b in spans:
        while b - a > max_samples:  # Silero's own split keeps spans under 30 s; this is a guard
            if current:
                chunks.append(current)
            chunks.append([(a, a + max_samples)])
            current, size, a = [], 0, a + max_samples
        if current and size + (b - a) > max_samples:
            chunks.append(current)
            current, size = [], 0
        if b > a:
            current.append((a, b))
            size += b - a
    if current:
        chunks.append(current)
    return chunks


def lay_out_chunks(chunks: list[SpeechChunk], signals: Sequence[np.ndarray]) -> tuple[np.ndarray, list[SpeechChunk]]:
    """One signal holding every chunk's speech, each chunk starting on a whole second (its clip
    boundaries are then exact in seconds), and the chunks with their place in it (``at``).
    Nothing outside the chunks is decoded, so the zeros between them are never heard."""
    placed = []
    at = 0
    for chunk in chunks:
        placed.append(replace(chunk, at=at))
        at += -(-chunk.samples // SAMPLE_RATE) * SAMPLE_RATE
    joined = np.zeros(at, dtype=np.float32)
    for chunk in placed:
        signal = signals[chunk.signal]
        joined[chunk.at:chunk.at + chunk.samples] = np.concatenate([signal[a:b] for a, b in chunk.spans])
    return joined, placed


def _recognised(seg, start: float, end: float, word_times: list[tuple[float, float]]) -> RecognisedSegment:
    words = [
        RecognisedWord(float(a), float(b), w.word, float(w.probability))
        for w, (a, b) in zip(seg.words or [], word_times)
    ]
    return RecognisedSegment(float(start), float(end), seg.text, float(seg.avg_logprob), float(seg.no_speech_prob), words)
