"""What the review console reads from and writes to the results store.

Kept apart from the web layer so that the queue order, the call page's data and the rule that a
human review is stored *beside* the machine verdict (never over it) can be tested without HTTP.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from pipelines.results.store import (
    AssignmentRow, CallRow, CategoryResultRow, FlagRow, ReviewRow, RuleResultRow, Store, UtteranceRow, result_key,
)
from qa_rules.records import EvidenceItem

log = logging.getLogger(__name__)

VERDICTS = ("pass", "fail", "na")
SORTS = ("severity", "agent", "date", "rule")
"""Queue orders a supervisor can pick; ``severity`` (the default) puts fatal calls first."""


class ReviewError(ValueError):
    """A review that cannot be stored; the message says what to fix."""


@dataclass(frozen=True)
class QueueItem:
    """One call that needs a human look, with what makes it need one."""

    call_id: str
    agent_id: str | None
    team: str | None
    started_at: str | None
    percent: float | None
    passed: bool | None
    fatal: bool
    flags: list[str]
    failed_rules: list[str]
    reviews: int
    why: str = "flagged"
    """Why the call is in the queue: ``fatal``, ``flagged`` (a flag or a failed rule) or ``random``
    (drawn by the sampling plan)."""
    assignee: str | None = None

    @property
    def severity_key(self) -> tuple:
        """Fatal first, then lowest score, then most flags and failed rules."""
        percent = self.percent if self.percent is not None else 0.0
        return (not self.fatal, percent, -len(self.flags), -len(self.failed_rules), self.call_id)


@dataclass
class RuleView:
    """A rule's machine verdict and, beside it, every human review of it on this call."""

    rule_id: str
    title: str
    category: str
    verdict: str
    points: float
    max_points: float
    fatal: bool
    evidence: list[EvidenceItem]
    reviews: list[ReviewRow] = field(default_factory=list)

    @property
    def latest_review(self) -> ReviewRow | None:
        return self.reviews[-1] if self.reviews else None


@dataclass
class CallView:
    call: CallRow
    flags: list[FlagRow]
    rules: list[RuleView]
    utterances: list[UtteranceRow]
    categories: dict[str, str] = field(default_factory=dict)
    """Category → verdict as the scorecard gave it (categories the rulebook has rules in)."""

    @property
    def speaker_roles(self) -> dict[str, str]:
        """Speaker id → role, so evidence reads "agent" rather than "ch1" or "SPEAKER_00"."""
        return {u.speaker: u.role for u in self.utterances}


# --------------------------------------------------------------------------- queue
PAGE_SIZE = 100


@dataclass(frozen=True)
class QueuePage:
    items: list[QueueItem]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.page_size))


def flagged_queue(store: Store, sort: str = "severity", rule: str | None = None, agent: str | None = None,
                  limit: int | None = None, assignee: str | None = None, page: int = 1,
                  page_size: int = PAGE_SIZE) -> list[QueueItem]:
    """One page of the queue (see :func:`queue_page`) as a list."""
    return queue_page(store, sort, rule, agent, assignee, page, limit or page_size).items


