"""Notification claims: which server process is sending a group's notification right now.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "notification_claims",
        sa.Column("receiver", sa.String(length=256), nullable=False),
        sa.Column("group_key", sa.String(length=1024), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("claimed_at", sa.Float(), nullable=False),
        sa.Column("until", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("receiver", "group_key", name="pk_notification_claims"),
    )
    op.create_index("ix_notification_claims_until", "notification_claims", ["until"])


def downgrade() -> None:
    op.drop_index("ix_notification_claims_until", table_name="notification_claims")
    op.drop_table("notification_claims")
