"""Agent or customer: from the recorder's channel map when there is one, else from what each side
does over the whole call.

Content rule.  Agents and customers do different things: an agent greets with the hotline's name,
gives a 工号, offers help, asks for the account or phone number, announces holds, asks "anything
else?" and thanks for the call; a customer asks whether this *is* the service (「是星河通信客服吗？」),
states a problem, gives their own number and thanks for the help.  Each speaker's words over the
whole call are searched for both kinds of cue; a speaker's lean is agent evidence minus customer
evidence, and the speaker who leans furthest towards the agent is the agent.

Three details matter on real calls:

- A hotline name inside a question about the service is customer evidence, not agent evidence: the
  question is found first and its words are not searched again for agent cues.  Likewise "谢谢您的来电"
  counts once, as the agent's thanks, and not again as a customer's 谢谢您.
- Whoever speaks first gets only a small nudge (customers often speak first on real recordings).
- Confidence follows the margin between the agent's lean and the customer's; a close margin flags
  the call ``roles uncertain`` instead of handing the scorecard a confident wrong answer.

Chinese cues are matched on the characters and on toneless pinyin, so Whisper's homophones
(欢迎致电 → 欢迎制电, 工号 → 公号) still count.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, Sequence

Side = Literal["agent", "customer"]

ROLE_UNCERTAIN_BELOW = 0.75
"""Confidence under this (the two sides' evidence is close) flags the call ``roles uncertain``."""
FIRST_SPEAKER_NUDGE = 0.5
"""Agent evidence for speaking first: inbound calls are answered by the agent, but customers often
speak first on real recordings, so it only breaks ties."""
TRANSFER_PHRASES_ZH = ("转接", "转到", "帮您接通", "为您接通", "转给", "转过去")
TRANSFER_PATTERN_EN = r"\b(transfer(ring)? you|put you through|connect you (to|with))\b"
TRANSFER_PATTERN_ZH = r"(帮|幫|为|為|给|給)(您|你)(转|轉)(?!账|帳|帐|发|發|达|達|交|告|变|變|换|換)"
"""为您转… / 帮您转…: the agent's side of a transfer whatever Whisper made of the word after 转
(转机 for 转接 was measured on a dev call), as the default rulebook's transfer situation reads it —
except 转账, 转发, 转达, 转交, 转告, 转变, 转换, which move money, messages or things, not the call."""


@dataclass(frozen=True)
class Cue:
    """One kind of behaviour that marks a side: literal Chinese phrases (matched by sound too) and
    regular expressions (on the text, case-insensitive)."""

    side: Side
    name: str
    weight: float
    phrases: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()


# Searched in this order; a span claimed by one cue is not searched again by a later one.
CUES: tuple[Cue, ...] = (
    Cue("customer", "asks whether this is the service", 3.0, patterns=(
        r"是(不是)?.{0,16}(客服|热线|服务中心|呼叫中心|服务台|营业厅|公司|银行)(中心|热线|电话)?(吗|嘛|么|吧)",
        r"(请问)?(这里|这边|你们|您这)是(不是)?.{0,16}(吗|嘛|么)",
        r"\b(is (this|that|it)|am i (speaking|talking) (to|with)|have i (reached|got)|did i reach)\b[^.?!]{0,50}"
        r"\b(service|support|help ?(line|desk)|hotline|company|bank|team|department)\b",
    )),
    Cue("agent", "greets with the hotline's name", 2.0,
        phrases=("欢迎致电", "欢迎来电", "欢迎您致电", "欢迎您来电"),
        patterns=(r"\b(thank(s| you) for calling|welcome to)\b",)),
    Cue("agent", "gives a staff number", 2.0, phrases=("工号", "为您服务", "很高兴为您服务"),
        patterns=(r"(工号|我是)\s*[0-9一二三四五六七八九零〇幺两]{3,}号?",
                  r"\b(this is \w+(,| from| speaking)|my name is \w+|agent (number )?\d{2,})")),
    Cue("agent", "offers help", 2.0,
        phrases=("有什么可以帮您", "有什么可以帮你", "有什么可以帮到您", "有什么能帮您", "请问有什么需要"),
        patterns=(r"\b(how (can|may|could) i (help|assist)|what can i do for you)\b",)),
    Cue("agent", "asks for the customer's number", 1.5, patterns=(
        r"(请问|请提供|麻烦|报一下|告诉我|提供一下)?您的?.{0,4}(手机号|电话号码|号码|订单号|账号|身份证号?|卡号|识别号)(码)?(是)?多少",
        r"(请|麻烦)(您)?(提供|报|说)一下.{0,6}(手机号|电话号码|号码|订单号|账号|身份证|卡号|识别号)",
        r"^.{0,6}(手机号|电话号码|订单号|账号|卡号)多少",
        r"\b(can|could|may) i (have|get|take) (your|the) [\w ]{0,20}(number|account|order|name)\b",
        r"\bwhat('s| is) (your|the) [\w ]{0,20}(number|account)\b",
    )),
    Cue("agent", "announces a hold or a check", 1.5,
        phrases=("请稍等", "请您稍等", "请稍候", "请您稍候", "帮您查询", "帮您查一下", "为您查询", "帮您核实", "让您久等了", "久等了"),
        patterns=(r"\b(please hold|hold on|one moment|bear with me|let me (check|look|see)|"
                  r"thank(s| you) for (holding|waiting|your patience))\b",)),
    Cue("agent", "transfers the call", 1.5, phrases=("为您转接", "帮您转接", "给您转接", "帮您接通", "为您接通"),
        patterns=(TRANSFER_PATTERN_EN,)),
    Cue("agent", "asks whether there is anything else", 1.5,
        phrases=("还有什么问题", "还有其他问题", "还有别的问题", "还有什么可以帮您", "还有其他需要", "还有什么需要"),
        patterns=(r"还有(其他|别的|什么)(问题|需要|业务)", r"\banything else\b")),
    Cue("agent", "thanks for the call", 1.5,
        phrases=("感谢您的来电", "感谢来电", "谢谢您的来电", "欢迎再次来电", "欢迎您再次来电", "感谢您的耐心"),
        patterns=(r"\b(thank(s| you) for (calling|your call|contacting)|have a (nice|good|great) (day|evening))\b",)),
    Cue("agent", "answers thanks", 1.0, phrases=("不客气", "不用谢", "不用客气"),
        patterns=(r"\b(you'?re welcome|my pleasure|no problem)\b",)),
    Cue("agent", "serves the customer (您说, 为您…)", 1.0,
        patterns=(r"^[^。？！?!,，]{0,4}您说", r"请讲", r"(为|帮|给)您(办理|处理|查|转|提交|登记|记录|解决|开具|安排)",
                  r"\b(i('ll| will| can) (help|check|send|arrange|process|escalate)|i have (sent|processed|arranged))\b")),
    Cue("customer", "states a problem or a request", 2.0, patterns=(
        r"我(想|要|需要)(问|咨询|查|办|了解|开|退|投诉|改|取消|注销|开通|申请)",
        r"我的.{0,10}(怎么|为什么|没有|没|不能|不了|坏了|扣|停机|欠费|到不了|丢)",
        r"(为什么|怎么)我的",
        r"\bi('d| would)? (want|like|need) to\b",
        r"\bi (have|had|got) (a|an|some) (problem|question|issue|complaint)\b",
        r"\bmy [\w ]{0,20}(is|isn't|doesn't|won't|never|was|has|hasn't|didn't)\b",
        r"\bi'?m calling (about|because|to)\b",
    )),
    Cue("customer", "gives their own details", 1.5, patterns=(
        r"我(的)?(手机号|电话号码|号码|订单号|账号|身份证号?|卡号)(码)?(是)",
        r"我姓.", r"\bmy [\w ]{0,15}(number|account|name) is\b",
        r"\bthe (order|account|phone|card) number is\b",
    )),
    Cue("customer", "thanks for the help", 1.5, phrases=("麻烦你了", "麻烦您了", "辛苦了", "谢谢你"),
        patterns=(r"(好的|好|行|嗯)[,，]?\s*谢谢", r"^没有了?[,，]?\s*谢谢",
                  r"\b(thanks (a lot|so much|for (your|the) help)|thank you (so|very) much)\b")),
)


@dataclass(frozen=True)
class CueHit:
    side: Side
    cue: str
    weight: float
    text: str
    start: float


@dataclass
class SpeakerEvidence:
    """Everything found for one speaker."""

    speaker: str
    first_start: float
    hits: list[CueHit] = field(default_factory=list)
    first: bool = False

    def score(self, side: Side) -> float:
        """Each kind of cue counts fully once, then half for up to two repeats: repeating the same
        phrase is weaker evidence than doing several different agent things."""
        total = 0.0
        counts: dict[str, int] = {}
        for hit in self.hits:
            if hit.side != side:
                continue
            n = counts.get(hit.cue, 0)
            if n < 3:
                total += hit.weight if n == 0 else hit.weight / 2
            counts[hit.cue] = n + 1
        if side == "agent" and self.first:
            total += FIRST_SPEAKER_NUDGE
        return total

    @property
    def lean(self) -> float:
        """Positive: acts like an agent; negative: like a customer."""
        return self.score("agent") - self.score("customer")

    def top(self, side: Side, n: int = 3) -> list[str]:
        seen: dict[str, CueHit] = {}
        for hit in sorted((h for h in self.hits if h.side == side), key=lambda h: (-h.weight, h.start)):
            seen.setdefault(hit.cue, hit)
        return [f"{h.cue}: 「{h.text}」 at {h.start:.1f} s" for h in list(seen.values())[:n]]


@dataclass(frozen=True)
class RoleDecision:
    role: str
    reason: str
    kind: str | None = None
    confidence: float | None = None
    evidence: tuple[str, ...] = ()


@dataclass(frozen=True)
class SpokenRun:
    """One speaker's stretch of words, as the role decision sees it."""

    speaker: str
    start: float
    text: str
    end: float | None = None


@lru_cache(maxsize=4096)
def pinyin_key(text: str) -> str:
    """Toneless pinyin of the Chinese characters in ``text``, space-separated, for fuzzy matching."""
    from pypinyin import lazy_pinyin

    hanzi = "".join(re.findall(r"[\u3400-\u9fff]", text))
    return " ".join(lazy_pinyin(hanzi)) if hanzi else ""


@lru_cache(maxsize=1)
def _compiled() -> tuple[tuple[Cue, tuple[re.Pattern[str], ...], tuple[tuple[str, str], ...]], ...]:
    return tuple(
        (cue, tuple(re.compile(p, re.IGNORECASE) for p in cue.patterns), tuple((p, pinyin_key(p)) for p in cue.phrases))
        for cue in CUES
    )


def _hanzi_spans(text: str) -> list[int]:
    return [i for i, ch in enumerate(text) if "\u3400" <= ch <= "\u9fff"]


def find_cues(text: str) -> list[tuple[Cue, str]]:
    """Cues in one stretch of speech, in :data:`CUES` order; a matched span is masked so that no
    later cue reads the same words (a service question's hotline name is not an agent greeting)."""
    masked = text
    found: list[tuple[Cue, str]] = []
    for cue, patterns, phrases in _compiled():
        spans: list[tuple[int, int]] = []
        for pattern in patterns:
            spans += [m.span() for m in pattern.finditer(masked) if m.end() > m.start()]
        for phrase, key in phrases:
            start = masked.find(phrase)
            if start >= 0:
                spans.append((start, start + len(phrase)))
            elif key:
                spans += _pinyin_spans(masked, key, len(phrase))
        for a, b in sorted(set(spans)):
            if "\0" in masked[a:b]:
                continue
            found.append((cue, text[a:b]))
            masked = masked[:a] + "\0" * (b - a) + masked[b:]
    return found


def _pinyin_spans(text: str, key: str, n_chars: int) -> list[tuple[int, int]]:
    """Where a phrase of ``n_chars`` Chinese characters is said by sound (same toneless pinyin)."""
    positions = _hanzi_spans(text)
    if len(positions) < n_chars:
        return []
    syllables = pinyin_key("".join(text[i] for i in positions)).split(" ")
    if len(syllables) != len(positions):
        return []
    wanted = key.split(" ")
    out = []
    for i in range(len(syllables) - n_chars + 1):
        if syllables[i : i + n_chars] == wanted:
            out.append((positions[i], positions[i + n_chars - 1] + 1))
    return out


def gather_evidence(runs: Sequence[SpokenRun], heard_at: dict[str, float] | None = None) -> dict[str, SpeakerEvidence]:
    """Cue hits per speaker over the whole call.  ``heard_at``: when speakers who may have no
    recognised words are first heard (voice activity), so that they still get a decision."""
    first_start: dict[str, float] = dict(heard_at or {})
    for run in runs:
        first_start[run.speaker] = min(first_start.get(run.speaker, run.start), run.start)
    evidence = {s: SpeakerEvidence(s, t) for s, t in first_start.items()}
    if evidence:
        evidence[min(first_start, key=first_start.get)].first = True
    for run in runs:
        for cue, quoted in find_cues(run.text):
            evidence[run.speaker].hits.append(CueHit(cue.side, cue.name, cue.weight, quoted, run.start))
    return evidence


def confidence_of(margin: float) -> float:
    """0.5 when the two sides' evidence is equal, towards 1 as the margin grows (one strong cue ≈ 0.8)."""
    return round(1.0 - 0.5 * math.exp(-max(margin, 0.0) / 2.0), 3)


def transfer_time(runs: Sequence[SpokenRun], speaker: str) -> float | None:
    """When ``speaker`` starts the stretch of speech in which they first say a transfer phrase
    (转接 / "transfer you"), else ``None``."""
    run = transfer_run(runs, speaker)
    return None if run is None else run.start


def transfer_run(runs: Sequence[SpokenRun], speaker: str) -> SpokenRun | None:
    """The first stretch of ``speaker``'s speech with a transfer phrase, else ``None``."""
    pattern = re.compile(TRANSFER_PATTERN_EN, re.IGNORECASE)
    pattern_zh = re.compile(TRANSFER_PATTERN_ZH)
    keys = [pinyin_key(p) for p in TRANSFER_PHRASES_ZH]
    for run in sorted(runs, key=lambda r: r.start):
        if run.speaker != speaker:
            continue
        key = f" {pinyin_key(run.text)} "
        if (any(p in run.text for p in TRANSFER_PHRASES_ZH) or any(f" {k} " in key for k in keys)
                or pattern.search(run.text) or pattern_zh.search(run.text)):
            return run
    return None


def roles_from_content(runs: Sequence[SpokenRun], heard_at: dict[str, float] | None = None) -> dict[str, RoleDecision]:
    """Agent, customer and — on a transferred call with three voices — the receiver, each with a
    confidence and the evidence behind it."""
    evidence = gather_evidence(runs, heard_at)
    if not evidence:
        return {}
    leans = {s: e.lean for s, e in evidence.items()}
    order = sorted(evidence, key=lambda s: (-leans[s], evidence[s].first_start))
    agent = order[0]
    if len(order) == 1:
        e = evidence[agent]
        side: Side = "agent" if e.lean >= 0 else "customer"
        conf = confidence_of(abs(e.lean))
        why = e.top(side) or ["no agent or customer phrases; the only voice"]
        return {agent: RoleDecision(side, f"only voice; {side} evidence: " + "; ".join(why), side, conf, tuple(why))}
    customer = min(order[1:], key=lambda s: (leans[s], -_talk_share(s, runs)))
    margin = leans[agent] - leans[customer]
    conf = confidence_of(margin)
    out = {
        agent: _decision("agent", "agent", evidence[agent], conf, margin),
        customer: _decision("customer", "customer", evidence[customer], conf, margin),
    }
    handover = transfer_time(runs, agent)
    for s in order[1:]:
        if s == customer:
            continue
        e = evidence[s]
        agentish = e.lean > (leans[agent] + leans[customer]) / 2 or (e.score("agent") > 0 and e.lean > leans[customer])
        if agentish and handover is not None and e.first_start >= handover:
            out[s] = _decision("agent", "receiver", e, conf, margin,
                               note=f"joins after the transfer at {handover:.1f} s")
        elif agentish:
            out[s] = _decision("agent", "agent", e, conf, margin, note="a second agent-side voice")
        else:
            out[s] = _decision("customer", "customer", e, conf, margin, note="a second customer-side voice")
    return out


def _talk_share(speaker: str, runs: Sequence[SpokenRun]) -> int:
    return sum(len(r.text) for r in runs if r.speaker == speaker)


def _decision(role: str, kind: str, e: SpeakerEvidence, conf: float, margin: float,
              note: str | None = None) -> RoleDecision:
    side: Side = "agent" if role == "agent" else "customer"
    items = e.top(side)
    if e.first and side == "agent":
        items.append(f"speaks first at {e.first_start:.1f} s")
    if not items:
        items = ["no phrases of either side: the other voice leans further the other way"]
    label = "receiving agent" if kind == "receiver" else role
    reason = f"{label} (confidence {conf:.2f}, margin {margin:.1f}): " + "; ".join(items[:3])
    if note:
        reason += f"; {note}"
    return RoleDecision(role, reason, kind, conf, tuple(items[:3]))


def roles_from_channel_map(channel_of: dict[str, int], agent_channel: int,
                           receivers: Sequence[str] = ()) -> dict[str, RoleDecision]:
    """The recorder's channel map decides: every voice on the agent's channel is an agent (a
    transfer's receiver included), every other voice the customer."""
    names = {0: "left", 1: "right"}
    out = {}
    for speaker, channel in channel_of.items():
        role = "agent" if channel == agent_channel else "customer"
        kind = "receiver" if speaker in receivers else role
        why = f"channel map: agent on the {names.get(agent_channel, agent_channel)} channel"
        if kind == "receiver":
            why += "; a second voice on the agent channel after the transfer"
        out[speaker] = RoleDecision(role, why, kind, 1.0, (why,))
    return out
