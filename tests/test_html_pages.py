"""One page environment and one stylesheet for every HTML page (scorecard, summary, console,
coaching): template names are unique across the three template folders (the shared loader finds a
page by its name alone), every page carries ``page.css``, and the CJK font stack reaches the browser
as CSS (quotes, not HTML entities)."""

from __future__ import annotations

from collections import Counter

import pytest
from jinja2 import UndefinedError

from pipelines.reports.html import CJK_FONT_STACK, TEMPLATE_FOLDERS, environment, strict_environment
from pipelines.review.web import render


def test_template_names_are_unique_across_the_apps():
    names = Counter(p.name for folder in TEMPLATE_FOLDERS for p in folder.iterdir() if p.is_file())
    assert [name for name, count in names.items() if count > 1] == []


def test_every_page_carries_the_one_stylesheet():
    """Pages are whole documents (or extend one) and take their style from page.css alone: no page
    declares the font stack or the verdict colours again."""
    for folder in TEMPLATE_FOLDERS:
        for page in folder.glob("*.j2"):
            text = page.read_text(encoding="utf-8")
            assert "font-family" not in text and "#1a7f37" not in text, f"{page.name} styles what page.css does"
            if text.lstrip().startswith("<!doctype"):
                assert '{% include "page.css" %}' in text or '{% include "_style.html.j2" %}' in text, page.name


def test_the_font_stack_is_css_not_html_escaped_and_values_stay_escaped():
    html = render("error.html.j2", status=404, message="<script>alert(1)</script>")
    assert f"font-family: {CJK_FONT_STACK};" in html
    assert "&#34;" not in html.split("</style>")[0]
    assert "<script>alert(1)</script>" not in html and "&lt;script&gt;" in html


def test_the_console_is_strict_and_the_file_pages_are_not():
    """Same loader, filters and globals; only the console turns a missing value into an error."""
    strict, lenient = strict_environment(), environment()
    assert strict.filters["pct"] is lenient.filters["pct"] and strict.globals["fmt_time"] is lenient.globals["fmt_time"]
    assert lenient.from_string("[{{ card.missing }}]").render(card={}) == "[]"
    with pytest.raises(UndefinedError, match="missing"):
        strict.from_string("[{{ card.missing }}]").render(card={})


HOSTILE = ['<script>alert("x")</script>', "a & b 'q'", "", "中文 <b>", "{{ x }}", "%s"]


def test_the_scorecard_page_escapes_as_jinja_does(tmp_path):
    """The scorecard's long parts are written in Python (``scorecard_html``): each value escaped
    exactly as ``{{ }}`` escapes it, and a transcript, a rule title, evidence or a call id holding
    markup reaches the page as text."""
    from pathlib import Path

    from markupsafe import escape

    import qa_rules
    from pipelines.reports.scorecard_html import _esc, render_scorecard_html
    from pipelines.stages.scoring import load_rulebook_for
    from qa_rules.records import Conversation, Measures, Scorecard

    for value in HOSTILE + [None, 1.5, 0.0, {"en": "<x>"}]:
        assert _esc(value) == str(escape(value))
    saved = Path(__file__).parent / "fixtures" / "calls"
    conversation = Conversation.read(saved / "zh_good_stereo.conversation.json")
    measures = Measures.read(saved / "zh_good_stereo.measures.json")
    card = qa_rules.score(conversation, measures, load_rulebook_for("zh", None)).model_dump(mode="json")
    evil = HOSTILE[0]
    conversation = conversation.model_copy(update={"utterances": [
        u.model_copy(update={"text": evil}) for u in conversation.utterances]})
    card["rules"][0]["title"] = {"zh": evil, "en": evil}
    card["rules"][0]["category"] = evil
    card["rules"][0]["evidence"] = [{"start": 1.0, "end": 2.0, "speaker": evil, "text": evil, "measured": evil,
                                     "expected": evil}]
    card["rules"][0]["verdict"] = "fail"
    html = render_scorecard_html(Scorecard.model_validate(card), conversation, tmp_path).read_text(encoding="utf-8")
    assert evil not in html
    escaped = str(escape(evil))
    assert html.count(escaped) >= 2 * len(conversation.utterances) + 6


def test_the_scorecard_page_shows_the_values_the_scorecard_file_holds(tmp_path):
    """The page is built from the card itself, the file from its JSON form: each rule's row on the
    page carries the verdict, points and evidence times of the file beside it, including a rule
    with only an English title, evidence with no speaker or text, and a call not scorable."""
    import json
    import re
    from pathlib import Path

    import qa_rules
    from pipelines.reports.html import fmt_time
    from pipelines.reports.scorecard_html import render_scorecard_html
    from pipelines.stages.scoring import load_rulebook_for
    from qa_rules.records import Conversation, Measures, Scorecard

    saved = Path(__file__).parent / "fixtures" / "calls"
    conversation = Conversation.read(saved / "zh_unannounced_hold.conversation.json")
    measures = Measures.read(saved / "zh_unannounced_hold.measures.json")
    data = qa_rules.score(conversation, measures, load_rulebook_for("zh", None)).model_dump()
    data["rules"][1]["title"] = {"en": "English only"}
    data["rules"][0]["evidence"] = [{"start": 61.25, "end": 62.5, "speaker": None, "text": None,
                                     "measured": 3, "expected": None}]
    data.update(scorable=False, not_scorable_reason="no agent speech")
    card = Scorecard.model_validate(data)
    card.write(tmp_path)
    page = render_scorecard_html(card, conversation, tmp_path).read_text(encoding="utf-8")
    held = json.loads((tmp_path / f"{conversation.call_id}.scorecard.json").read_text(encoding="utf-8"))

    rows = dict(re.findall(r'<tr class="rule" data-rule="([^"]+)">(.*?)</tr>', page, re.S))
    assert list(rows) == [r["id"] for r in held["rules"]]
    for rule in held["rules"]:
        row = rows[rule["id"]]
        assert f'<b>{rule["verdict"].upper()}</b>' in row
        assert f'{rule["points"]:g} / {rule["max_points"]:g}' in row
        for item in rule["evidence"]:
            assert f"▶ {fmt_time(item['start'])}" in row
    assert "<br>English only</td>" in rows[held["rules"][1]["id"]]
    assert "measured: 3.0</small>" in rows[held["rules"][0]["id"]]
    assert "not scorable: no agent speech" in page
    assert f'{held["percent"]:.0f}%' in page
