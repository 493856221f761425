"""``<call_id>.scorecard.html``: what a QA supervisor reads — the call's timeline by speaker, every
rule's verdict with its evidence quotes and times, and an ``<audio>`` player that jumps to the
evidence when it is clicked.

The page's frame is ``templates/scorecard.html.j2``; its three long parts — the timeline (one bar
per utterance), the rules table (one row per rule, one item per piece of evidence) and the
transcript — are written here in Python, each value escaped once with the same ``escape`` Jinja's
autoescape applies (``&<>'"``), numbers printed as ``{{ }}`` prints them (``str``).  A template
loop pays a context lookup, a filter call and an escape for every value of every utterance; the
same HTML built here costs a fraction of it, and the bytes are those the template loops wrote."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from markupsafe import Markup, escape

from pipelines.reports.html import ROLE_NAMES, environment, fmt_time
from qa_rules.records import Conversation, EvidenceItem, RuleResult, Scorecard
from qa_rules.files import call_file, write_text_atomically

try:  # markupsafe's own escaping of a str, without wrapping each result in a Markup (10x cheaper)
    from markupsafe._speedups import _escape_inner
except ImportError:  # pragma: no cover - markupsafe without its C speedups, or a later layout
    _escape_inner = None


def _esc(value) -> str:
    """``escape(value)`` as a plain str: the same five characters replaced as Jinja's autoescape."""
    if _escape_inner is not None and type(value) is str:
        return _escape_inner(value)
    return str(escape(value))


def _timeline(conversation: Conversation, card: Scorecard, duration: float) -> str:
    """One lane per speaker (its label and a bar per utterance), then a red mark per piece of
    evidence of a failed rule; positions are percentages of ``duration``."""
    parts = []
    for index, speaker in enumerate(conversation.speakers):
        top = 26 * index
        label = ROLE_NAMES.get(speaker.speaker_kind, ROLE_NAMES.get(speaker.role, speaker.role))
        parts.append(f'\n <span class="lane-label" style="top: {top + 6}px">{_esc(label)}</span>\n ')
        seg_top = top + 4
        for u in conversation.utterances:
            if u.speaker != speaker.id:
                continue
            start = u.start
            parts.append(
                f'<div class="seg {_esc(u.role)}" title="{"%.1f" % start} s: {_esc(u.text)}" data-t="{start}"\n'
                f'   style="top: {seg_top}px; left: {100 * start / duration}%; '
                f'width: {max(100 * (u.end - start) / duration, 0.3)}%"></div>'
            )
        parts.append("\n")
    parts.append("\n")
    for r in card.rules:
        if r.verdict == "fail":
            title = _esc(f"{r.id}: {r.verdict}")
            for e in r.evidence:
                parts.append(f'<div class="mark" title="{title}" style="left: {100 * e.start / duration}%"></div>')
    return "".join(parts)


def _evidence(e: EvidenceItem, speaker_roles: dict) -> str:
    start, end, speaker, text, measured, expected = (
        e.start, e.end, e.speaker, e.text, e.measured, e.expected)
    until = f"–{fmt_time(end)}" if end is not None else ""
    who = f"<i>{_esc(ROLE_NAMES.get(speaker_roles.get(speaker), speaker))}</i>" if speaker else ""
    quote = f"「{_esc(text)}」" if text else ""
    figures = ""
    if measured is not None or expected:
        figures = "<br><small>"
        if measured is not None:
            figures += f"measured: {_esc(measured)}"
            if expected:
                figures += " · "
        if expected:
            figures += f"expected: {_esc(expected)}"
        figures += "</small>"
    return (f'\n  <li><a class="seek" data-t="{start if start is not None else 0}">▶ {fmt_time(start)}{until}</a>\n'
            f'   {who} {quote}\n   {figures}</li>\n ')


def _rules(rules: list[RuleResult], speaker_roles: dict) -> str:
    """The table's rows: each rule's verdict, title, category, points and evidence."""
    parts = []
    for r in rules:
        rule_id, verdict, title = _esc(r.id), r.verdict, r.title
        fatal = " ☠" if r.fatal and verdict == "fail" else ""
        if "zh" in title:
            name = _esc(title["zh"])
            if "en" in title:
                name += f"<br><small>{_esc(title['en'])}</small>"
        else:  # a card from elsewhere whose rule has one language's title, or none
            name = _esc(title.get("en") or r.id)
        evidence = "".join([_evidence(e, speaker_roles) for e in r.evidence])
        parts.append(
            f'\n<tr class="rule" data-rule="{rule_id}">\n'
            f' <td class="{_esc(verdict)}"><b>{_esc(str(verdict).upper())}</b>{fatal}</td>\n'
            f" <td><b>{rule_id}</b><br>{name}</td>\n"
            f' <td>{_esc(r.category)}</td>\n'
            f' <td>{"%g" % r.points} / {"%g" % r.max_points}</td>\n'
            f' <td><ul class="evidence">{evidence}</ul></td>\n</tr>\n'
        )
    return "".join(parts)


def _transcript(conversation: Conversation) -> str:
    return "".join([
        f'\n<div class="utt {_esc(u.role)}"><a class="seek who" data-t="{u.start}">{fmt_time(u.start)} '
        f"{_esc(ROLE_NAMES.get(u.role, u.role))}</a> {_esc(u.text)}</div>\n"
        for u in conversation.utterances
    ])


@lru_cache(maxsize=64)
def _real_folder(folder: str, cwd: str) -> Path:
    """``Path(folder).resolve()``, once per output folder (and working directory, which a relative
    folder is read from): every page of a batch links its audio relative to the same folder, and
    resolving it walks the path with a system call per part."""
    return Path(folder).resolve()


def render_scorecard_html(card: Scorecard, conversation: Conversation, out_dir: Path) -> Path:
    """Write the page beside ``<call_id>.scorecard.json``; the audio is linked relative to it.

    The page reads the card itself, not a JSON-form copy of it: dumping the card again cost a
    tenth of the page, and its JSON form held the same values (``tests/test_html_pages.py``)."""
    path = call_file(out_dir, conversation.call_id, ".scorecard.html")
    source = Path(conversation.source)
    audio_src = os.path.relpath(source.resolve(), _real_folder(str(out_dir), os.getcwd())) if source.exists() else source.as_posix()
    duration = max(conversation.duration_s, 1.0)
    speaker_roles = {s.id: s.speaker_kind for s in conversation.speakers}
    html = environment().get_template("scorecard.html.j2").render(
        card=card, conversation=conversation, audio_src=audio_src, lanes=conversation.speakers,
        timeline=Markup(_timeline(conversation, card, duration)),
        rules=Markup(_rules(card.rules, speaker_roles)),
        transcript=Markup(_transcript(conversation)),
    )
    return write_text_atomically(path, html)
