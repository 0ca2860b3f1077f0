"""jobs.key: one job per key (post-call jobs are enqueued with their call record, at most once)

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("key", sa.String(length=255), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_jobs_key"), ["key"])


def downgrade() -> None:
    with op.batch_alter_table("jobs", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_jobs_key"), type_="unique")
        batch_op.drop_column("key")
