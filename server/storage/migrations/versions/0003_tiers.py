"""Storage tiers: the head (one row per batch) and compressed per-series blocks.

Replaces the one-row-per-sample ``samples`` table. Existing samples move into head rows (one per
node and timestamp); the server's compactor turns closed windows into blocks afterwards.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import struct
from collections import defaultdict

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "head_chunks",
        sa.Column("node_pk", sa.Integer(), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("node_pk", "ts_ms", name="pk_head_chunks"),
    )
    op.create_table(
        "blocks",
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("tier", sa.SmallInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("series_id", "tier", "end_ms", name="pk_blocks"),
        sqlite_with_rowid=False,
    )
    op.create_index("ix_blocks_tier_end_ms", "blocks", ["tier", "end_ms"])
    _move_samples_to_head()
    op.drop_table("samples")


def _move_samples_to_head() -> None:
    """Regroup the old per-sample rows into head rows, one node timestamp at a time."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT series.node_pk, samples.ts_ms, samples.series_id, samples.value "
            "FROM samples JOIN series ON series.id = samples.series_id"
        )
    )
    grouped: dict[tuple[int, int], list[tuple[int, float]]] = defaultdict(list)
    for node_pk, ts_ms, series_id, value in rows:
        grouped[(node_pk, ts_ms)].append((series_id, value))
    head = sa.table(
        "head_chunks",
        sa.column("node_pk", sa.Integer()),
        sa.column("ts_ms", sa.BigInteger()),
        sa.column("n", sa.Integer()),
        sa.column("payload", sa.LargeBinary()),
    )
    batch = []
    for (node_pk, ts_ms), pairs in grouped.items():
        pairs.sort()
        n = len(pairs)
        payload = struct.pack(f"<{n}I", *(p[0] for p in pairs)) + struct.pack(
            f"<{n}d", *(p[1] for p in pairs)
        )
        batch.append({"node_pk": node_pk, "ts_ms": ts_ms, "n": n, "payload": payload})
        if len(batch) >= 500:
            bind.execute(head.insert(), batch)
            batch = []
    if batch:
        bind.execute(head.insert(), batch)


def downgrade() -> None:
    """Back to the per-sample table, empty: history stored in tiers is not converted back."""
    op.create_table(
        "samples",
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("series_id", "ts_ms", name="pk_samples"),
        sqlite_with_rowid=False,
    )
    op.drop_index("ix_blocks_tier_end_ms", table_name="blocks")
    op.drop_table("blocks")
    op.drop_table("head_chunks")
