"""Scoring: run every rule of a rulebook on one call and total the points.

Pure function of (conversation, measures, rulebook): no audio, no models, so re-scoring a
stored call with an edited rulebook is instant."""

from __future__ import annotations


from qa_rules.records import Conversation, Measures

from .callstats import call_figures
from .context import CallContext, Outcome
from .matching import clean
from .memo import KnownOutcomes
from .operators import OPERATORS
from .rulebook import CATEGORIES, Condition, Rule, Rulebook
from .records import EvidenceItem, Flag, RuleResult, RulebookRef, Scorecard, SituationResult, category_verdict


def _applies(ctx: CallContext, cond: Condition | None) -> str | None:
    """None when the rule applies, else the reason it does not."""
    if cond is None:
        return None
    duration = ctx.conversation.duration_s
    if cond.min_duration_s is not None and duration < cond.min_duration_s:
        return f"call shorter than {cond.min_duration_s:g} s"
    if cond.max_duration_s is not None and duration > cond.max_duration_s:
        return f"call longer than {cond.max_duration_s:g} s"
    if cond.conversation is not None and ctx.is_conversation != cond.conversation:
        if cond.conversation:
            happened = [s.id for s in ctx.rulebook.situations if s.no_conversation and ctx.situation(s.id)] if ctx.rulebook else []
            return f"not a conversation ({', '.join(happened)})"
        return "the call is a conversation"
    if cond.speaker_mode is not None and ctx.conversation.speaker_mode != cond.speaker_mode:
        return f"speaker mode is not {cond.speaker_mode}"
    for role in cond.has_roles or []:
        if not ctx.indices(role):
            return f"no {role} speech"
    if cond.said:
        from .spec import PhraseSearch

        search = PhraseSearch(phrases=cond.said)
        idx = ctx.indices(cond.said_by)
        if not any(ctx.find(e, idx, search) for e in cond.said):
            return "condition phrases not said"
    return None


def run_rule(ctx: CallContext, rule: Rule) -> Outcome:
    """One rule → outcome; N/A when its condition fails, when its situation did not occur, or
    when there is no agent to judge.  A situational rule's operator sees the occurrences."""
    reason = _applies(ctx, rule.applies_when)
    if reason is not None:
        return Outcome("na", note=reason)
    if rule.speaker != "any" and not ctx.indices(rule.speaker) and not ctx.has_roles:
        return Outcome("na", note="speaker roles unknown")
    op = OPERATORS[rule.operator]
    if rule.situation is None:
        return op.fn(ctx, rule.speaker, rule.parsed_params)
    if ctx.rulebook is None:
        raise ValueError(f"rule {rule.id!r} judges situation {rule.situation!r}: build the CallContext with its rulebook")
    occurrences = ctx.situation(rule.situation)
    if not occurrences:
        return Outcome("na", note=f"situation {rule.situation!r} did not occur")
    return op.fn(ctx.focus(occurrences), rule.speaker, rule.parsed_params)


def _asr_confidence(conversation: Conversation) -> float | None:
    probs = [w.prob for u in conversation.utterances for w in u.words]
    return sum(probs) / len(probs) if probs else None


def _uncertain_roles(conversation: Conversation, threshold: float) -> str | None:
    """Why the agent/customer decision should be checked by a person, or ``None``."""
    speakers = [s for s in conversation.speakers if s.role in ("agent", "customer")]
    doubtful = [s for s in speakers if s.role_confidence is not None and s.role_confidence < threshold]
    if doubtful:
        s = min(doubtful, key=lambda s: s.role_confidence)
        return f"{s.id} taken for the {s.role} with confidence {s.role_confidence:.2f} < {threshold:g} ({s.role_reason})"
    if conversation.utterances and not any(s.role == "agent" for s in speakers):
        return "no speaker was recognised as the agent"
    return None


_TITLES: dict[int, tuple[object, dict[str, str]]] = {}


def _title_dict(title) -> dict[str, str]:
    """A rule's or situation's title as the scorecard holds it, dumped once per process (the
    scorecard validates — copies — the dict it is given)."""
    held = _TITLES.get(id(title))
    if held is None or held[0] is not title:
        if len(_TITLES) > 10_000:  # a long-lived process that loads many rulebooks
            _TITLES.clear()
        held = _TITLES[id(title)] = (title, title.model_dump())
    return held[1]