def queue_page(store: Store, sort: str = "severity", rule: str | None = None, agent: str | None = None,
               assignee: str | None = None, page: int = 1, page_size: int = PAGE_SIZE) -> QueuePage:
    """Scored calls with a flag, a failed rule or a failing score, and calls drawn by the sampling
    plan — filtered, sorted and paged by the database, so a month of calls is no burden.

    ``rule`` keeps calls where that rule failed or raised a flag; ``agent`` one agent's calls;
    ``assignee`` the calls a sampling draw assigned to that reviewer."""
    from sqlalchemy import and_, case, exists, literal, or_
    from sqlalchemy.orm import aliased

    if sort not in SORTS:
        raise ReviewError(f"unknown sort {sort!r} — use one of: {', '.join(SORTS)}")
    page = max(1, int(page))
    n_flags = select(func.count()).where(FlagRow.call_id == CallRow.call_id).scalar_subquery()
    failed = and_(RuleResultRow.call_id == CallRow.call_id, RuleResultRow.verdict == "fail")
    n_failed = select(func.count()).where(failed).scalar_subquery()
    first_failed = select(func.min(RuleResultRow.rule_id)).where(failed).scalar_subquery()
    earlier = aliased(AssignmentRow)
    latest_assignment = (
        select(earlier.id).where(earlier.call_id == CallRow.call_id).correlate(CallRow)
        .order_by(earlier.created_at.desc(), earlier.id.desc()).limit(1).scalar_subquery()
    )
    query = (
        select(CallRow, n_flags.label("n_flags"), n_failed.label("n_failed"), AssignmentRow.reason, AssignmentRow.assignee)
        .outerjoin(AssignmentRow, AssignmentRow.id == latest_assignment)
        .where(CallRow.status == "done")
        .where(or_(n_flags > 0, n_failed > 0, CallRow.passed.is_(False), AssignmentRow.id.isnot(None)))
    )
    if agent:
        query = query.where(CallRow.agent_id == agent)
    if assignee:
        query = query.where(AssignmentRow.assignee == assignee)
    if rule:
        query = query.where(or_(
            exists().where(failed, RuleResultRow.rule_id == rule),
            exists().where(FlagRow.call_id == CallRow.call_id, FlagRow.rule_id == rule),
        ))
    severity = [
        case((CallRow.fatal.is_(True), 0), else_=1), func.coalesce(CallRow.percent, 0.0),
        n_flags.desc(), n_failed.desc(), CallRow.call_id,
    ]
    if sort == "agent":
        order = [case((CallRow.agent_id.is_(None), 1), else_=0), CallRow.agent_id, *severity]
    elif sort == "date":  # newest first; undated calls last
        order = [case((CallRow.started_at.is_(None), 1), else_=0), CallRow.started_at.desc(), *severity]
    elif sort == "rule":  # by the first failed rule's id; calls with only flags last
        order = [case((first_failed.is_(None), 1), else_=0), func.coalesce(first_failed, literal("")), *severity]
    else:
        order = severity
    with Session(store.engine) as session:
        total = session.scalar(select(func.count()).select_from(query.subquery()))
        rows = session.execute(query.order_by(*order).limit(page_size).offset((page - 1) * page_size)).all()
        ids = [row[0].call_id for row in rows]
        flags: dict[str, list[str]] = {}
        for call_id, reason in session.execute(
            select(FlagRow.call_id, FlagRow.reason).where(FlagRow.call_id.in_(ids)).order_by(FlagRow.id)
        ):
            flags.setdefault(call_id, []).append(reason)
        failed_rules: dict[str, list[str]] = {}
        for call_id, rule_id in session.execute(
            select(RuleResultRow.call_id, RuleResultRow.rule_id)
            .where(RuleResultRow.call_id.in_(ids), RuleResultRow.verdict == "fail").order_by(RuleResultRow.rule_id)
        ):
            failed_rules.setdefault(call_id, []).append(rule_id)
        reviews = dict(session.execute(
            select(ReviewRow.call_id, func.count()).where(ReviewRow.call_id.in_(ids)).group_by(ReviewRow.call_id)
        ).all())
        items = []
        for call, _, _, reason, who in rows:
            items.append(QueueItem(
                call_id=call.call_id, agent_id=call.agent_id, team=call.team, started_at=call.started_at,
                percent=call.percent, passed=call.passed, fatal=bool(call.fatal),
                flags=flags.get(call.call_id, []), failed_rules=failed_rules.get(call.call_id, []),
                reviews=int(reviews.get(call.call_id, 0)),
                why=reason or ("fatal" if call.fatal else "flagged"), assignee=who,
            ))
    return QueuePage(items, int(total or 0), page, page_size)


