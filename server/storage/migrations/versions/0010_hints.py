"""Rebalancing hints: one row per hint (keyed by the engine's content id) with its lifecycle,
and the nodes and pods each hint names.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "hints",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("node", sa.String(length=253), nullable=True),
        sa.Column("gpu", sa.Integer(), nullable=True),
        sa.Column("pod", sa.String(length=253), nullable=True),
        sa.Column("remedy", sa.String(length=32), nullable=False),
        sa.Column("actions", sa.JSON(), nullable=False),
        sa.Column("evidence", sa.JSON(), nullable=False),
        sa.Column("gain_gpus", sa.Float(), nullable=False),
        sa.Column("gain_gpu_hours", sa.Float(), nullable=False),
        sa.Column("gain_watts", sa.Float(), nullable=False),
        sa.Column("cost_moves", sa.Integer(), nullable=False),
        sa.Column("cost_restart_s", sa.Float(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("first_seen", sa.Float(), nullable=False),
        sa.Column("last_seen", sa.Float(), nullable=False),
        sa.Column("missed_rounds", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_changed_at", sa.Float(), nullable=False),
        sa.Column("state_changed_by", sa.String(length=64), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_hints"),
    )
    op.create_index("ix_hints_state_kind", "hints", ["state", "kind"])
    op.create_index("ix_hints_last_seen", "hints", ["last_seen"])
    op.create_table(
        "hint_refs",
        sa.Column("hint_id", sa.String(length=32), nullable=False),
        sa.Column("ref_kind", sa.String(length=8), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.ForeignKeyConstraint(
            ["hint_id"], ["hints.id"], name="fk_hint_refs_hint_id_hints", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("hint_id", "ref_kind", "name", name="pk_hint_refs"),
    )
    op.create_index("ix_hint_refs_ref_kind_name", "hint_refs", ["ref_kind", "name"])


def downgrade() -> None:
    op.drop_index("ix_hint_refs_ref_kind_name", table_name="hint_refs")
    op.drop_table("hint_refs")
    op.drop_index("ix_hints_last_seen", table_name="hints")
    op.drop_index("ix_hints_state_kind", table_name="hints")
    op.drop_table("hints")
