"""The per-call chain as plain functions: audio → conversation → measures → scorecard → files.

Prefect flows and the CLI are thin shells over these.  Scoring reads only the saved conversation
and measures, so a changed rulebook re-scores history without audio or models.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from pipelines.audio import decode_audio
from pipelines.conversation import build_conversation, call_id_for
from pipelines.engines import SpeechEngines
from pipelines.errors import CallError
from pipelines.measures import measure_call
from pipelines.records import Conversation, Measures
from pipelines.report_html import render_scorecard_html
from pipelines.summary import SummaryRow

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CallFiles:
    conversation: Path
    measures: Path
    scorecard: Path | None = None
    html: Path | None = None


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


def load_rulebook_for(language: str, rulebook_path: Path | None):
    import qa_rules

    return qa_rules.load_rulebook(rulebook_path or qa_rules.default_rulebook_path(language))


def score_and_report(
    conversation: Conversation, measures: Measures, out_dir: Path, rulebook_path: Path | None = None, rulebook=None
) -> SummaryRow:
    """Score with the given (or the language's default) rulebook; write JSON and HTML."""
    import qa_rules

    book = rulebook or load_rulebook_for(conversation.language, rulebook_path)
    card = qa_rules.score(conversation, measures, book)
    card.write(out_dir)
    data = card.model_dump(mode="json")
    render_scorecard_html(data, conversation, out_dir)
    return SummaryRow.from_scorecard(data)


def measures_path_for(conversation_path: Path) -> Path:
    name = conversation_path.name.replace(".conversation.json", ".measures.json")
    return conversation_path.with_name(name)


def rescore_file(conversation_path: Path, out_dir: Path, rulebook_path: Path | None = None, rulebook=None) -> SummaryRow:
    """Re-score a saved conversation: reads JSON only (no audio, no model)."""
    conversation_path = Path(conversation_path)
    call = conversation_path.name.replace(".conversation.json", "")
    try:
        conversation = Conversation.read(conversation_path)
    except (OSError, ValueError) as exc:
        raise CallError(call, "score", f"unreadable conversation file ({exc.__class__.__name__})") from exc
    measures_file = measures_path_for(conversation_path)
    if not measures_file.is_file():
        raise CallError(call, "score", f"no measures beside the conversation ({measures_file.name}); "
                                       "run `callqa transcribe` on the audio again")
    measures = Measures.read(measures_file)
    return score_and_report(conversation, measures, out_dir, rulebook_path, rulebook)
