"""Notifications: silences (admin-made, by matchers and time) and the notification log.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "silences",
        sa.Column("silence_id", sa.String(length=36), nullable=False),
        sa.Column("matchers", sa.JSON(), nullable=False),
        sa.Column("starts_at", sa.Float(), nullable=False),
        sa.Column("ends_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=256), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("silence_id", name="pk_silences"),
    )
    op.create_index("ix_silences_ends_at", "silences", ["ends_at"])
    op.create_table(
        "notification_log",
        sa.Column("receiver", sa.String(length=256), nullable=False),
        sa.Column("group_key", sa.String(length=1024), nullable=False),
        sa.Column("firing", sa.JSON(), nullable=False),
        sa.Column("resolved", sa.JSON(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("sent_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("receiver", "group_key", name="pk_notification_log"),
    )
    op.create_index("ix_notification_log_expires_at", "notification_log", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_notification_log_expires_at", table_name="notification_log")
    op.drop_table("notification_log")
    op.drop_index("ix_silences_ends_at", table_name="silences")
    op.drop_table("silences")
