"""What leaves the system carries no personal number unless the operator turns redaction off:
the store export (CSV/Parquet) and coaching clips — the clip's audio as well as its texts, checked
by transcribing the clip again with the real recogniser."""

from __future__ import annotations

import csv
import json

import numpy as np
import soundfile as sf

from pipelines.coaching.samples import export_samples
from pipelines.results.redaction import find_pii
from pipelines.stages.scoring import score_and_report
from pipelines.stages.analysis import analyse_call
from pipelines.results.store import Store, default_store_url
from qa_rules.records import CallSource
from store_fixtures import build_store
from tests.review_support import copy_store

NUMBER = "13912345678"


def _store_with_a_number(tmp_path, redact: bool = False):
    """A copy of the fixture store where zh_good_stereo's customer also gives a phone number."""
    from qa_rules.records import Conversation, Measures

    built = build_store(tmp_path / "built")
    store = copy_store(built, tmp_path).store
    conversation = Conversation.read(built.out_dir / "zh_good_stereo.conversation.json")
    measures = Measures.read(built.out_dir / "zh_good_stereo.measures.json")
    changed = conversation.model_copy(update={"utterances": [
        u.model_copy(update={"text": u.text + f"我的手机号是{NUMBER}"}) if u.role == "customer" else u
        for u in conversation.utterances
    ]})
    card = score_and_report(changed, measures, tmp_path / "o")
    store.save("zh_good_stereo", "t", "t", "t", changed, measures, card, redact=redact)
    return store


def test_export_is_redacted_by_default(tmp_path):
    store = _store_with_a_number(tmp_path)
    store.export(tmp_path / "redacted", ("csv",))
    text = (tmp_path / "redacted" / "utterances.csv").read_text(encoding="utf-8-sig")
    assert NUMBER not in text and "[电话]" in text
    store.export(tmp_path / "clear", ("csv",), redact=False)
    with (tmp_path / "clear" / "utterances.csv").open(encoding="utf-8-sig") as handle:
        assert any(NUMBER in row["text"] for row in csv.DictReader(handle))


def _transcript(engines, path) -> str:
    samples, rate = sf.read(str(path), always_2d=True, dtype="float32")
    assert rate == 16000
    return "".join(w.text for seg in engines.transcriber.transcribe(samples.mean(axis=1), "zh") for w in seg.words)


def test_coaching_clip_with_a_phone_number_carries_no_number(engines, settings, calls2, tmp_path):
    """D09: the agent asks the customer to write down and then reads out an 11-digit number."""
    out = tmp_path / "run"
    call = CallSource(call_id="D09", path=calls2 / "D09_dictation_ok.flac", agent_id="A1024",
                      started_at="2024-07-12T09:15:00+08:00", channel_map="right")
    analysed = analyse_call(call, settings, engines)
    analysed.write(out)
    conversation, measures = analysed.conversation, analysed.measures
    spoken = [u.text for u in conversation.utterances if find_pii(u.text)]
    assert spoken, "the recogniser should have heard the number in the first place"
    store = Store(default_store_url(out))
    store.register([call])
    card = score_and_report(conversation, measures, out)
    store.save("D09", "t", "t", "t", conversation, measures, card, conversation_path=out / "D09.conversation.json",
               scorecard_path=out / "D09.scorecard.json")
    rule = "info.dictation_prompt"
    clear = export_samples(store, tmp_path / "clear", rule=rule, best=1, worst=1, redact=False, context_s=10)
    safe = export_samples(store, tmp_path / "safe", rule=rule, best=1, worst=1, context_s=10)
    clear_clip, safe_clip = (e.out_dir / e.samples[0].clip for e in (clear, safe))
    # Without redaction the clip holds the number (so the check below is not empty)...
    assert find_pii(_transcript(engines, clear_clip)), "the clip around the evidence should hold the number"
    # ...with it, neither the clip's audio nor any text of the export does.
    heard = _transcript(engines, safe_clip)
    assert not find_pii(heard), heard
    audio, _ = sf.read(str(safe_clip), always_2d=True)
    spectrum = np.abs(np.fft.rfft(audio.mean(axis=1)))
    assert abs(spectrum.argmax() * 16000 / len(audio) - 1000.0) < 2.0  # the beep is the loudest thing in it
    for path in [safe.out_dir / "samples.json", *(safe.out_dir / "excerpts").glob("*.json"), safe.index]:
        assert not find_pii(path.read_text(encoding="utf-8")), path
    assert json.loads((safe.out_dir / "samples.json").read_text(encoding="utf-8"))["samples"][0]["redacted"] is True



def test_console_can_show_transcripts_redacted(tmp_path):
    from tests.review_support import signed_in_client

    store = _store_with_a_number(tmp_path)
    plain = signed_in_client(store, "tok").get("/calls/zh_good_stereo").text
    assert NUMBER in plain
    client = signed_in_client(store, "tok", redact=True)
    page = client.get("/calls/zh_good_stereo").text
    assert NUMBER not in page and "[电话]" in page
    hits = client.get("/search", params={"q": "手机号"}).text
    assert "zh_good_stereo" in hits and NUMBER not in hits
    assert NUMBER in store.engine.connect().exec_driver_sql("SELECT group_concat(text) FROM utterances").scalar()


def test_store_can_keep_only_redacted_text(tmp_path):
    from pipelines.results.search import search

    store = _store_with_a_number(tmp_path, redact=True)
    stored = store.engine.connect().exec_driver_sql(
        "SELECT group_concat(text) FROM utterances WHERE call_id = 'zh_good_stereo'").scalar()
    assert NUMBER not in stored and "[电话]" in stored
    assert search(store.engine, "13912345678") == [] and search(store.engine, "手机号")
