"""Blocks in a rowid table on SQLite: rows of hundreds of bytes stored in insertion order, the
primary key an index beside them.

A WITHOUT ROWID table keeps its rows in the primary key's b-tree, which suits rows under about
a twentieth of a page (SQLite's own rule of thumb). Blocks are 100-1,000 bytes, and each
compaction inserts one per series, all over the key space: pages split and stay about
half-empty. Measured on the ingest benchmark's compaction phase (5 nodes x 1 h), the blocks
table took 9.2 MB for 3.6 MB of payload, 5.5 MB of it unused. In a rowid table the rows go in
insertion order (pages filled) and the key is a small index.

The upgrade copies the table once (as long as copying its bytes); PostgreSQL's tables are heaps
already, and there it changes nothing.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _rebuild(with_rowid=True)


def downgrade() -> None:
    _rebuild(with_rowid=False)


def _rebuild(*, with_rowid: bool) -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.create_table(
        "blocks_rebuilt",
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("tier", sa.SmallInteger(), nullable=False),
        sa.Column("end_ms", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("series_id", "tier", "end_ms", name="pk_blocks"),
        sqlite_with_rowid=with_rowid,
    )
    op.execute(
        "INSERT INTO blocks_rebuilt (series_id, tier, end_ms, count, payload) "
        "SELECT series_id, tier, end_ms, count, payload FROM blocks "
        "ORDER BY series_id, tier, end_ms"
    )
    op.drop_index("ix_blocks_tier_end_ms", table_name="blocks")
    op.drop_table("blocks")
    op.rename_table("blocks_rebuilt", "blocks")
    op.create_index("ix_blocks_tier_end_ms", "blocks", ["tier", "end_ms"])
