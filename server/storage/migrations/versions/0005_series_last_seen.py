"""Series lifecycle: when each series was last written, so unwritten series can be deleted.

Existing series count as written at the upgrade: none of them is deleted before a whole raw
retention has passed without a write.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import time

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("series") as batch:
        batch.add_column(
            sa.Column("last_seen_ms", sa.BigInteger(), server_default="0", nullable=False)
        )
    op.execute(sa.text("UPDATE series SET last_seen_ms = :now").bindparams(now=_now_ms()))
    op.create_index("ix_series_last_seen_ms", "series", ["last_seen_ms"])


def downgrade() -> None:
    op.drop_index("ix_series_last_seen_ms", table_name="series")
    with op.batch_alter_table("series") as batch:
        batch.drop_column("last_seen_ms")


def _now_ms() -> int:
    return round(time.time() * 1000)
