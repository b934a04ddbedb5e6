"""GPU events and job accounting: gpu_events, jobs, job_gpus.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gpu_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("node_pk", sa.Integer(), nullable=False),
        sa.Column("event_key", sa.String(length=64), nullable=False),
        sa.Column("time", sa.Float(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("code", sa.Integer(), nullable=False),
        sa.Column("gpu_index", sa.Integer(), nullable=True),
        sa.Column("uuid", sa.String(length=256), nullable=True),
        sa.Column("pci_bus_id", sa.String(length=256), nullable=True),
        sa.Column("pid", sa.BigInteger(), nullable=True),
        sa.Column("message", sa.String(length=1024), nullable=False),
        sa.Column("mnemonic", sa.String(length=256), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=256), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_pk"], ["nodes.id"], name="fk_gpu_events_node_pk_nodes", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_gpu_events"),
        sa.UniqueConstraint("node_pk", "event_key", name="uq_gpu_events_node_pk"),
    )
    op.create_index("ix_gpu_events_time", "gpu_events", ["time"])
    op.create_index("ix_gpu_events_node_pk_time", "gpu_events", ["node_pk", "time"])
    op.create_table(
        "jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_id", sa.String(length=256), nullable=False),
        sa.Column("scheduler", sa.String(length=32), nullable=False),
        sa.Column("user_name", sa.String(length=256), nullable=False),
        sa.Column("first_seen", sa.Float(), nullable=False),
        sa.Column("last_seen", sa.Float(), nullable=False),
        sa.Column("gpu_seconds", sa.Float(), nullable=False),
        sa.Column("idle_seconds", sa.Float(), nullable=False),
        sa.Column("energy_joules", sa.Float(), nullable=False),
        sa.Column("sm_percent_seconds", sa.Float(), nullable=False),
        sa.Column("sm_seconds", sa.Float(), nullable=False),
        sa.Column("peak_memory_bytes", sa.BigInteger(), nullable=False),
        sa.Column("peak_sm_percent", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_jobs"),
        sa.UniqueConstraint("job_id", "scheduler", name="uq_jobs_job_id"),
    )
    op.create_index("ix_jobs_last_seen", "jobs", ["last_seen"])
    op.create_index("ix_jobs_user_name", "jobs", ["user_name"])
    op.create_table(
        "job_gpus",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("job_pk", sa.Integer(), nullable=False),
        sa.Column("node_pk", sa.Integer(), nullable=False),
        sa.Column("uuid", sa.String(length=256), nullable=False),
        sa.Column("gpu_index", sa.Integer(), nullable=False),
        sa.Column("step", sa.String(length=256), nullable=False),
        sa.Column("first_seen", sa.Float(), nullable=False),
        sa.Column("last_seen", sa.Float(), nullable=False),
        sa.Column("run_since", sa.Float(), nullable=False),
        sa.Column("run_gpu_seconds", sa.Float(), nullable=False),
        sa.Column("run_idle_seconds", sa.Float(), nullable=False),
        sa.Column("run_energy_joules", sa.Float(), nullable=False),
        sa.Column("gpu_seconds", sa.Float(), nullable=False),
        sa.Column("idle_seconds", sa.Float(), nullable=False),
        sa.Column("energy_joules", sa.Float(), nullable=False),
        sa.Column("sm_percent_seconds", sa.Float(), nullable=False),
        sa.Column("sm_seconds", sa.Float(), nullable=False),
        sa.Column("peak_memory_bytes", sa.BigInteger(), nullable=False),
        sa.Column("peak_sm_percent", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_pk"], ["jobs.id"], name="fk_job_gpus_job_pk_jobs", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["node_pk"], ["nodes.id"], name="fk_job_gpus_node_pk_nodes", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_job_gpus"),
        sa.UniqueConstraint("job_pk", "node_pk", "uuid", name="uq_job_gpus_job_pk"),
    )
    op.create_index("ix_job_gpus_node_pk", "job_gpus", ["node_pk"])


def downgrade() -> None:
    op.drop_index("ix_job_gpus_node_pk", table_name="job_gpus")
    op.drop_table("job_gpus")
    op.drop_index("ix_jobs_user_name", table_name="jobs")
    op.drop_index("ix_jobs_last_seen", table_name="jobs")
    op.drop_table("jobs")
    op.drop_index("ix_gpu_events_node_pk_time", table_name="gpu_events")
    op.drop_index("ix_gpu_events_time", table_name="gpu_events")
    op.drop_table("gpu_events")
