"""Credentials: API tokens the server issues (node, bootstrap, read, admin), stored as SHA-256.

Revision ID: 0004
Revises: 0003
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
        "credentials",
        sa.Column("token_id", sa.String(length=32), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("node_id", sa.String(length=32), nullable=True),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=True),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.Column("replaces", sa.String(length=32), nullable=True),
        sa.PrimaryKeyConstraint("token_id", name="pk_credentials"),
        sa.UniqueConstraint("sha256", name="uq_credentials_sha256"),
    )
    op.create_index("ix_credentials_node_id", "credentials", ["node_id"])


def downgrade() -> None:
    op.drop_index("ix_credentials_node_id", table_name="credentials")
    op.drop_table("credentials")
