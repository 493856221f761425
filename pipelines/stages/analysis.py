"""The audio half of the per-call chain, written once: decode → transcribe → find speakers →
assemble the conversation → measure.

:func:`analyse_call` is the only place these stages are chained.  ``callqa transcribe``, the Prefect
flow and the bench all call it, so a setting (the duration limit, a forced language, the channel map)
means the same everywhere.  Scoring (:mod:`pipelines.stages.scoring`) reads only what it returns.
"""

from __future__ import annotations

import logging
import time
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Callable, Iterator, Union

from pipelines.settings import Settings
from pipelines.stages.analysed import AnalysedCall, readable_audio
from pipelines.stages.audio import decode_audio
from pipelines.stages.conversation import assemble_conversation, find_speakers, transcribe_call
from pipelines.stages.engines import SpeechEngines
from pipelines.stages.measures import measure_call
from qa_rules.records import BadAudioError, CallSource

log = logging.getLogger(__name__)

STAGES = ("decode", "transcribe", "speakers", "measure")
"""The stages of :func:`analyse_call` in order, as named in :attr:`AnalysedCall.stage_s`."""

EngineSource = Union[SpeechEngines, Callable[[], SpeechEngines]]
"""Loaded models, or a function that returns them: called only once the audio has decoded, so a
call that is bad input never makes a worker load (or import) a model."""

ModelSlot = Callable[[], AbstractContextManager[object]]
"""Opens the span of one model call (transcription, speaker finding).  The flow passes a Prefect
concurrency limit here, so the limit bounds model calls and nothing else; decoding and measuring
run outside it."""


@contextmanager
def _timed(spans: dict[str, tuple[float, float]], stage: str) -> Iterator[None]:
    start = time.perf_counter()
    yield
    spans[stage] = (start, time.perf_counter())


def analyse_call(
    call: CallSource, settings: Settings, engines: EngineSource, model_slot: ModelSlot = nullcontext,
) -> AnalysedCall:
    """Decode the call once (refusing recordings longer than ``settings.max_duration_s``),
    transcribe it, find who speaks when, assemble the :class:`Conversation` and measure it.

    The language is ``settings.language`` (detected when unset); the agent's stereo channel is the
    call's own channel map, else ``settings.agent_channel``.  Bad input raises
    :class:`~qa_rules.records.CallError` named by ``call.call_id``; nothing is written."""
    spans: dict[str, tuple[float, float]] = {}
    path = readable_audio(call)
    with _timed(spans, "decode"):
        try:
            audio = decode_audio(path, max_duration_s=settings.max_duration_s)
        except BadAudioError as exc:
            raise BadAudioError(call.call_id, exc.reason) from exc
    # a model stage's time starts once it holds its slot, not while it waits for one
    with model_slot(), _timed(spans, "transcribe"):
        loaded = engines if isinstance(engines, SpeechEngines) else engines()
        transcript = transcribe_call(audio, loaded, call.call_id, settings.language)
    with model_slot(), _timed(spans, "speakers"):
        activity = find_speakers(audio, transcript, loaded)
    with _timed(spans, "measure"):
        conversation = assemble_conversation(
            audio, transcript, activity, loaded.device.describe(),
            call.channel_map or settings.agent_channel, call.metadata(),
        )
        measures = measure_call(audio, conversation)
    analysed = AnalysedCall(conversation, measures, spans)
    log.info("call %s: %s", call.call_id, ", ".join(f"{k} {v:.2f} s" for k, v in analysed.stage_s.items()))
    return analysed
