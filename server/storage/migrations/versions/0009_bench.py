"""GPU benchmark: requests (one open per node), and the runs, devices and figures they produced.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "bench_requests",
        sa.Column("request_id", sa.String(length=64), nullable=False),
        sa.Column("node_id", sa.String(length=32), nullable=False),
        sa.Column("node_name", sa.String(length=253), nullable=False),
        sa.Column("open_node_id", sa.String(length=32), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("gpus", sa.JSON(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("force", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("created_by", sa.String(length=64), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("deadline_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=True),
        sa.Column("last_report_at", sa.Float(), nullable=True),
        sa.Column("finished_at", sa.Float(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("request_id", name="pk_bench_requests"),
        sa.UniqueConstraint("open_node_id", name="uq_bench_requests_open_node_id"),
    )
    op.create_index(
        "ix_bench_requests_node_id_created_at", "bench_requests", ["node_id", "created_at"]
    )
    op.create_index("ix_bench_requests_created_at", "bench_requests", ["created_at"])
    op.create_index("ix_bench_requests_deadline_at", "bench_requests", ["deadline_at"])
    op.create_table(
        "bench_runs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.String(length=64), nullable=True),
        sa.Column("node_id", sa.String(length=32), nullable=False),
        sa.Column("node_name", sa.String(length=253), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("backend", sa.String(length=32), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("received_at", sa.Float(), nullable=False),
        sa.Column("result", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["bench_requests.request_id"],
            name="fk_bench_runs_request_id_bench_requests",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_bench_runs"),
        sa.UniqueConstraint("request_id", name="uq_bench_runs_request_id"),
    )
    op.create_index("ix_bench_runs_node_id_started_at", "bench_runs", ["node_id", "started_at"])
    op.create_table(
        "bench_run_gpus",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("gpu_key", sa.String(length=320), nullable=False),
        sa.Column("node_id", sa.String(length=32), nullable=False),
        sa.Column("node_name", sa.String(length=253), nullable=False),
        sa.Column("gpu_index", sa.Integer(), nullable=False),
        sa.Column("gpu_uuid", sa.String(length=64), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("device_name", sa.String(length=256), nullable=False),
        sa.Column("sku", sa.String(length=300), nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("passed", sa.Boolean(), nullable=False),
        sa.Column("time", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["bench_runs.id"],
            name="fk_bench_run_gpus_run_id_bench_runs",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_bench_run_gpus"),
        sa.UniqueConstraint("run_id", "gpu_key", name="uq_bench_run_gpus_run_id"),
    )
    op.create_index("ix_bench_run_gpus_gpu_key_time", "bench_run_gpus", ["gpu_key", "time"])
    op.create_index("ix_bench_run_gpus_time", "bench_run_gpus", ["time"])
    op.create_table(
        "bench_figures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("gpu_key", sa.String(length=320), nullable=False),
        sa.Column("node_id", sa.String(length=32), nullable=False),
        sa.Column("node_name", sa.String(length=253), nullable=False),
        sa.Column("gpu_index", sa.Integer(), nullable=False),
        sa.Column("gpu_uuid", sa.String(length=64), nullable=True),
        sa.Column("device_name", sa.String(length=256), nullable=False),
        sa.Column("sku", sa.String(length=300), nullable=False),
        sa.Column("test", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("unit", sa.String(length=32), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("verdict", sa.String(length=16), nullable=False),
        sa.Column("basis", sa.String(length=32), nullable=True),
        sa.Column("reference", sa.Float(), nullable=True),
        sa.Column("ratio", sa.Float(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("time", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"],
            ["bench_runs.id"],
            name="fk_bench_figures_run_id_bench_runs",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_bench_figures"),
    )
    op.create_index(
        "ix_bench_figures_gpu_key_test_time", "bench_figures", ["gpu_key", "test", "time"]
    )
    op.create_index("ix_bench_figures_time", "bench_figures", ["time"])
    op.create_index("ix_bench_figures_run_id", "bench_figures", ["run_id"])


def downgrade() -> None:
    op.drop_index("ix_bench_figures_run_id", table_name="bench_figures")
    op.drop_index("ix_bench_figures_time", table_name="bench_figures")
    op.drop_index("ix_bench_figures_gpu_key_test_time", table_name="bench_figures")
    op.drop_table("bench_figures")
    op.drop_index("ix_bench_run_gpus_time", table_name="bench_run_gpus")
    op.drop_index("ix_bench_run_gpus_gpu_key_time", table_name="bench_run_gpus")
    op.drop_table("bench_run_gpus")
    op.drop_index("ix_bench_runs_node_id_started_at", table_name="bench_runs")
    op.drop_table("bench_runs")
    op.drop_index("ix_bench_requests_deadline_at", table_name="bench_requests")
    op.drop_index("ix_bench_requests_created_at", table_name="bench_requests")
    op.drop_index("ix_bench_requests_node_id_created_at", table_name="bench_requests")
    op.drop_table("bench_requests")
