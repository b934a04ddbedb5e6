"""Alert state: each rule's alerts as the evaluator left them, kept across restarts.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "alert_state",
        sa.Column("alert_key", sa.String(64), nullable=False),
        sa.Column("group_key", sa.Text(), nullable=False),
        sa.Column("rule_key", sa.Text(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("updated_ms", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("alert_key", name="pk_alert_state"),
    )
    op.create_index("ix_alert_state_group_key", "alert_state", ["group_key"])


def downgrade() -> None:
    op.drop_index("ix_alert_state_group_key", table_name="alert_state")
    op.drop_table("alert_state")
