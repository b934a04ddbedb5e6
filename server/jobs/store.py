"""The jobs store: fold job-GPU usage reports into per-job totals; read jobs back.

Stage: ingest -> storage (jobs) -> api. Writes (``fold``) are idempotent: folding a batch's
usage twice changes nothing, so a batch that is re-sent, replayed out of order or recognised as
a duplicate can always be folded again.

A job is running while one of its GPUs was reported within max(3 push intervals of its node,
60 s) of now, and finished after.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy import ColumnElement, Connection, Engine, Table, case, or_, select

from server.storage.tables import JobGpuRow, JobRow, NodeRow

RUNNING_INTERVALS = 3.0
RUNNING_MIN_SECONDS = 60.0

_jobs: Table = JobRow.__table__  # type: ignore[assignment]
_job_gpus: Table = JobGpuRow.__table__  # type: ignore[assignment]
_nodes: Table = NodeRow.__table__  # type: ignore[assignment]

State = Literal["running", "finished"]


@dataclass(frozen=True)
class JobQuery:
    """Filters of a job list; ``None`` means any. Jobs overlap [start, end] when both given."""

    limit: int
    user: str | None = None
    node: str | None = None
    scheduler: str | None = None
    state: State | None = None
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True)
class Usage:
    """Totals of a job or of one of its GPUs."""

    gpu_seconds: float
    idle_seconds: float
    energy_joules: float
    sm_percent_seconds: float
    sm_seconds: float
    peak_memory_bytes: int
    peak_sm_percent: float | None

    @property
    def avg_sm_percent(self) -> float | None:
        """Returns: SM utilization averaged over the GPU time it was known for, or None."""
        return self.sm_percent_seconds / self.sm_seconds if self.sm_seconds > 0 else None


@dataclass(frozen=True)
class JobGpuRecord:
    node_name: str
    node_id: str
    uuid: str
    gpu_index: int
    step: str
    first_seen: float
    last_seen: float
    running: bool
    usage: Usage


@dataclass(frozen=True)
class JobRecord:
    pk: int
    job_id: str
    scheduler: str
    user: str
    first_seen: float
    last_seen: float
    running: bool
    usage: Usage
    gpus: list[JobGpuRecord] = field(default_factory=list)


class JobStore:
    """Job accounting rows, read by the jobs API (ingest writes them with ``fold.write_usages``
    inside each batch's transaction)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def jobs(self, query: JobQuery, now: float) -> list[JobRecord]:
        """Returns: matching jobs, newest activity first, each with its GPUs."""
        running = _job_running(now)
        statement = select(_jobs, running.label("running"))
        conditions: list[ColumnElement[bool]] = []
        if query.user is not None:
            conditions.append(_jobs.c.user_name == query.user)
        if query.scheduler is not None:
            conditions.append(_jobs.c.scheduler == query.scheduler)
        if query.node is not None:
            conditions.append(_on_node(query.node))
        if query.state is not None:
            conditions.append(running if query.state == "running" else ~running)
        if query.start is not None:
            conditions.append(_jobs.c.last_seen >= query.start)
        if query.end is not None:
            conditions.append(_jobs.c.first_seen <= query.end)
        statement = (
            statement.where(*conditions)
            .order_by(_jobs.c.last_seen.desc(), _jobs.c.id.desc())
            .limit(query.limit)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(statement).all()
            gpus = _gpus_of(conn, [row.id for row in rows], now)
        return [_job_record(row, gpus.get(row.id, [])) for row in rows]

    def job(self, job_id: str, scheduler: str | None, now: float) -> list[JobRecord]:
        """Returns: the jobs with this id (one per scheduler, unless ``scheduler`` is given)."""
        conditions = [_jobs.c.job_id == job_id]
        if scheduler is not None:
            conditions.append(_jobs.c.scheduler == scheduler)
        statement = (
            select(_jobs, _job_running(now).label("running"))
            .where(*conditions)
            .order_by(_jobs.c.scheduler)
        )
        with self._engine.connect() as conn:
            rows = conn.execute(statement).all()
            gpus = _gpus_of(conn, [row.id for row in rows], now)
        return [_job_record(row, gpus.get(row.id, [])) for row in rows]


# -- reads ---------------------------------------------------------------------------------


def _gpu_running(now: float) -> ColumnElement[bool]:
    """A job-GPU row (joined with its node) is running: reported within the node's window."""
    span = _nodes.c.interval_seconds * RUNNING_INTERVALS
    window = case((span > RUNNING_MIN_SECONDS, span), else_=RUNNING_MIN_SECONDS)
    return _job_gpus.c.last_seen + window >= now


def _job_running(now: float) -> ColumnElement[bool]:
    """A job is running while one of its GPUs is."""
    return (
        select(_job_gpus.c.id)
        .join(_nodes, _nodes.c.id == _job_gpus.c.node_pk)
        .where(_job_gpus.c.job_pk == _jobs.c.id, _gpu_running(now))
        .exists()
    )


def _on_node(node: str) -> ColumnElement[bool]:
    """The job used a GPU of the node named ``node`` (or with that node id)."""
    return (
        select(_job_gpus.c.id)
        .join(_nodes, _nodes.c.id == _job_gpus.c.node_pk)
        .where(
            _job_gpus.c.job_pk == _jobs.c.id,
            or_(_nodes.c.name == node, _nodes.c.node_id == node),
        )
        .exists()
    )


def _gpus_of(conn: Connection, job_pks: Sequence[int], now: float) -> dict[int, list[JobGpuRecord]]:
    if not job_pks:
        return {}
    rows = conn.execute(
        select(
            _job_gpus,
            _nodes.c.name.label("node_name"),
            _nodes.c.node_id.label("node_key"),
            _gpu_running(now).label("running"),
        )
        .join(_nodes, _nodes.c.id == _job_gpus.c.node_pk)
        .where(_job_gpus.c.job_pk.in_(job_pks))
        .order_by(_nodes.c.name, _job_gpus.c.gpu_index, _job_gpus.c.uuid)
    )
    result: dict[int, list[JobGpuRecord]] = {}
    for row in rows:
        result.setdefault(row.job_pk, []).append(
            JobGpuRecord(
                node_name=row.node_name,
                node_id=row.node_key,
                uuid=row.uuid,
                gpu_index=row.gpu_index,
                step=row.step,
                first_seen=row.first_seen,
                last_seen=row.last_seen,
                running=bool(row.running),
                usage=_usage(row),
            )
        )
    return result


def _usage(row: Any) -> Usage:
    return Usage(
        gpu_seconds=row.gpu_seconds,
        idle_seconds=row.idle_seconds,
        energy_joules=row.energy_joules,
        sm_percent_seconds=row.sm_percent_seconds,
        sm_seconds=row.sm_seconds,
        peak_memory_bytes=row.peak_memory_bytes,
        peak_sm_percent=row.peak_sm_percent,
    )


def _job_record(row: Any, gpus: list[JobGpuRecord]) -> JobRecord:
    return JobRecord(
        pk=row.id,
        job_id=row.job_id,
        scheduler=row.scheduler,
        user=row.user_name,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
        running=bool(row.running),
        usage=_usage(row),
        gpus=gpus,
    )
