"""GET /api/v1/jobs and /api/v1/jobs/{job_id}: job accounting, per job and per GPU."""

from __future__ import annotations

from typing import Annotated, Any, get_args

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from agent.wire.schema import JobGpuUsage
from server.auth import READ
from server.deps import ServicesDep
from server.errors import ApiError
from server.jobs.store import JobQuery, JobRecord, State, Usage
from server.params import parse_range

router = APIRouter(tags=["jobs"], dependencies=[Depends(READ)])

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
SCHEDULERS = frozenset(get_args(JobGpuUsage.model_fields["scheduler"].annotation))
JOULES_PER_KWH = 3.6e6
SECONDS_PER_HOUR = 3600.0


class UsageOut(BaseModel):
    gpu_hours: float
    allocated_idle_gpu_hours: float
    energy_joules: float
    energy_kwh: float
    avg_sm_percent: float | None
    peak_sm_percent: float | None
    peak_memory_bytes: int


class JobGpuOut(UsageOut):
    node: str
    node_id: str
    uuid: str
    gpu_index: int
    step: str
    state: State
    first_seen: float
    last_seen: float


class JobOut(UsageOut):
    job_id: str
    scheduler: str
    user: str
    state: State
    first_seen: float
    last_seen: float
    nodes: list[str]
    gpus: list[str]


class JobDetail(JobOut):
    per_gpu: list[JobGpuOut]


class JobList(BaseModel):
    jobs: list[JobOut]


_ERRORS: dict[int | str, dict[str, Any]] = {
    422: {"description": "A parameter is not valid; the message names it"}
}


@router.get("/api/v1/jobs", response_model=JobList, responses=_ERRORS)
async def list_jobs(
    services: ServicesDep,
    user: str | None = None,
    node: Annotated[str | None, Query(description="Node name or node id")] = None,
    state: State | None = None,
    scheduler: str | None = None,
    start: Annotated[str | None, Query(description="Unix seconds or RFC 3339")] = None,
    end: Annotated[str | None, Query(description="Unix seconds or RFC 3339")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> JobList:
    """Jobs seen on GPUs, most recently active first; start/end select jobs active in between.

    A job is running while one of its GPUs was reported within max(3 push intervals of its
    node, 60 s), finished after.
    """
    _check_scheduler(scheduler)
    start_s, end_s = parse_range(start, end)
    query = JobQuery(limit, user, node, scheduler, state, start_s, end_s)
    records = await run_in_threadpool(services.jobs.jobs, query, services.clock())
    return JobList(jobs=[_job(record) for record in records])


@router.get(
    "/api/v1/jobs/{job_id:path}",
    response_model=JobDetail,
    responses={
        **_ERRORS,
        404: {"description": "No job with this id (and scheduler)"},
        409: {"description": "The id is used by jobs of several schedulers; pass scheduler"},
    },
)
async def get_job(
    job_id: str,
    services: ServicesDep,
    scheduler: Annotated[str | None, Query(description="Needed when ids collide")] = None,
) -> JobDetail:
    """One job with its per-GPU breakdown."""
    _check_scheduler(scheduler)
    records = await run_in_threadpool(services.jobs.job, job_id, scheduler, services.clock())
    if not records:
        where = f" of scheduler {scheduler!r}" if scheduler else ""
        raise ApiError(404, "not_found", f"no job {job_id!r}{where}")
    if len(records) > 1:
        schedulers = ", ".join(record.scheduler for record in records)
        raise ApiError(
            409,
            "ambiguous_job",
            f"job id {job_id!r} is used by several schedulers ({schedulers}); "
            "pass scheduler=... to pick one",
        )
    record = records[0]
    return JobDetail(
        **_job(record).model_dump(),
        per_gpu=[
            JobGpuOut(
                **_usage(gpu.usage).model_dump(),
                node=gpu.node_name,
                node_id=gpu.node_id,
                uuid=gpu.uuid,
                gpu_index=gpu.gpu_index,
                step=gpu.step,
                state="running" if gpu.running else "finished",
                first_seen=gpu.first_seen,
                last_seen=gpu.last_seen,
            )
            for gpu in record.gpus
        ],
    )


def _check_scheduler(scheduler: str | None) -> None:
    if scheduler is not None and scheduler not in SCHEDULERS:
        raise ApiError(
            422,
            "invalid_parameter",
            f"scheduler: {scheduler!r} is not one of {', '.join(sorted(SCHEDULERS))}",
        )


def _usage(usage: Usage) -> UsageOut:
    return UsageOut(
        gpu_hours=usage.gpu_seconds / SECONDS_PER_HOUR,
        allocated_idle_gpu_hours=usage.idle_seconds / SECONDS_PER_HOUR,
        energy_joules=usage.energy_joules,
        energy_kwh=usage.energy_joules / JOULES_PER_KWH,
        avg_sm_percent=usage.avg_sm_percent,
        peak_sm_percent=usage.peak_sm_percent,
        peak_memory_bytes=usage.peak_memory_bytes,
    )


def _job(record: JobRecord) -> JobOut:
    return JobOut(
        **_usage(record.usage).model_dump(),
        job_id=record.job_id,
        scheduler=record.scheduler,
        user=record.user,
        state="running" if record.running else "finished",
        first_seen=record.first_seen,
        last_seen=record.last_seen,
        nodes=sorted({gpu.node_name for gpu in record.gpus}),
        gpus=sorted({gpu.uuid for gpu in record.gpus}),
    )
