"""The benchmark tables (migration 0009): requests, the runs they produced, per GPU and figure.

Declared on the storage ``Base`` so one metadata describes the whole schema; times are Unix
seconds. ``bench_requests`` holds one row per request (``requests.py``): ``open_node_id`` is the
node id while the request is open and NULL once it is final, and its unique constraint is what
keeps one open request per node across server replicas (NULLs never collide). ``deadline_at``
is when an open request expires if nothing more is heard: its ``expires_at`` while pending or
waiting, the last report plus the level's silence bound while running.

A final report's run is stored as one ``bench_runs`` row (the whole result tree as JSON), one
``bench_run_gpus`` row per device (whether that device passed) and one ``bench_figures`` row
per device and test, with its SKU verdict; ``gpu_key`` names a device across runs: its NVML
UUID, or ``<node>/cpu<index>`` for a CPU, which has none. ``time`` is the run's start on the
agent's clock. The ``(gpu_key, test, time)`` and ``(gpu_key, time)`` indexes serve "the latest
per GPU" and per-GPU history.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from server.storage.tables import Base


class BenchRequestRow(Base):
    __tablename__ = "bench_requests"
    __table_args__ = (
        UniqueConstraint("open_node_id"),
        Index("ix_bench_requests_node_id_created_at", "node_id", "created_at"),
        Index("ix_bench_requests_created_at", "created_at"),
        Index("ix_bench_requests_deadline_at", "deadline_at"),
    )

    request_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    node_id: Mapped[str] = mapped_column(String(32))
    node_name: Mapped[str] = mapped_column(String(253))
    open_node_id: Mapped[str | None] = mapped_column(String(32), doc="node_id while open")
    state: Mapped[str] = mapped_column(String(16))
    level: Mapped[str] = mapped_column(String(16))
    gpus: Mapped[list[int] | None] = mapped_column(JSON, doc="device indices; NULL: all")
    duration_s: Mapped[float | None] = mapped_column(Float, doc="the burn's duration")
    force: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[float] = mapped_column(Float)
    created_by: Mapped[str] = mapped_column(String(64), doc="token id of the admin")
    expires_at: Mapped[float] = mapped_column(Float, doc="not started after this")
    deadline_at: Mapped[float] = mapped_column(Float, doc="expires if nothing is heard by then")
    updated_at: Mapped[float] = mapped_column(Float)
    started_at: Mapped[float | None] = mapped_column(Float, doc="first running report")
    last_report_at: Mapped[float | None] = mapped_column(Float)
    finished_at: Mapped[float | None] = mapped_column(Float)
    cancel_requested: Mapped[bool] = mapped_column(Boolean)
    message: Mapped[str] = mapped_column(Text)
    progress: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class BenchRunRow(Base):
    __tablename__ = "bench_runs"
    __table_args__ = (
        UniqueConstraint("request_id"),
        Index("ix_bench_runs_node_id_started_at", "node_id", "started_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str | None] = mapped_column(
        ForeignKey("bench_requests.request_id", ondelete="CASCADE")
    )
    node_id: Mapped[str] = mapped_column(String(32))
    node_name: Mapped[str] = mapped_column(String(253))
    level: Mapped[str] = mapped_column(String(16))
    backend: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[float] = mapped_column(Float, doc="agent clock")
    duration_s: Mapped[float] = mapped_column(Float)
    passed: Mapped[bool] = mapped_column(Boolean)
    received_at: Mapped[float] = mapped_column(Float, doc="server clock")
    result: Mapped[dict[str, Any]] = mapped_column(JSON, doc="the BenchRun tree")


class BenchRunGpuRow(Base):
    __tablename__ = "bench_run_gpus"
    __table_args__ = (
        UniqueConstraint("run_id", "gpu_key"),
        Index("ix_bench_run_gpus_gpu_key_time", "gpu_key", "time"),
        Index("ix_bench_run_gpus_time", "time"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("bench_runs.id", ondelete="CASCADE"))
    gpu_key: Mapped[str] = mapped_column(String(320))
    node_id: Mapped[str] = mapped_column(String(32))
    node_name: Mapped[str] = mapped_column(String(253))
    gpu_index: Mapped[int] = mapped_column(Integer)
    gpu_uuid: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(16))
    device_name: Mapped[str] = mapped_column(String(256))
    sku: Mapped[str] = mapped_column(String(300))
    level: Mapped[str] = mapped_column(String(16))
    passed: Mapped[bool] = mapped_column(Boolean)
    time: Mapped[float] = mapped_column(Float)


class BenchFigureRow(Base):
    __tablename__ = "bench_figures"
    __table_args__ = (
        Index("ix_bench_figures_gpu_key_test_time", "gpu_key", "test", "time"),
        Index("ix_bench_figures_time", "time"),
        Index("ix_bench_figures_run_id", "run_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("bench_runs.id", ondelete="CASCADE"))
    gpu_key: Mapped[str] = mapped_column(String(320))
    node_id: Mapped[str] = mapped_column(String(32))
    node_name: Mapped[str] = mapped_column(String(253))
    gpu_index: Mapped[int] = mapped_column(Integer)
    gpu_uuid: Mapped[str | None] = mapped_column(String(64))
    device_name: Mapped[str] = mapped_column(String(256))
    sku: Mapped[str] = mapped_column(String(300))
    test: Mapped[str] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Float)
    unit: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(32), doc="the harness's: ok, fail, error, ...")
    verdict: Mapped[str] = mapped_column(String(16), doc="against the SKU: pass, warn, ...")
    basis: Mapped[str | None] = mapped_column(String(32))
    reference: Mapped[float | None] = mapped_column(Float)
    ratio: Mapped[float | None] = mapped_column(Float, doc="value / reference")
    reason: Mapped[str] = mapped_column(Text)
    time: Mapped[float] = mapped_column(Float)
