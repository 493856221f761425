"""``<call_id>.scorecard.html``: what a QA supervisor reads — the call's timeline by speaker, every
rule's verdict with its evidence quotes and times, and an ``<audio>`` player that jumps to the
evidence when it is clicked."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, PackageLoader, select_autoescape

from qa_rules.records import Conversation, Scorecard
from qa_rules.files import call_file, write_text_privately

ROLE_NAMES = {"agent": "坐席 agent", "receiver": "接转坐席 receiving agent", "customer": "客户 customer", "unknown": "?"}


CJK_FONT_STACK = (
    'system-ui, -apple-system, "Segoe UI", "Microsoft YaHei", "微软雅黑", "PingFang SC", "Hiragino Sans GB", '
    '"Noto Sans CJK SC", "Noto Sans SC", "Source Han Sans SC", "WenQuanYi Micro Hei", "WenQuanYi Zen Hei", sans-serif'
)
"""Every page's font stack: Windows (Microsoft YaHei), macOS (PingFang SC) and Linux desktops (Noto
CJK, WenQuanYi) all find a font with the Chinese rule titles before the generic fallback."""


@lru_cache(maxsize=1)
def _env() -> Environment:
    env = Environment(loader=PackageLoader("pipelines.reports", "templates"), autoescape=select_autoescape(["html", "j2"]))
    env.globals.update(fmt_time=fmt_time, cjk_font_stack=CJK_FONT_STACK)
    return env


def fmt_time(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(float(seconds), 60)
    return f"{int(minutes)}:{secs:04.1f}"


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
    html = _env().get_template("scorecard.html.j2").render(
        card=card.model_dump(mode="json"), conversation=conversation, lanes=lanes, marks=marks, audio_src=audio_src,
        duration=max(conversation.duration_s, 1.0), role_names=ROLE_NAMES,
        speaker_roles={s.id: s.speaker_kind for s in conversation.speakers},
    )
    return write_text_privately(path, html)
