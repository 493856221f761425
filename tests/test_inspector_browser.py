"""The QA inspector's day in a real browser (headless Debian Chromium): work through this month's
sampled queue (why each call is there, filtered by assignee), find every call where a customer
said 投诉 last week and open it at that second, download a coaching clip of a call with a phone
number read out and check that the number is beeped out — and the Chinese rule titles render with
a real CJK font (no missing-glyph boxes)."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from pipelines.results.period import parse_period
from qa_rules.records import Conversation, Measures
from pipelines.review.sampling import Plan, draw
from pipelines.stages.scoring import score_and_report
from qa_rules.records import CallSource
from store_fixtures import build_store
from tests.review_support import CHROMIUM, CHROMIUM_ARGS, live_console, require_chromium

TOKEN = "inspector-token"
FIXTURES2 = Path(__file__).parent / "fixtures" / "calls2"


@pytest.fixture(scope="module")
def day(tmp_path_factory, calls2):
    """A store with the bundled sample calls, D09 (a customer asks for the complaints number, the
    agent reads a phone number out) and a sampling draw for the samples' month."""
    built = build_store(tmp_path_factory.mktemp("inspector"))
    conversation = Conversation.read(FIXTURES2 / "D09_dictation_ok.conversation.json")
    measures = Measures.read(FIXTURES2 / "D09_dictation_ok.measures.json")
    audio = calls2 / "D09_dictation_ok.flac"
    conversation = conversation.model_copy(update={"call_id": "D09", "source": str(audio)})
    measures = measures.model_copy(update={"call_id": "D09"})
    built.store.register([CallSource(call_id="D09", path=audio, agent_id="A1024", team="service",
                                     started_at="2024-07-12T09:15:00+08:00", root=calls2)])
    conversation.write(built.out_dir)
    card = score_and_report(conversation, measures, built.out_dir)
    built.store.save("D09", "t", "t", "t", conversation, measures, card,
                     conversation_path=built.out_dir / "D09.conversation.json", scorecard_path=built.out_dir / "D09.scorecard.json")
    month = min(c.started_at[:7] for c in built.store.calls() if c.started_at and c.call_id != "D09")
    drawn = draw(built.store, Plan(id="t", seed=3, random_per_agent=1), parse_period(month), ["qa1", "qa2"])
    with live_console(built.store, TOKEN) as base:
        yield built, base, drawn


CJK_FAMILIES = ("Noto Sans CJK", "Noto Serif CJK", "WenQuanYi", "Microsoft YaHei", "PingFang", "Hiragino", "Source Han")


def _platform_fonts(page, selector: str) -> list[dict]:
    """The fonts Chromium actually drew the text of ``selector`` with (DevTools protocol): a
    Chinese title drawn without a CJK font would show missing-glyph boxes."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("DOM.enable")
    cdp.send("CSS.enable")
    root = cdp.send("DOM.getDocument", {"depth": -1})["root"]["nodeId"]
    node = cdp.send("DOM.querySelector", {"nodeId": root, "selector": selector})["nodeId"]
    assert node, f"no element {selector}"
    return cdp.send("CSS.getPlatformFontsForNode", {"nodeId": node})["fonts"]


def _player_near(page, t: float) -> None:
    page.wait_for_function(
        "t => { const a = document.getElementById('player'); return a.readyState >= 1 && !a.seeking && Math.abs(a.currentTime - t) <= 0.5; }",
        arg=t, timeout=10_000,
    )


def test_inspector_day_in_chromium(day, tmp_path):
    require_chromium()
    from playwright.sync_api import sync_playwright

    built, base, drawn = day
    mine = {d.call_id: d.reason for d in drawn if d.assignee == "qa1"}
    assert mine and "random" in {d.reason for d in drawn}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(accept_downloads=True)
            page.set_default_timeout(15_000)
            page.goto(f"{base}/queue?token={TOKEN}")
            # 1. this month's sampled queue, mine only, each call saying why it is there
            page.select_option("select[name=assignee]", "qa1")
            page.click("#filters button[type=submit]")
            page.wait_for_url("**assignee=qa1**")
            rows = page.locator("tr.call")
            shown = {rows.nth(i).get_attribute("data-call"): rows.nth(i).locator("td.why").get_attribute("data-why")
                     for i in range(rows.count())}
            assert shown == mine

            # 2. every call where a customer said 投诉 last week, opened at that second
            page.click("nav a[href='/search']")
            page.fill("input[name=q]", "投诉")
            page.select_option("select[name=role]", "customer")
            page.fill("input[name=period]", "2024-07-08..2024-07-14")
            page.click("#search button[type=submit]")
            hits = page.locator("tr.hit")
            assert hits.count() >= 1
            assert {hits.nth(i).get_attribute("data-call") for i in range(hits.count())} == {"D09"}
            t = float(hits.first.get_attribute("data-t"))
            hits.first.locator("a.hit-link").click()
            page.wait_for_url(f"{base}/calls/D09?t=*")
            _player_near(page, t)
            assert "投诉" in page.locator("#transcript .utt.hit").inner_text()

            # 3. a coaching clip of the rule around the number: downloaded, the number beeped out
            rule_row = page.locator('tr.rule[data-rule="info.dictation_prompt"]')
            with page.expect_download() as download:
                rule_row.locator("a.clip").click()
            clip = tmp_path / "clip.wav"
            download.value.save_as(clip)

            # 4. Chinese rule titles render with a CJK font, not missing-glyph boxes
            title = page.locator('tr.rule[data-rule="greeting.standard"] td').nth(1).inner_text()
            assert "标准问候语" in title
            fonts = _platform_fonts(page, 'tr.rule[data-rule="greeting.standard"] td:nth-child(2)')
            page.screenshot(path=str(tmp_path / "call.png"), full_page=False)
            cjk = [f for f in fonts if any(name in f["familyName"] for name in CJK_FAMILIES)]
            assert cjk and sum(f["glyphCount"] for f in cjk) >= 5, f"the title's 5 Chinese characters drawn with {fonts}"
        finally:
            browser.close()
    audio, rate = sf.read(io.BytesIO(clip.read_bytes()), always_2d=True)
    assert rate == 16000 and len(audio) > rate
    from pipelines.results.redaction import pii_time_spans

    conversation = Conversation.read(built.out_dir / "D09.conversation.json")
    spans = pii_time_spans(conversation)
    assert spans, "D09's transcript holds the number read out"
    # The clip starts 3 s before the rule's first evidence; every number spoken inside it is a pure tone.
    from pipelines.review import queries

    view = queries.call_view(built.store, "D09")
    first = next(e.start for r in view.rules if r.rule_id == "info.dictation_prompt" for e in r.evidence if e.start is not None)
    offset = max(0.0, first - 3.0)
    inside = [(a, b) for a, b, _ in spans if offset < a < offset + len(audio) / rate]
    assert inside, "the clip should cover a spoken number"
    for a, b, in inside:
        piece = audio[int((a - offset) * rate): int((b - offset) * rate)].mean(axis=1)
        spectrum = np.abs(np.fft.rfft(piece))
        assert abs(spectrum.argmax() * rate / len(piece) - 1000.0) < 5.0
        assert spectrum.max() ** 2 / (spectrum ** 2).sum() > 0.5, "the number's time holds only the beep"
