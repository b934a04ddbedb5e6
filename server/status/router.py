"""GET /api/v1/storage: what the tiers hold, how compact they are, their retention, and whether
this replica is the maintenance leader."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from server.auth import READ
from server.deps import ServicesDep
from server.storage.stats import storage_figures

router = APIRouter(tags=["status"], dependencies=[Depends(READ)])


class HeadOut(BaseModel):
    rows: int
    samples: int
    bytes: int


class TierOut(BaseModel):
    blocks: int
    entries: int
    bytes: int
    bytes_per_entry: float | None
    bucket_seconds: float | None
    window_seconds: float
    retention_seconds: float


class StorageOut(BaseModel):
    backend: str
    head: HeadOut
    tiers: dict[str, TierOut]
    database_bytes: int | None
    series: int
    leader: bool


@router.get("/api/v1/storage", response_model=StorageOut)
async def storage(services: ServicesDep) -> StorageOut:
    """Rows, entries (samples or buckets) and bytes per tier; scans the blocks table."""
    plan = services.plan
    figures = await run_in_threadpool(storage_figures, services.store.engine, plan)
    return StorageOut(
        backend=services.store.engine.dialect.name,
        head=HeadOut(
            rows=figures.head_rows, samples=figures.head_samples, bytes=figures.head_bytes
        ),
        tiers={
            tier.name: TierOut(
                blocks=figures.tiers[tier.name].blocks,
                entries=figures.tiers[tier.name].entries,
                bytes=figures.tiers[tier.name].bytes,
                bytes_per_entry=figures.tiers[tier.name].bytes_per_entry,
                bucket_seconds=None if tier.bucket_ms is None else tier.bucket_ms / 1000,
                window_seconds=tier.window_ms / 1000,
                retention_seconds=tier.retention_ms / 1000,
            )
            for tier in plan.all
        },
        database_bytes=figures.database_bytes,
        series=len(services.store.index),
        leader=services.leader.is_leader,
    )
