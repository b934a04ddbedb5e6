"""Folding job usage into the jobs rows: the write half of the jobs store.

Stage: ingest -> storage (jobs). Per pairing (node, job, GPU) the row is read, advanced with
``accounting.advance`` and written back; the caller serialises writes of one node. The job's
totals are updated with relative SQL (``x = x + increase``, peaks by ``CASE``) so that batches
of other nodes running the same job, even on other server replicas, cannot lose each other's
increases. Folding the same reports twice changes nothing (see ``accounting``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, String, Table, case, literal, or_, select, update

from agent.wire.schema import JobGpuUsage
from server.jobs.accounting import Increase, RunState, advance
from server.storage.tables import JobGpuRow, JobRow

_jobs: Table = JobRow.__table__  # type: ignore[assignment]
_job_gpus: Table = JobGpuRow.__table__  # type: ignore[assignment]

JobKey = tuple[str, str]


def write_usages(
    conn: Connection, node_pk: int, batch_ts: float, usages: Sequence[JobGpuUsage]
) -> None:
    """Fold usage reports of one node's batch (taken at ``batch_ts``) into the jobs rows."""
    if not usages:
        return
    job_pks = _ensure_jobs(conn, usages, batch_ts)
    pairings = {
        (row.job_pk, row.uuid): row
        for row in conn.execute(
            select(_job_gpus).where(
                _job_gpus.c.node_pk == node_pk,
                _job_gpus.c.job_pk.in_(sorted(set(job_pks.values()))),
            )
        )
    }
    per_job: dict[int, _JobChange] = {}
    for usage in usages:
        job_pk = job_pks[(usage.job_id, usage.scheduler)]
        change = per_job.setdefault(job_pk, _JobChange())
        change.add(usage, _fold_pairing(conn, job_pk, node_pk, batch_ts, usage, pairings))
    for job_pk, change in per_job.items():
        _update_job(conn, job_pk, batch_ts, change)


@dataclass
class _JobChange:
    increase: Increase = field(default_factory=Increase)
    peak_memory_bytes: int = 0
    peak_sm_percent: float | None = None
    user: str = ""

    def add(self, usage: JobGpuUsage, increase: Increase) -> None:
        self.increase = self.increase + increase
        self.peak_memory_bytes = max(self.peak_memory_bytes, usage.memory_used_bytes)
        if usage.sm_percent is not None:
            self.peak_sm_percent = max(self.peak_sm_percent or 0.0, usage.sm_percent)
        self.user = self.user or usage.user


def _ensure_jobs(
    conn: Connection, usages: Iterable[JobGpuUsage], batch_ts: float
) -> dict[JobKey, int]:
    """Returns: (job id, scheduler) -> job row id, inserting the jobs not seen before."""
    users: dict[JobKey, str] = {}
    for usage in usages:
        key = (usage.job_id, usage.scheduler)
        users[key] = users.get(key) or usage.user
    pks = _job_pks(conn, users)
    missing = [key for key in users if key not in pks]
    if missing:
        conn.execute(
            _jobs.insert(),
            [
                {
                    "job_id": job_id,
                    "scheduler": scheduler,
                    "user_name": users[(job_id, scheduler)],
                    "first_seen": batch_ts,
                    "last_seen": batch_ts,
                    "gpu_seconds": 0.0,
                    "idle_seconds": 0.0,
                    "energy_joules": 0.0,
                    "sm_percent_seconds": 0.0,
                    "sm_seconds": 0.0,
                    "peak_memory_bytes": 0,
                    "peak_sm_percent": None,
                }
                for job_id, scheduler in missing
            ],
        )
        pks = _job_pks(conn, users)
    return pks


def _job_pks(conn: Connection, keys: Iterable[JobKey]) -> dict[JobKey, int]:
    wanted = set(keys)
    rows = conn.execute(
        select(_jobs.c.id, _jobs.c.job_id, _jobs.c.scheduler).where(
            _jobs.c.job_id.in_(sorted({job_id for job_id, _ in wanted}))
        )
    )
    return {
        (row.job_id, row.scheduler): row.id for row in rows if (row.job_id, row.scheduler) in wanted
    }


