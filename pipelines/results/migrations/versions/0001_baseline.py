"""Baseline: the results store as callqa wrote it before Alembic (commit 34f42d1).

Revision ID: 0001
Revises:
Create Date: 2026-12-01

The tables are written out here, frozen, rather than taken from the live models, so that this
revision means the same schema forever.  A fresh database gets them created.  A store written by an
earlier callqa has no ``alembic_version`` table and may lack tables or columns that were added
over time (``reviews.result_key``/``stale``/``stale_reason``, ``calls.source_root``,
``calls.claims``…): those are added, empty, with the data kept — what the ad-hoc column migration
of ``Store.__init__`` did before this revision replaced it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

baseline = sa.MetaData()


def _of_a_call(name: str, *columns: sa.Column) -> sa.Table:
    """A table of rows that belong to one call: an id, the call's id (indexed), then ``columns``."""
    return sa.Table(
        name, baseline,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("call_id", sa.String(200), sa.ForeignKey("calls.call_id"), nullable=False, index=True),
        *columns,
    )


sa.Table(
    "calls", baseline,
    sa.Column("call_id", sa.String(200), primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("source_root", sa.Text),
    sa.Column("agent_id", sa.String(100), index=True),
    sa.Column("team", sa.String(100), index=True),
    sa.Column("started_at", sa.String(40), index=True),
    sa.Column("direction", sa.String(20)),
    sa.Column("channel_map", sa.String(20)),
    sa.Column("status", sa.String(20), nullable=False, index=True),
    sa.Column("error", sa.Text),
    sa.Column("claimed_by", sa.String(200)),
    sa.Column("claimed_at", sa.Float),
    sa.Column("claims", sa.Integer, nullable=False),
    sa.Column("processed_by", sa.String(200)),
    sa.Column("processed_at", sa.Float),
    sa.Column("input_key", sa.String(80)),
    sa.Column("rulebook_key", sa.String(80)),
    sa.Column("duration_s", sa.Float),
    sa.Column("language", sa.String(10)),
    sa.Column("rulebook_id", sa.String(100)),
    sa.Column("rulebook_version", sa.String(40)),
    sa.Column("score", sa.Float),
    sa.Column("max_score", sa.Float),
    sa.Column("percent", sa.Float, index=True),
    sa.Column("passed", sa.Boolean),
    sa.Column("fatal", sa.Boolean),
    sa.Column("hold_s", sa.Float),
    sa.Column("silence_share", sa.Float),
    sa.Column("agent_talk_ratio", sa.Float),
    sa.Column("conversation_path", sa.Text),
    sa.Column("scorecard_path", sa.Text),
)
_of_a_call(
    "utterances",
    sa.Column("idx", sa.Integer, nullable=False),
    sa.Column("speaker", sa.String(50), nullable=False),
    sa.Column("role", sa.String(20), nullable=False),
    sa.Column("start", sa.Float, nullable=False),
    sa.Column("end", sa.Float, nullable=False),
    sa.Column("text", sa.Text, nullable=False),
)
_of_a_call(
    "rule_results",
    sa.Column("rule_id", sa.String(100), nullable=False, index=True),
    sa.Column("category", sa.String(40), nullable=False, index=True),
    sa.Column("verdict", sa.String(10), nullable=False),
    sa.Column("points", sa.Float, nullable=False),
    sa.Column("max_points", sa.Float, nullable=False),
    sa.Column("fatal", sa.Boolean, nullable=False),
    sa.Column("evidence", sa.Text, nullable=False),
)
_of_a_call(
    "flags",
    sa.Column("reason", sa.Text, nullable=False),
    sa.Column("rule_id", sa.String(100)),
)
_of_a_call(
    "reviews",
    sa.Column("rule_id", sa.String(100), nullable=False, index=True),
    sa.Column("machine_verdict", sa.String(10), nullable=False),
    sa.Column("human_verdict", sa.String(10), nullable=False),
    sa.Column("reviewer", sa.String(100), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("result_key", sa.String(40)),
    sa.Column("stale", sa.Boolean),
    sa.Column("stale_reason", sa.Text),
)
_of_a_call(
    "assignments",
    sa.Column("plan_id", sa.String(100), nullable=False),
    sa.Column("period", sa.String(40), nullable=False, index=True),
    sa.Column("reason", sa.String(20), nullable=False, index=True),
    sa.Column("stratum", sa.String(100)),
    sa.Column("assignee", sa.String(100), index=True),
    sa.Column("created_at", sa.Float, nullable=False),
)

ADDED_DEFAULTS = {("calls", "claims"): "0"}
"""Server defaults for columns added to an earlier store's rows (a claim count starts at 0)."""


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    for table in baseline.sorted_tables:
        if not inspector.has_table(table.name):
            table.create(bind)
            continue
        present = {c["name"] for c in inspector.get_columns(table.name)}
        for column in table.columns:
            if column.name not in present:  # added empty (nullable): the earlier rows have no value
                default = ADDED_DEFAULTS.get((table.name, column.name))
                op.add_column(table.name, sa.Column(column.name, column.type, nullable=True, server_default=default))


def downgrade() -> None:
    for table in reversed(baseline.sorted_tables):
        op.drop_table(table.name)
