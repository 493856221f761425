"""``<call_id>.scorecard.html``: what a QA supervisor reads — the call's timeline by speaker, every
rule's verdict with its evidence quotes and times, and an ``<audio>`` player that jumps to the
evidence when it is clicked."""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace

from pipelines.reports.html import ROLE_NAMES, environment
from qa_rules.records import Conversation, Scorecard
from qa_rules.files import call_file, write_text_privately

def _attributes(value, keep: frozenset[str] = frozenset({"measures", "title"})):
    """The card's JSON with its objects as namespaces, so the template's ``r.id`` is one attribute
    lookup in C — on a dict Jinja tries the attribute first and fails with an exception, over a
    thousand times a page.  Objects under the ``keep`` keys stay dicts (free-form keys, and what the
    template prints or iterates as a mapping)."""
    if isinstance(value, dict):
        return SimpleNamespace(**{k: v if k in keep else _attributes(v) for k, v in value.items()})
    if isinstance(value, list):
        return [_attributes(v) for v in value]
    return value


def render_scorecard_html(card: Scorecard, conversation: Conversation, out_dir: Path) -> Path:
    """Write the page beside ``<call_id>.scorecard.json``; the audio is linked relative to it.  The
    template reads the card in its JSON form, the fields of the file beside it."""
    path = call_file(out_dir, conversation.call_id, ".scorecard.html")
    source = Path(conversation.source)
    audio_src = os.path.relpath(source.resolve(), out_dir.resolve()) if source.exists() else source.as_posix()
    lanes = []
    for speaker in conversation.speakers:
        lanes.append(
            {
                "label": ROLE_NAMES.get(speaker.speaker_kind, ROLE_NAMES.get(speaker.role, speaker.role)),
                "utterances": [u for u in conversation.utterances if u.speaker == speaker.id],
            }
        )
    marks = [
        {"t": e.start, "title": f"{r.id}: {r.verdict}"} for r in card.rules if r.verdict == "fail" for e in r.evidence
    ]
    html = environment().get_template("scorecard.html.j2").render(
        card=_attributes(card.model_dump(mode="json")), conversation=conversation, lanes=lanes, marks=marks, audio_src=audio_src,
        duration=max(conversation.duration_s, 1.0), role_names=ROLE_NAMES,
        speaker_roles={s.id: s.speaker_kind for s in conversation.speakers},
    )
    return write_text_privately(path, html)