def queue_choices(store: Store) -> tuple[list[str], list[str]]:
    """Agents and rules to offer in the queue's filters."""
    with Session(store.engine) as session:
        agents = [a for a in session.scalars(select(CallRow.agent_id).distinct().order_by(CallRow.agent_id)) if a]
        rules = list(session.scalars(select(RuleResultRow.rule_id).distinct().order_by(RuleResultRow.rule_id)))
    return agents, rules


def assignees(store: Store) -> list[str]:
    """Reviewers that sampling draws assigned calls to, for the queue's filter."""
    with Session(store.engine) as session:
        return [a for a in session.scalars(select(AssignmentRow.assignee).distinct().order_by(AssignmentRow.assignee)) if a]


# --------------------------------------------------------------------------- call page
def call_view(store: Store, call_id: str) -> CallView | None:
    """Everything the call page shows, or ``None`` for a call id the store does not know."""
    with Session(store.engine) as session:
        call = session.get(CallRow, call_id)
        if call is None:
            return None
        flags = list(session.scalars(select(FlagRow).where(FlagRow.call_id == call_id).order_by(FlagRow.id)))
        results = list(session.scalars(select(RuleResultRow).where(RuleResultRow.call_id == call_id).order_by(RuleResultRow.id)))
        utterances = list(session.scalars(select(UtteranceRow).where(UtteranceRow.call_id == call_id).order_by(UtteranceRow.idx)))
        categories = dict(session.execute(
            select(CategoryResultRow.category, CategoryResultRow.verdict)
            .where(CategoryResultRow.call_id == call_id).order_by(CategoryResultRow.id)
        ).all())
        reviews = list(session.scalars(
            select(ReviewRow).where(ReviewRow.call_id == call_id).order_by(ReviewRow.created_at, ReviewRow.id)
        ))
        session.expunge_all()
    rules = []
    for row in results:
        rules.append(RuleView(
            rule_id=row.rule_id, title=row.title, category=row.category, verdict=row.verdict,
            points=row.points, max_points=row.max_points, fatal=row.fatal, evidence=row.evidence_items,
            reviews=[r for r in reviews if r.rule_id == row.rule_id],
        ))
    # failed and fatal rules first: that is what the reviewer came for
    rules.sort(key=lambda r: (r.verdict != "fail", not r.fatal, r.verdict != "na"))
    return CallView(call=call, flags=flags, rules=rules, utterances=utterances, categories=categories)


def audio_path(store: Store, call_id: str) -> Path | None:
    """The recording of a call in the store — the only way the console finds an audio file."""
    with Session(store.engine) as session:
        call = session.get(CallRow, call_id)
        return Path(call.source) if call is not None and call.source else None


@dataclass(frozen=True)
class AudioLookup:
    """What the audio route may serve for a call: ``path`` (resolved) or the refusal to show."""

    path: Path | None
    status: int = 200
    message: str = ""


def servable_audio(store: Store, call_id: str) -> AudioLookup:
    """The recording of a scored call, only if it is still an ordinary file inside the recording
    folder the run was given.

    A call that failed (e.g. "not an audio file") has nothing to play, and a file that resolves
    elsewhere — a ``leak.wav`` symlink to ``/etc/passwd`` in a calls folder — is refused, so the
    console never serves a file just because a call names it."""
    with Session(store.engine) as session:
        call = session.get(CallRow, call_id)
        if call is None or not call.source:
            return AudioLookup(None, 404, f"no call {call_id!r} in this store")
        status, error, source, root = call.status, call.error, Path(call.source), call.source_root
    if status != "done":
        why = f" ({error})" if error else ""
        return AudioLookup(None, 404, f"call {call_id} was not scored (status {status}{why}) — there is no recording to play")
    try:
        real = source.resolve(strict=True)
    except (OSError, RuntimeError):
        real = None
    if real is None or not real.is_file():
        return AudioLookup(None, 404, f"the recording of call {call_id} is not at {source} any more — restore the file "
                                      "or re-register the call with its new location")
    folder = Path(root) if root else source.parent
    try:
        folder = folder.resolve(strict=True)
    except (OSError, RuntimeError):
        return AudioLookup(None, 404, f"the recording folder {folder} of call {call_id} is gone — restore it")
    if not real.is_relative_to(folder):
        log.warning("audio of call %s refused: %s resolves to %s, outside its recording folder %s", call_id, source, real, folder)
        return AudioLookup(None, 403, f"the recording of call {call_id} points outside its recording folder {folder} — "
                                      "not served; check the file (a link to another place?) and run the call again")
    return AudioLookup(real)