def score(conversation: Conversation, measures: Measures, rulebook: Rulebook, known: KnownOutcomes | None = None) -> Scorecard:
    """Score one call: section weight × rule points for each passed rule over the applicable
    maximum; a fatal failure fails the call whatever the percentage.

    With ``known`` (what an earlier scoring of this very conversation and measures found, by
    fingerprint: :mod:`qa_rules.memo`), a rule or situation whose fingerprint is known is not judged
    again; what is judged afresh is added to ``known``.  The card is the same either way."""
    prints = rulebook.fingerprints if known is not None else None
    ctx = CallContext(conversation, measures, rulebook, known=known)
    results: list[RuleResult] = []
    total = maximum = 0.0
    fatal: list[str] = []
    flags: list[Flag] = []
    by_category: dict[str, list[str]] = {}
    for place, (section, rule) in enumerate(rulebook.rules):
        if prints is None:
            outcome = run_rule(ctx, rule)
        else:
            outcome = known.rule(prints.rules[place], lambda: run_rule(ctx, rule))
        stake = 0.0 if outcome.verdict == "na" else rule.points * section.weight
        earned = stake if outcome.verdict == "pass" else 0.0
        total += earned
        maximum += stake
        if outcome.verdict == "fail" and rule.fatal:
            fatal.append(rule.id)
            flags.append(Flag(reason=f"fatal rule failed: {rule.title.en}", rule_id=rule.id))
        by_category.setdefault(rule.category, []).append(outcome.verdict)
        results.append(
            RuleResult(
                id=rule.id,
                title=_title_dict(rule.title),
                category=rule.category,
                verdict=outcome.verdict,
                points=round(earned, 3),
                max_points=round(stake, 3),
                fatal=rule.fatal,
                source=rule.source,
                note=outcome.note,
                evidence=list(outcome.evidence),
            )
        )
    percent = 100.0 * total / maximum if maximum > 0 else 100.0
    if percent < rulebook.pass_mark:
        flags.append(Flag(reason=f"low score: {percent:.1f} % < pass mark {rulebook.pass_mark:g} %"))
    confidence = _asr_confidence(conversation)
    if confidence is not None and confidence < rulebook.low_confidence:
        flags.append(Flag(reason=f"low ASR confidence: mean word probability {confidence:.2f} < {rulebook.low_confidence:g}"))
    uncertain = _uncertain_roles(conversation, rulebook.min_role_confidence)
    if uncertain:
        flags.append(Flag(reason=f"roles uncertain: {uncertain}"))
    customer_text = clean("".join(u.text for u in conversation.utterances if u.role != "agent"))
    heard = [w for w in rulebook.complaint_words if clean(w) in customer_text]
    if heard:
        flags.append(Flag(reason=f"customer complaint words: {', '.join(heard)}"))
    categories = {c: category_verdict(by_category.get(c, [])) for c in CATEGORIES}
    situations = [
        SituationResult(
            id=s.id, title=_title_dict(s.title), occurred=bool(occ := ctx.situation(s.id)),
            evidence=[EvidenceItem(start=o.start, end=o.end, speaker=o.speaker, text=o.text, measured=o.value, expected=o.what) for o in occ],
        )
        for s in rulebook.situations
    ]
    card = Scorecard(
        call_id=conversation.call_id,
        rulebook=RulebookRef(id=rulebook.id, version=rulebook.version),
        score=round(total, 3),
        max_score=round(maximum, 3),
        percent=round(percent, 2),
        passed=percent >= rulebook.pass_mark and not fatal,
        pass_mark=rulebook.pass_mark,
        fatal_failures=fatal,
        flags=flags,
        rules=results,
        categories=categories,
        asr_confidence=round(confidence, 3) if confidence is not None else None,
        situations=situations,
        measures=call_figures(conversation, measures, hold_min_wait_s=rulebook.hold_min_wait_s),
    )
    return _guard_against_false_pass(card, conversation)


def _guard_against_false_pass(card: Scorecard, conversation: Conversation) -> Scorecard:
    """A call nobody can judge is "not scorable", never "passed": no agent speech (a tone, a dead
    line, silence on the agent's side) or no point at stake (every rule N/A) would otherwise score
    0/0 = 100 %.  Audio that decoded only in part is flagged, so a supervisor knows the verdicts
    rest on part of the call."""
    flags = list(card.flags)
    if conversation.audio_damage:
        flags.append(Flag(reason=f"audio damaged: {conversation.audio_damage}"))
    reason = None
    if not any(u.role == "agent" and u.text.strip() for u in conversation.utterances):
        reason = "no agent speech recognised" + ("" if conversation.utterances else " (no speech at all)")
    elif card.max_score <= 0:
        reason = "no rule applied to this call (0 scorable points)"
    if reason is None:
        return card.model_copy(update={"flags": flags})
    flags.append(Flag(reason=f"not scorable: {reason}"))
    return card.model_copy(update={"flags": flags, "passed": False, "scorable": False, "not_scorable_reason": reason})
