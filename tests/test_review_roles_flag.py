"""A call whose roles were decided with low confidence reaches the review queue flagged
``roles uncertain``, with the reason a reviewer can check."""

from __future__ import annotations

from fastapi.testclient import TestClient

from qa_rules.records import Conversation, Measures
from pipelines.review.app import create_app
from pipelines.review.auth import TOKEN_COOKIE
from pipelines.stages.scoring import score_and_report
from pipelines.results.store import Store, default_store_url
from qa_rules.records import CallSource
from store_fixtures import FIXTURES, SAMPLE_CALLS


def test_uncertain_roles_reach_the_review_queue(tmp_path):
    base = Conversation.read(FIXTURES / "zh_good_stereo.conversation.json")
    measures = Measures.read(FIXTURES / "zh_good_stereo.measures.json")
    speakers = [
        s.model_copy(update={"kind": s.role, "role_confidence": 0.6,
                             "role_reason": f"{s.role} (confidence 0.60, margin 0.5): speaks first at 0.8 s"})
        for s in base.speakers
    ]
    conversation = base.model_copy(update={"speakers": speakers, "source": str(SAMPLE_CALLS / "zh_good_stereo.flac")})
    out = tmp_path / "results"
    store = Store(default_store_url(out))
    store.register([CallSource(call_id=conversation.call_id, path=SAMPLE_CALLS / "zh_good_stereo.flac")])
    conversation.write(out)
    measures.write(out)
    card = score_and_report(conversation, measures, out)
    assert any(f.reason.startswith("roles uncertain") for f in card.flags)
    store.save(conversation.call_id, "t", "t", "t", conversation, measures, card,
               conversation_path=out / f"{conversation.call_id}.conversation.json",
               scorecard_path=out / f"{conversation.call_id}.scorecard.json")
    client = TestClient(create_app(store, "tok"))
    client.cookies.set(TOKEN_COOKIE, "tok")
    html = client.get("/queue").text
    assert 'data-call="zh_good_stereo"' in html and "roles uncertain" in html
