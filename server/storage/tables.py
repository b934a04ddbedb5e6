"""Table definitions (SQLAlchemy 2.0 declarative). Migrations in ``migrations/`` create them.

Times in node-level tables are Unix seconds (float); sample times are Unix milliseconds (int),
the resolution agents report at. Series are interned: one row per (node, metric, label set),
labels as canonical JSON (sorted keys, compact), samples reference the series by id.

Samples live in two places (see ``server/storage/tiers.py``): the head, one row per node and
batch timestamp holding that batch's (series id, value) columns, for windows still open; and
blocks, one row per series, tier and closed window holding the compressed columns of that
window (raw samples, 1-minute buckets or 1-hour buckets).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class NodeRow(Base):
    __tablename__ = "nodes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_id: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(253), index=True)
    hostname: Mapped[str] = mapped_column(String(253))
    labels: Mapped[dict[str, str]] = mapped_column(JSON)
    interval_seconds: Mapped[float] = mapped_column(Float)
    first_seen: Mapped[float] = mapped_column(Float)
    last_push: Mapped[float] = mapped_column(Float, doc="server time of the last accepted batch")
    last_batch_ts: Mapped[float] = mapped_column(Float, doc="agent time of the newest batch")
    last_seq: Mapped[int] = mapped_column(BigInteger)
    host_facts: Mapped[dict[str, Any]] = mapped_column(JSON)
    driver_version: Mapped[str | None] = mapped_column(String(64))
    gpu_status: Mapped[str] = mapped_column(String(256))


class GpuRow(Base):
    __tablename__ = "gpus"
    __table_args__ = (UniqueConstraint("node_pk", "uuid"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_pk: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    gpu_index: Mapped[int] = mapped_column(Integer)
    uuid: Mapped[str] = mapped_column(String(256))
    model: Mapped[str] = mapped_column(String(256))
    pci_bus_id: Mapped[str] = mapped_column(String(256))
    serial: Mapped[str | None] = mapped_column(String(256))
    vbios_version: Mapped[str | None] = mapped_column(String(256))
    memory_total_bytes: Mapped[int | None] = mapped_column(BigInteger)
    first_seen: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float)


class SeriesRow(Base):
    """One series. ``last_seen_ms`` is the server time of its last write, kept to within a
    fraction of the active-series window (a write updates it only when it is older than that),
    so that the lifecycle (``server/storage/lifecycle.py``) can delete series nobody writes."""

    __tablename__ = "series"
    __table_args__ = (
        UniqueConstraint("node_pk", "metric", "labels"),
        Index("ix_series_metric", "metric"),
        Index("ix_series_last_seen_ms", "last_seen_ms"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_pk: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    metric: Mapped[str] = mapped_column(String(200))
    labels: Mapped[str] = mapped_column(Text, doc="canonical JSON object")
    last_seen_ms: Mapped[int] = mapped_column(BigInteger, server_default="0")


class HeadChunkRow(Base):
    """One batch's samples, until its window is compacted into blocks.

    ``payload`` is ``n`` series ids (uint32, ascending) followed by their ``n`` values
    (float64), little-endian (``server/storage/head.py``). A rowid table on SQLite: its rows
    are kilobytes, which a WITHOUT ROWID b-tree stores twice as slowly (measured).
    """

    __tablename__ = "head_chunks"

    node_pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    ts_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    n: Mapped[int] = mapped_column(Integer)
    payload: Mapped[bytes] = mapped_column(LargeBinary)


class BlockRow(Base):
    """One series' data of one tier over one closed window (``end_ms - window``, ``end_ms``].

    ``payload`` is ``server/storage/blocks.py``'s encoding: raw samples (tier 0) or rollup
    bucket columns (tiers 1 and 2); ``count`` is the number of samples or buckets in it. A
    rowid table on SQLite, the primary key an index beside it: rows of hundreds of bytes
    inserted all over the key space leave a WITHOUT ROWID b-tree's pages half empty (migration
    0012 measured 60 % of its pages unused).
    """

    __tablename__ = "blocks"
    __table_args__ = (Index("ix_blocks_tier_end_ms", "tier", "end_ms"),)

    series_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    tier: Mapped[int] = mapped_column(SmallInteger, primary_key=True)
    end_ms: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    count: Mapped[int] = mapped_column(Integer)
    payload: Mapped[bytes] = mapped_column(LargeBinary)


class IngestedBatchRow(Base):
    """Recently accepted batches, to acknowledge a re-sent batch without storing it twice."""

    __tablename__ = "ingested_batches"
    __table_args__ = {"sqlite_with_rowid": False}

    node_pk: Mapped[int] = mapped_column(Integer, primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    batch_ts: Mapped[float] = mapped_column(Float)
    received_at: Mapped[float] = mapped_column(Float, index=True)


class GpuEventRow(Base):
    """GPU health events (XIDs) as the agents report them, each stored once.

    ``event_key`` is a digest of the event's content: a batch re-sent after its idempotency
    record expired still cannot store an event twice.
    """

    __tablename__ = "gpu_events"
    __table_args__ = (
        UniqueConstraint("node_pk", "event_key"),
        Index("ix_gpu_events_time", "time"),
        Index("ix_gpu_events_node_pk_time", "node_pk", "time"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    node_pk: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    event_key: Mapped[str] = mapped_column(String(64), doc="SHA-256 of the event, hex")
    time: Mapped[float] = mapped_column(Float, doc="agent time the event was seen")
    kind: Mapped[str] = mapped_column(String(16))
    source: Mapped[str] = mapped_column(String(16))
    code: Mapped[int] = mapped_column(Integer)
    gpu_index: Mapped[int | None] = mapped_column(Integer)
    uuid: Mapped[str | None] = mapped_column(String(256))
    pci_bus_id: Mapped[str | None] = mapped_column(String(256))
    pid: Mapped[int | None] = mapped_column(BigInteger)
    message: Mapped[str] = mapped_column(String(1024))
    mnemonic: Mapped[str] = mapped_column(String(256))
    severity: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(256))


class JobRow(Base):
    """One job (job id + scheduler) across all its nodes and GPUs: identity and totals.

    Totals are the sums of the job's ``job_gpus`` rows, kept here so job lists need no
    aggregation. ``sm_percent_seconds`` is the integral of SM utilization over GPU time (percent
    x seconds) for the ``sm_seconds`` in which utilization was known; their ratio is the
    time-weighted average. The running/finished state is derived from ``last_seen`` at read time.
    """

    __tablename__ = "jobs"
    __table_args__ = (
        UniqueConstraint("job_id", "scheduler"),
        Index("ix_jobs_last_seen", "last_seen"),
        Index("ix_jobs_user_name", "user_name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_id: Mapped[str] = mapped_column(String(256))
    scheduler: Mapped[str] = mapped_column(String(32))
    user_name: Mapped[str] = mapped_column(String(256))
    first_seen: Mapped[float] = mapped_column(Float, doc="agent time of the first batch")
    last_seen: Mapped[float] = mapped_column(Float, doc="agent time of the newest batch")
    gpu_seconds: Mapped[float] = mapped_column(Float)
    idle_seconds: Mapped[float] = mapped_column(Float)
    energy_joules: Mapped[float] = mapped_column(Float)
    sm_percent_seconds: Mapped[float] = mapped_column(Float)
    sm_seconds: Mapped[float] = mapped_column(Float)
    peak_memory_bytes: Mapped[int] = mapped_column(BigInteger)
    peak_sm_percent: Mapped[float | None] = mapped_column(Float)


class JobGpuRow(Base):
    """One job on one GPU of one node: totals, and the agent's current counting run.

    ``run_*`` hold the newest cumulative values of the run that began at ``run_since``; the
    next report of that run adds only its increase over them.
    """

    __tablename__ = "job_gpus"
    __table_args__ = (
        UniqueConstraint("job_pk", "node_pk", "uuid"),
        Index("ix_job_gpus_node_pk", "node_pk"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    job_pk: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    node_pk: Mapped[int] = mapped_column(ForeignKey("nodes.id", ondelete="CASCADE"))
    uuid: Mapped[str] = mapped_column(String(256))
    gpu_index: Mapped[int] = mapped_column(Integer)
    step: Mapped[str] = mapped_column(String(256))
    first_seen: Mapped[float] = mapped_column(Float)
    last_seen: Mapped[float] = mapped_column(Float)
    run_since: Mapped[float] = mapped_column(Float)
    run_gpu_seconds: Mapped[float] = mapped_column(Float)
    run_idle_seconds: Mapped[float] = mapped_column(Float)
    run_energy_joules: Mapped[float] = mapped_column(Float)
    gpu_seconds: Mapped[float] = mapped_column(Float)
    idle_seconds: Mapped[float] = mapped_column(Float)
    energy_joules: Mapped[float] = mapped_column(Float)
    sm_percent_seconds: Mapped[float] = mapped_column(Float)
    sm_seconds: Mapped[float] = mapped_column(Float)
    peak_memory_bytes: Mapped[int] = mapped_column(BigInteger)
    peak_sm_percent: Mapped[float | None] = mapped_column(Float)


class CredentialRow(Base):
    """An API token issued by the server (``dcmon token create``, enrollment, rotation).

    Only the token's SHA-256 is kept; ``token_id`` is its public name. A token authenticates
    while ``revoked_at`` is unset and ``expires_at`` (Unix seconds) unset or in the future.
    ``replaces`` names the token a rotation replaces: that one stays valid until this one is
    first used. Config-file tokens are not stored here.
    """

    __tablename__ = "credentials"
    __table_args__ = (Index("ix_credentials_node_id", "node_id"),)

    token_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    role: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64), unique=True, doc="SHA-256 of the token, hex")
    node_id: Mapped[str | None] = mapped_column(String(32), doc="the node a node token writes")
    name: Mapped[str] = mapped_column(String(256), doc="what the token is for, free text")
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str | None] = mapped_column(String(64), doc="token id of the issuer")
    expires_at: Mapped[float | None] = mapped_column(Float)
    revoked_at: Mapped[float | None] = mapped_column(Float)
    replaces: Mapped[str | None] = mapped_column(String(32))


class AlertStateRow(Base):
    """One alert of a rule, as the evaluator left it after its last round (``server/alerting``).

    ``alert_key`` is a hash of group, rule and labels; ``data`` the alert as JSON
    (``server.rules.state.Alert.to_dict``: active since, fired, resolved, keep-firing since,
    last sent, valid until). Written by the leader after each round, read when a server
    becomes the leader, so a restart or failover keeps ``for`` timers and notification state.
    """

    __tablename__ = "alert_state"
    __table_args__ = (Index("ix_alert_state_group_key", "group_key"),)

    alert_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    group_key: Mapped[str] = mapped_column(Text, doc="'<file>;<group name>'")
    rule_key: Mapped[str] = mapped_column(Text, doc="the rule's name and labels (ruleset.py)")
    data: Mapped[str] = mapped_column(Text)
    updated_ms: Mapped[int] = mapped_column(BigInteger)
