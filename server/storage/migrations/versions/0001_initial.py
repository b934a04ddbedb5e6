"""Initial schema: nodes, GPUs, interned series, raw samples, recently ingested batches.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("hostname", sa.String(length=253), nullable=False),
        sa.Column("labels", sa.JSON(), nullable=False),
        sa.Column("interval_seconds", sa.Float(), nullable=False),
        sa.Column("first_seen", sa.Float(), nullable=False),
        sa.Column("last_push", sa.Float(), nullable=False),
        sa.Column("last_batch_ts", sa.Float(), nullable=False),
        sa.Column("last_seq", sa.BigInteger(), nullable=False),
        sa.Column("host_facts", sa.JSON(), nullable=False),
        sa.Column("driver_version", sa.String(length=64), nullable=True),
        sa.Column("gpu_status", sa.String(length=256), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_nodes"),
        sa.UniqueConstraint("node_id", name="uq_nodes_node_id"),
    )
    op.create_index("ix_nodes_name", "nodes", ["name"])
    op.create_table(
        "gpus",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_pk", sa.Integer(), nullable=False),
        sa.Column("gpu_index", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=256), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("pci_bus_id", sa.String(length=256), nullable=False),
        sa.Column("serial", sa.String(length=256), nullable=True),
        sa.Column("vbios_version", sa.String(length=256), nullable=True),
        sa.Column("memory_total_bytes", sa.BigInteger(), nullable=True),
        sa.Column("first_seen", sa.Float(), nullable=False),
        sa.Column("last_seen", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_pk"], ["nodes.id"], name="fk_gpus_node_pk_nodes", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_gpus"),
        sa.UniqueConstraint("node_pk", "uuid", name="uq_gpus_node_pk"),
    )
    op.create_table(
        "series",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_pk", sa.Integer(), nullable=False),
        sa.Column("metric", sa.String(length=200), nullable=False),
        sa.Column("labels", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_pk"], ["nodes.id"], name="fk_series_node_pk_nodes", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_series"),
        sa.UniqueConstraint("node_pk", "metric", "labels", name="uq_series_node_pk"),
    )
    op.create_index("ix_series_metric", "series", ["metric"])
    op.create_table(
        "samples",
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("ts_ms", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("series_id", "ts_ms", name="pk_samples"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "ingested_batches",
        sa.Column("node_pk", sa.Integer(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("batch_ts", sa.Float(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("node_pk", "seq", name="pk_ingested_batches"),
        sqlite_with_rowid=False,
    )
    op.create_index(
        "ix_ingested_batches_received_at", "ingested_batches", ["received_at"]
    )


def downgrade() -> None:
    op.drop_table("ingested_batches")
    op.drop_table("samples")
    op.drop_index("ix_series_metric", table_name="series")
    op.drop_table("series")
    op.drop_table("gpus")
    op.drop_index("ix_nodes_name", table_name="nodes")
    op.drop_table("nodes")
