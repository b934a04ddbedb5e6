"""Web sessions: the shared key that signs session cookies, and sessions ended by logout.

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "session_keys",
        sa.Column("key_id", sa.String(length=32), nullable=False),
        sa.Column("secret", sa.String(length=128), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key_id", name="pk_session_keys"),
    )
    op.create_table(
        "session_ends",
        sa.Column("session_id", sa.String(length=32), nullable=False),
        sa.Column("token_id", sa.String(length=64), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("session_id", name="pk_session_ends"),
    )
    op.create_index("ix_session_ends_expires_at", "session_ends", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_session_ends_expires_at", table_name="session_ends")
    op.drop_table("session_ends")
    op.drop_table("session_keys")
