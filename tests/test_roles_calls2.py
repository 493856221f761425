"""Roles and speakers on the calls2 dev corpus through the real pipeline: customer-first openings
that name the service, an agent who answers informally, transfers to a third voice (stereo and
mono), 8 kHz mono copies.  Stereo calls are judged on the content decision alone (the channel map
of the manifest is set aside), since that is what a recorder without a map gets."""

from __future__ import annotations

import json

import pytest

from bench.role_eval import content_roles, diarization_der, pooled, pooled_der, score_roles
from conftest import calls2_suite_calls
from qa_rules.records import Conversation


@pytest.fixture(scope="module")
def corpus(calls2, calls2_batch):
    labels = json.loads((calls2 / "labels.json").read_text(encoding="utf-8"))["calls"]
    return {cid: (Conversation.read(calls2_batch / f"{cid}.conversation.json"), labels[cid])
            for cid in sorted(calls2_suite_calls(calls2))}


def test_words_get_the_right_role_and_no_call_is_swapped(corpus):
    scores = []
    for call_id, (conversation, label) in corpus.items():
        decisions = content_roles(conversation) if conversation.speaker_mode == "channels" else None
        scores.append(score_roles(conversation, label, decisions))
    for s in scores:
        print(f"{s.call_id}: {s.right}/{s.words} words right{' SWAPPED' if s.swapped else ''}")
    assert not [s.call_id for s in scores if s.swapped]
    assert pooled(scores) >= 0.98


def test_customer_first_calls_name_the_service_and_still_get_the_customer_right(corpus):
    for call_id in ("D13_customer_first", "D14_en_customer_first", "D15_informal_agent",
                    "D13_customer_first_8k", "D14_en_customer_first_8k", "D15_informal_agent_8k"):
        conversation, _ = corpus[call_id]
        decisions = content_roles(conversation)
        first = min(conversation.utterances, key=lambda u: u.start)
        assert decisions[first.speaker].role == "customer", (call_id, decisions[first.speaker].reason)
        assert decisions[first.speaker].confidence >= 0.75


def test_informal_agent_fails_the_greeting_on_the_right_person(calls2_batch):
    card = json.loads((calls2_batch / "D15_informal_agent.scorecard.json").read_text(encoding="utf-8"))
    greeting = {r["id"]: r for r in card["rules"]}["greeting.standard"]
    assert greeting["verdict"] == "fail"
    assert all("是星河" not in (e["text"] or "") for e in greeting["evidence"])


@pytest.mark.parametrize("call_id", ["D05_transfer_ok", "D05_transfer_ok_mono", "D06_transfer_blind"])
def test_a_transfer_yields_a_receiving_agent(corpus, call_id):
    conversation, label = corpus[call_id]
    receivers = [s for s in conversation.speakers if s.kind == "receiver"]
    assert len(receivers) == 1 and receivers[0].role == "agent", conversation.speakers
    said = " ".join(u.text for u in conversation.utterances if u.speaker == receivers[0].id)
    first_receiver_turn = next(t for t in label["turns"] if t["speaker"] == "receiver")
    assert min(u.start for u in conversation.utterances if u.speaker == receivers[0].id) >= first_receiver_turn["start"] - 1.0
    assert said


def test_mono_diarization_finds_the_voices(corpus):
    mono = {cid: pair for cid, pair in corpus.items() if pair[0].speaker_mode == "diarization"}
    print({cid: round(diarization_der(*pair), 3) for cid, pair in mono.items()})
    assert len(mono) >= 5
    assert pooled_der(mono.values()) <= 0.05
