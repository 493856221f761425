"""Typed scorecard in the store: rule titles, category verdicts and situations.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Before this revision the console read rule titles, and the batch summary the categories and
situations, back out of each call's ``scorecard.json``; now the store keeps them:

- ``rule_results.title_zh`` / ``title_en``: the rule's title as the rulebook gave it;
- ``category_results(call_id, category, verdict)``: the scorecard's category verdicts, for the
  categories the rulebook has rules in;
- ``situation_results(call_id, situation_id, occurred)``: the rulebook's situations checked on the call.

Calls already in the store get their category verdicts from their stored rule results (the one
definition, :func:`qa_rules.records.category_verdict`), and titles and situations from their
``scorecard.json`` where that file is still there (one last read of it; a missing or unreadable file
leaves them empty until the call is scored again).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import sqlalchemy as sa
from alembic import op

from qa_rules.records import category_verdict
from qa_rules.rulebook import CATEGORIES

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

log = logging.getLogger(__name__)


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("rule_results") as batch:
        batch.add_column(sa.Column("title_zh", sa.Text))
        batch.add_column(sa.Column("title_en", sa.Text))
    categories = op.create_table(
        "category_results",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.String(200), sa.ForeignKey("calls.call_id"), nullable=False, index=True),
        sa.Column("category", sa.String(40), nullable=False, index=True),
        sa.Column("verdict", sa.String(10), nullable=False),
    )
    situations = op.create_table(
        "situation_results",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.String(200), sa.ForeignKey("calls.call_id"), nullable=False, index=True),
        sa.Column("situation_id", sa.String(100), nullable=False, index=True),
        sa.Column("occurred", sa.Boolean, nullable=False),
    )
    _backfill(bind, categories, situations)


def _backfill(bind, categories: sa.Table, situations: sa.Table) -> None:
    rule_results = sa.table(
        "rule_results", sa.column("id"), sa.column("call_id"), sa.column("rule_id"), sa.column("category"),
        sa.column("verdict"), sa.column("title_zh"), sa.column("title_en"),
    )
    calls = sa.table("calls", sa.column("call_id"), sa.column("scorecard_path"))
    verdicts: dict[tuple[str, str], list[str]] = {}
    for call_id, category, verdict in bind.execute(
        sa.select(rule_results.c.call_id, rule_results.c.category, rule_results.c.verdict).order_by(rule_results.c.id)
    ):
        verdicts.setdefault((call_id, category), []).append(verdict)
    order = {c: i for i, c in enumerate(CATEGORIES)}  # the scorecard's order of categories
    if verdicts:
        op.bulk_insert(categories, [
            {"call_id": call_id, "category": category, "verdict": category_verdict(verdicts[call_id, category])}
            for call_id, category in sorted(verdicts, key=lambda k: (k[0], order.get(k[1], len(order)), k[1]))
        ])
    for call_id, path in bind.execute(sa.select(calls.c.call_id, calls.c.scorecard_path).where(calls.c.scorecard_path.isnot(None))):
        card = _read_card(path)
        if card is None:
            continue
        for rule in card.get("rules", []):
            title = rule.get("title") if isinstance(rule.get("title"), dict) else {}
            bind.execute(
                sa.update(rule_results).where(rule_results.c.call_id == call_id, rule_results.c.rule_id == rule.get("id"))
                .values(title_zh=title.get("zh"), title_en=title.get("en"))
            )
        found = [s for s in card.get("situations", []) if isinstance(s, dict) and s.get("id")]
        if found:
            op.bulk_insert(situations, [
                {"call_id": call_id, "situation_id": s["id"], "occurred": bool(s.get("occurred"))} for s in found
            ])


def _read_card(path: str) -> dict | None:
    """A stored call's scorecard file as JSON, or ``None`` (moved, deleted, not JSON)."""
    try:
        card = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        log.info("no titles or situations for the store from %s: %s", path, exc)
        return None
    return card if isinstance(card, dict) else None


def downgrade() -> None:
    op.drop_table("situation_results")
    op.drop_table("category_results")
    with op.batch_alter_table("rule_results") as batch:
        batch.drop_column("title_en")
        batch.drop_column("title_zh")
