"""What the audio half of the chain hands on (:class:`AnalysedCall`), and the check that a call's
file can be read at all — apart from :mod:`pipelines.stages.analysis`, whose decoding, models and
measures (pyannote.core, matplotlib, PyAV: most of a second to import) a batch answered from the
analysis cache never runs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from qa_rules.records import BadAudioError, CallSource, Conversation, Measures, record_json


@dataclass(frozen=True)
class AnalysedCall:
    """What the audio half of the chain produced for one call."""

    conversation: Conversation
    measures: Measures
    stage_spans: dict[str, tuple[float, float]] = field(default_factory=dict)
    """``time.perf_counter()`` at the start and end of each stage (see :data:`pipelines.stages.analysis.STAGES`): the bench's
    timings, and proof of which model calls overlapped when several calls were in flight.  Empty
    when the analysis came from a cache."""

    @property
    def stage_s(self) -> dict[str, float]:
        """Wall seconds per stage."""
        return {stage: end - start for stage, (start, end) in self.stage_spans.items()}

    def write(self, out_dir: Path) -> tuple[str, str]:
        """``<call_id>.conversation.json`` and ``<call_id>.measures.json``, side by side; the two
        texts written (what the call's outcome record is keyed by: :func:`qa_rules.memo.content_key`)."""
        conversation, measures = self.conversation.to_json(), record_json(self.measures)
        self.conversation.write(out_dir, conversation)
        self.measures.write(out_dir, measures)
        return conversation, measures


def readable_audio(call: CallSource) -> Path:
    """The call's file, or :class:`BadAudioError` when it is missing or cannot be read — checked
    before anything hashes or decodes it, so that the reason is the file's, not an ``OSError``."""
    if not call.path.is_file():
        raise BadAudioError(call.call_id, f"file not found: {call.path}")
    if not os.access(call.path, os.R_OK):
        raise BadAudioError(call.call_id, f"file is not readable (permission denied): {call.path}")
    return call.path
