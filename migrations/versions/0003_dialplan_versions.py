"""dialplan_versions and dialplan_states: published dialplans shared by every node of a database

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dialplan_versions",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("plan_id", sa.String(length=128), nullable=False),
        sa.Column("ref", sa.String(length=128), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dialplan_versions")),
        sa.UniqueConstraint("plan_id", "ref", name="uq_dialplan_versions_plan_id_ref"),
    )
    op.create_table(
        "dialplan_states",
        sa.Column("plan_id", sa.String(length=128), nullable=False),
        sa.Column("live", sa.String(length=128), nullable=True),
        sa.Column("canary", sa.String(length=128), nullable=True),
        sa.Column("canary_percent", sa.Integer(), nullable=False),
        sa.Column("history", sa.JSON(), nullable=False),
        sa.Column("revision", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), server_default=sa.func.now(), nullable=False),
        sa.PrimaryKeyConstraint("plan_id", name=op.f("pk_dialplan_states")),
    )


def downgrade() -> None:
    op.drop_table("dialplan_states")
    op.drop_table("dialplan_versions")
