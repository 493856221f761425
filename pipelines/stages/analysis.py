"""The audio half of the per-call chain: decode once → conversation → measures, saved to files.

The CLI (and flows) are thin shells over this and over :mod:`pipelines.stages.scoring`, which reads only
the saved conversation and measures.
"""

from __future__ import annotations

import logging
from pathlib import Path

from pipelines.stages.audio import decode_audio
from pipelines.stages.conversation import build_conversation, call_id_for
from pipelines.stages.engines import SpeechEngines
from pipelines.stages.measures import measure_call
from qa_rules.records import Conversation, Measures

log = logging.getLogger(__name__)


def transcribe_and_measure(
    path: Path, engines: SpeechEngines, out_dir: Path, call_id: str | None = None,
    metadata: dict[str, str] | None = None, agent_channel: str | None = None,
) -> tuple[Conversation, Measures]:
    """Decode once, build the conversation, measure it, and save both beside each other."""
    audio = decode_audio(path)
    conversation = build_conversation(
        audio, engines, call_id=call_id or call_id_for(path), metadata=metadata, agent_channel=agent_channel
    )
    measures = measure_call(audio, conversation)
    conversation.write(out_dir)
    measures.write(out_dir)
    return conversation, measures