def _fold_pairing(
    conn: Connection,
    job_pk: int,
    node_pk: int,
    batch_ts: float,
    usage: JobGpuUsage,
    pairings: dict[tuple[int, str], Any],
) -> Increase:
    """Advance one (job, node, GPU) row by one report. Returns: what it added."""
    row = pairings.get((job_pk, usage.uuid))
    run = (
        None
        if row is None
        else RunState(
            row.run_since, row.run_gpu_seconds, row.run_idle_seconds, row.run_energy_joules
        )
    )
    new_run, increase = advance(run, usage)
    values: dict[str, Any] = {
        "run_since": new_run.since,
        "run_gpu_seconds": new_run.gpu_seconds,
        "run_idle_seconds": new_run.idle_seconds,
        "run_energy_joules": new_run.energy_joules,
    }
    if row is None:
        conn.execute(
            _job_gpus.insert().values(
                job_pk=job_pk,
                node_pk=node_pk,
                uuid=usage.uuid,
                gpu_index=usage.gpu_index,
                step=usage.step,
                first_seen=batch_ts,
                last_seen=batch_ts,
                gpu_seconds=increase.gpu_seconds,
                idle_seconds=increase.idle_seconds,
                energy_joules=increase.energy_joules,
                sm_percent_seconds=increase.sm_percent_seconds,
                sm_seconds=increase.sm_seconds,
                peak_memory_bytes=usage.memory_used_bytes,
                peak_sm_percent=usage.sm_percent,
                **values,
            )
        )
        return increase
    newest = batch_ts >= row.last_seen
    peak_sm = row.peak_sm_percent
    if usage.sm_percent is not None:
        peak_sm = usage.sm_percent if peak_sm is None else max(peak_sm, usage.sm_percent)
    values.update(
        gpu_index=usage.gpu_index if newest else row.gpu_index,
        step=usage.step if newest else row.step,
        first_seen=min(row.first_seen, batch_ts),
        last_seen=max(row.last_seen, batch_ts),
        gpu_seconds=row.gpu_seconds + increase.gpu_seconds,
        idle_seconds=row.idle_seconds + increase.idle_seconds,
        energy_joules=row.energy_joules + increase.energy_joules,
        sm_percent_seconds=row.sm_percent_seconds + increase.sm_percent_seconds,
        sm_seconds=row.sm_seconds + increase.sm_seconds,
        peak_memory_bytes=max(row.peak_memory_bytes, usage.memory_used_bytes),
        peak_sm_percent=peak_sm,
    )
    conn.execute(update(_job_gpus).where(_job_gpus.c.id == row.id).values(values))
    return increase


def _update_job(conn: Connection, job_pk: int, batch_ts: float, change: _JobChange) -> None:
    c = _jobs.c
    ts = literal(batch_ts)
    values: dict[str, Any] = {
        "first_seen": case((c.first_seen > ts, ts), else_=c.first_seen),
        "last_seen": case((c.last_seen < ts, ts), else_=c.last_seen),
        "gpu_seconds": c.gpu_seconds + change.increase.gpu_seconds,
        "idle_seconds": c.idle_seconds + change.increase.idle_seconds,
        "energy_joules": c.energy_joules + change.increase.energy_joules,
        "sm_percent_seconds": c.sm_percent_seconds + change.increase.sm_percent_seconds,
        "sm_seconds": c.sm_seconds + change.increase.sm_seconds,
        "peak_memory_bytes": case(
            (c.peak_memory_bytes < change.peak_memory_bytes, change.peak_memory_bytes),
            else_=c.peak_memory_bytes,
        ),
    }
    if change.peak_sm_percent is not None:
        peak = literal(change.peak_sm_percent)
        values["peak_sm_percent"] = case(
            (or_(c.peak_sm_percent.is_(None), c.peak_sm_percent < peak), peak),
            else_=c.peak_sm_percent,
        )
    if change.user:
        user = literal(change.user, String())
        values["user_name"] = case(
            (or_(c.user_name == "", c.last_seen <= ts), user), else_=c.user_name
        )
    conn.execute(update(_jobs).where(c.id == job_pk).values(values))
