"""sip_backends (the UA workers of every node, for a shared edge) and calls.node

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sip_backends",
        sa.Column("uri", sa.String(length=255), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=False),
        sa.Column("ua_index", sa.Integer(), nullable=False),
        sa.Column("max_calls", sa.Integer(), nullable=False),
        sa.Column("free_slots", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("beat", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("uri", name=op.f("pk_sip_backends")),
    )
    op.create_index(op.f("ix_sip_backends_node"), "sip_backends", ["node"], unique=False)
    op.add_column("calls", sa.Column("node", sa.String(length=64), server_default="", nullable=False))


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        # not batch mode: it would rebuild calls, and dropping the old table with foreign keys on
        # cascades to call_events (SQLite drops a column in place since 3.35)
        op.execute("ALTER TABLE calls DROP COLUMN node")
    else:
        op.drop_column("calls", "node")
    op.drop_index(op.f("ix_sip_backends_node"), table_name="sip_backends")
    op.drop_table("sip_backends")