# --------------------------------------------------------------------------- reviews
def save_review(store: Store, call_id: str, rule_id: str, human_verdict: str, reviewer: str, note: str = "",
                now: float | None = None) -> ReviewRow:
    """Store a human verdict beside the machine's; the rule result itself is never changed."""
    reviewer = reviewer.strip()
    if not reviewer:
        raise ReviewError("enter your name in the reviewer field before saving a review")
    if human_verdict not in VERDICTS:
        raise ReviewError(f"verdict {human_verdict!r} is not one of {', '.join(VERDICTS)}")
    with Session(store.engine) as session, session.begin():
        result = session.scalars(
            select(RuleResultRow).where(RuleResultRow.call_id == call_id, RuleResultRow.rule_id == rule_id)
        ).first()
        if result is None:
            raise ReviewError(f"call {call_id} has no result for rule {rule_id}; reload the call page (it may have been re-scored)")
        review = ReviewRow(
            call_id=call_id, rule_id=rule_id, machine_verdict=result.verdict, human_verdict=human_verdict,
            reviewer=reviewer[:100], note=note.strip(), created_at=now if now is not None else time.time(),
            result_key=result_key(result.verdict, result.evidence), stale=False,
        )
        session.add(review)
        session.flush()
        session.expunge(review)
    log.info("review: %s %s machine=%s human=%s by %s", call_id, rule_id, review.machine_verdict, human_verdict, reviewer)
    return review


def redacted_clip(store: Store, call_id: str, audio: Path, rule: RuleView) -> bytes:
    """WAV bytes of the clip around ``rule``'s first timed evidence (the call's opening when it has
    none), personal numbers beeped out from the call's saved conversation."""
    import tempfile

    from pipelines.coaching.clips import cut_clip
    from qa_rules.records import Conversation
    from pipelines.results.redaction import pii_time_spans

    timed = [e for e in rule.evidence if e.start is not None]
    start, end = (timed[0].start, timed[0].end) if timed else (None, None)
    with Session(store.engine) as session:
        call = session.get(CallRow, call_id)
        conversation_path = Path(call.conversation_path) if call and call.conversation_path else None
    beep = []
    if conversation_path is not None and conversation_path.is_file():
        beep = [(a, b) for a, b, _ in pii_time_spans(Conversation.read(conversation_path))]
    else:
        log.warning("call %s: no saved conversation to find spoken numbers in; clip without beeps", call_id)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "clip.wav"
        cut_clip(audio, out, start, end, beep=beep)
        return out.read_bytes()


def redacted_view(view: CallView) -> CallView:
    """The call page's data with personal numbers replaced in every text a reviewer reads (the rows
    are detached copies: nothing is written back to the store)."""
    from pipelines.results.redaction import redact_text

    language = view.call.language or "zh"
    for u in view.utterances:
        u.text = redact_text(u.text, language)
    for f in view.flags:
        f.reason = redact_text(f.reason, language)
    for r in view.rules:
        r.evidence = [replace(e, text=redact_text(e.text, language) if e.text else e.text) for e in r.evidence]
        for review in r.reviews:
            review.note = redact_text(review.note or "", language)
    return view
