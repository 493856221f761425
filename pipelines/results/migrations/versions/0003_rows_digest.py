"""A digest of each call's stored result rows, so a re-score reads one value instead of its rows.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03

``calls.rows_digest``: a short digest per table of the rows the call's last save wrote (utterances,
rule results, category verdicts, situations, flags — :func:`pipelines.results.store.rows_digest`).
A save compares digests and rewrites only the tables whose digest changed; before, it read back
and compared every row of the five tables (~90 rows a call), the most of a re-score's store time.
Calls already in the store have none (NULL): their next save compares the rows as before and
writes the digest.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("rows_digest", sa.Text))


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("rows_digest")
