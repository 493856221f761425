"""Agent or customer: from the recorder's channel map when there is one, else from what was said.

Content rule: the agent is the speaker who opens with agent phrases (您好…欢迎致电…工号…请问有什么可以
帮您 / "thank you for calling… how can I help").  Phrases are compared by pinyin so that Whisper's
homophone errors (欢迎致电 → 欢迎制电, 工号 → 公号) still count.  With no phrase evidence, whoever speaks
first is taken for the agent (an inbound call is answered by the agent).  Every decision carries
its reason so a reviewer can check it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

AGENT_PHRASES_ZH = [
    "欢迎致电", "工号", "为您服务", "有什么可以帮您", "有什么可以帮你", "很高兴为您服务", "客服中心",
    "请问有什么", "感谢您的来电", "欢迎再次来电",
]
AGENT_PHRASES_EN = [
    "thank you for calling", "thanks for calling", "how can i help", "how may i help", "my name is",
    "how can i assist", "speaking", "customer service", "customer support", "is there anything else",
]
OPENING_WINDOW_S = 30.0


@lru_cache(maxsize=4096)
def pinyin_key(text: str) -> str:
    """Toneless pinyin of the Chinese characters in ``text``, space-separated, for fuzzy matching."""
    from pypinyin import lazy_pinyin

    hanzi = "".join(re.findall(r"[\u3400-\u9fff]", text))
    return " ".join(lazy_pinyin(hanzi)) if hanzi else ""


def phrase_hits(text: str, phrases_zh: list[str], phrases_en: list[str]) -> list[str]:
    hits = []
    key = pinyin_key(text)
    for phrase in phrases_zh:
        pk = pinyin_key(phrase)
        if phrase in text or (pk and f" {pk} " in f" {key} "):
            hits.append(phrase)
    lowered = re.sub(r"[^a-z' ]+", " ", text.lower())
    for phrase in phrases_en:
        if re.search(rf"\b{re.escape(phrase)}\b", lowered):
            hits.append(phrase)
    return hits


@dataclass(frozen=True)
class RoleDecision:
    role: str
    reason: str


def roles_from_channel_map(channel_of: dict[str, int], agent_channel: int) -> dict[str, RoleDecision]:
    names = {0: "left", 1: "right"}
    out = {}
    for speaker, channel in channel_of.items():
        role = "agent" if channel == agent_channel else "customer"
        out[speaker] = RoleDecision(
            role, f"channel map: agent on the {names.get(agent_channel, agent_channel)} channel"
        )
    return out


def roles_from_content(opening_text: dict[str, str], first_start: dict[str, float]) -> dict[str, RoleDecision]:
    """``opening_text``: each speaker's words in the first seconds of the call; ``first_start``: when
    each speaker is first heard."""
    speakers = sorted(first_start, key=first_start.get)
    if not speakers:
        return {}
    hits = {s: phrase_hits(opening_text.get(s, ""), AGENT_PHRASES_ZH, AGENT_PHRASES_EN) for s in speakers}
    ranked = sorted(speakers, key=lambda s: (-len(hits[s]), first_start[s]))
    agent = ranked[0]
    if hits[agent] and (len(ranked) == 1 or len(hits[agent]) > len(hits[ranked[1]])):
        quoted = ", ".join(f"'{h}'" for h in hits[agent][:4])
        agent_reason = f"opens with agent phrases ({quoted})"
    else:
        agent = speakers[0]
        agent_reason = f"speaks first (at {first_start[agent]:.1f} s) and no agent phrases decide otherwise"
    out = {agent: RoleDecision("agent", agent_reason)}
    for s in speakers:
        if s != agent:
            out[s] = RoleDecision("customer", f"not the agent ({agent} {agent_reason})")
    return out
