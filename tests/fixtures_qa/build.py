"""Hand-made `Conversation` + `Measures` for the qa_rules tests: no audio, no models.

`call([...turns...])` derives what the audio stage would: silences (gaps where nobody speaks),
overlaps (who started while whom was talking), per-utterance rate from the text, word timings
spread evenly over each turn.  Per-turn keyword overrides set loudness, clipping, pitch, rate."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

from bench.shared_data import DATA
from qa_rules.records import Conversation, Measures, ModelsInfo, Overlap, Silence, Speaker, SpeakerTurn, Utterance, UtteranceMeasures, Word

LABELS = DATA / "calls" / "labels.json"
_CJK = re.compile(r"[\u4e00-\u9fff]")


@dataclass
class T:
    """One turn: role, start, end, text, plus optional measure overrides."""

    role: str
    start: float
    end: float
    text: str
    loudness: float = -22.0
    clipping: float = 0.0
    pitch_range: float = 5.0
    rate: float | None = None
    prob: float = 0.9
    extra: dict = field(default_factory=dict)


def _words(t: T) -> list[Word]:
    if _CJK.search(t.text):
        pieces = [c for c in t.text]  # one word per character, punctuation attached to its own slot
    else:
        pieces = [(" " + w) for w in t.text.split()]
    n = max(len(pieces), 1)
    step = (t.end - t.start) / n
    return [Word(start=round(t.start + i * step, 3), end=round(t.start + (i + 1) * step, 3), text=p, prob=t.prob) for i, p in enumerate(pieces)]


def _rate(t: T, voiced: float) -> tuple[float, str]:
    if _CJK.search(t.text):
        return len(_CJK.findall(t.text)) / voiced, "chars_per_s"
    return len(t.text.split()) / voiced * 60.0, "words_per_min"


def call(turns: list[T], call_id: str = "c1", language: str = "zh", duration: float | None = None, min_silence_s: float = 1.0) -> tuple[Conversation, Measures]:
    turns = sorted(turns, key=lambda t: t.start)
    duration = duration or (max(t.end for t in turns) + 1.0 if turns else 10.0)
    spk = {"agent": "A", "customer": "C", "unknown": "U", "receiver": "R"}
    role_of = {"receiver": "agent"}  # a transfer's receiver is an agent of kind receiver
    utts = [Utterance(speaker=spk[t.role], role=role_of.get(t.role, t.role), start=t.start, end=t.end, text=t.text, words=_words(t)) for t in turns]
    ums = []
    for i, t in enumerate(turns):
        voiced = round((t.end - t.start) * 0.92, 3)
        rate, unit = _rate(t, voiced)
        ums.append(UtteranceMeasures(
            index=i, speaker=spk[t.role], role=role_of.get(t.role, t.role), start=t.start, end=t.end, voiced_s=voiced,
            loudness_dbfs=t.loudness, loudness_lufs=t.loudness + 1.0, peak_dbfs=min(t.loudness + 15, 0.0),
            clipping_ratio=t.clipping, pitch_median_hz=200.0, pitch_range_st=t.pitch_range,
            rate=t.rate if t.rate is not None else round(rate, 3), rate_unit=unit, asr_confidence=t.prob,
        ))
    silences, cursor = [], 0.0
    for t in turns:
        if t.start - cursor >= min_silence_s:
            silences.append(Silence(start=cursor, end=t.start, duration=round(t.start - cursor, 3)))
        cursor = max(cursor, t.end)
    overlaps = []
    for i, a in enumerate(turns):
        for b in turns[i + 1:]:
            if b.role != a.role and b.start < a.end and b.start >= a.start:
                end = min(a.end, b.end)
                overlaps.append(Overlap(start=b.start, end=end, duration=round(end - b.start, 3), first=spk[a.role], second=spk[b.role],
                                        first_role=role_of.get(a.role, a.role), second_role=role_of.get(b.role, b.role)))
    talk = {r: round(sum(m.voiced_s for m in ums if m.role == r), 3) for r in ("agent", "customer")}
    total = sum(talk.values())
    conv = Conversation(
        call_id=call_id, source=f"{call_id}.wav", duration_s=duration, language=language, channels=2, speaker_mode="channels",
        speakers=[Speaker(id="A", role="agent", role_reason="test", channel=1, kind="agent"), Speaker(id="C", role="customer", role_reason="test", channel=0, kind="customer")]
        + ([Speaker(id="R", role="agent", role_reason="test", channel=1, kind="receiver")] if any(t.role == "receiver" for t in turns) else []),
        utterances=utts, turns=[SpeakerTurn(speaker=u.speaker, start=u.start, end=u.end) for u in utts],
        models=ModelsInfo(asr="test", diarization=None, device="cpu"),
    )
    meas = Measures(
        call_id=call_id, duration_s=duration, utterances=ums, silences=silences, overlaps=overlaps, talk_time_s=talk,
        agent_talk_ratio=talk["agent"] / total if total else None,
        silence_share=sum(s.duration for s in silences) / duration, min_silence_s=min_silence_s,
    )
    return conv, meas


# Homophone errors Whisper base makes on these calls (design notes), applied to test robustness.
ASR_ERRORS = [("欢迎致电", "欢迎制电"), ("工号", "公号"), ("久等", "就等"), ("为您服务", "位您服务"), ("一零二四", "10 24"), ("星河通信", "新和通讯")]


def garble(text: str) -> str:
    for a, b in ASR_ERRORS:
        text = text.replace(a, b)
    return text.replace("，", ",").replace("？", "?").replace("。", "").replace("！", "!")


def labelled_calls() -> dict:
    return json.loads(LABELS.read_text(encoding="utf-8"))["calls"]


def from_labels(call_id: str, asr_errors: bool = True) -> tuple[tuple[Conversation, Measures], dict]:
    """A constructed call as the pipeline would see it: texts (optionally with homophone errors),
    level +gain per turn (clipping for very loud turns), rate × tempo."""
    c = labelled_calls()[call_id]
    turns = []
    for t in c["turns"]:
        text = garble(t["text"]) if asr_errors else t["text"]
        level = -22.0 + float(t.get("gain_db", 0.0))
        level = min(level, -8.0)
        clip = 0.02 if t.get("gain_db", 0) >= 10 else 0.0
        if c["language"] == "zh":
            rate = 5.0 * float(t.get("tempo", 1.0))  # normal agent ≈ 5 chars/s, fast ≈ 8.5
        else:
            rate = 160.0 * float(t.get("tempo", 1.0))
        turns.append(T(t["role"], t["start"], t["end"], text, loudness=level, clipping=clip, rate=rate))
    return call(turns, call_id=call_id, language=c["language"], duration=c["duration_s"]), c
