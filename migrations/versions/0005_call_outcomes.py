"""calls.outcome, calls.failure_class (voicebot/records/classify.py) and calls.dialplan_version

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

COLUMNS = (("dialplan_version", 64), ("outcome", 16), ("failure_class", 32))


def upgrade() -> None:
    for name, length in COLUMNS:
        op.add_column("calls", sa.Column(name, sa.String(length=length), server_default="", nullable=False))
    op.create_index(op.f("ix_calls_outcome"), "calls", ["outcome"], unique=False)
    op.create_index(op.f("ix_calls_failure_class"), "calls", ["failure_class"], unique=False)
    # `voicebot calls list` and `voicebot report` select by start time
    op.create_index(op.f("ix_calls_started_at"), "calls", ["started_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_calls_started_at"), table_name="calls")
    op.drop_index(op.f("ix_calls_failure_class"), table_name="calls")
    op.drop_index(op.f("ix_calls_outcome"), table_name="calls")
    for name, _ in reversed(COLUMNS):
        if op.get_bind().dialect.name == "sqlite":
            # in place, not batch mode (a rebuilt calls table would cascade to call_events)
            op.execute(f"ALTER TABLE calls DROP COLUMN {name}")
        else:
            op.drop_column("calls", name)
