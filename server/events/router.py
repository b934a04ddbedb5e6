"""GET /api/v1/events: GPU health events, newest first, filtered by node, GPU, code, time."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from server.auth import READ
from server.deps import ServicesDep
from server.events.store import EventQuery, EventRecord
from server.params import parse_range

router = APIRouter(tags=["events"], dependencies=[Depends(READ)])

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


class EventOut(BaseModel):
    node: str
    node_id: str
    time: float
    kind: str
    source: str
    code: int
    severity: str
    action: str
    mnemonic: str
    message: str
    gpu_index: int | None
    uuid: str | None
    pci_bus_id: str | None
    pid: int | None


class EventList(BaseModel):
    events: list[EventOut]


@router.get(
    "/api/v1/events",
    response_model=EventList,
    responses={422: {"description": "A parameter is not valid; the message names it"}},
)
async def list_events(
    services: ServicesDep,
    node: Annotated[str | None, Query(description="Node name or node id")] = None,
    uuid: Annotated[str | None, Query(description="GPU UUID")] = None,
    code: Annotated[int | None, Query(ge=0, le=65_535, description="XID number")] = None,
    severity: Literal["info", "warning", "critical"] | None = None,
    start: Annotated[str | None, Query(description="Unix seconds or RFC 3339")] = None,
    end: Annotated[str | None, Query(description="Unix seconds or RFC 3339")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> EventList:
    """GPU events (XIDs) as the agents reported them, newest first."""
    start_s, end_s = parse_range(start, end)
    query = EventQuery(limit, node, uuid, code, severity, start_s, end_s)
    records = await run_in_threadpool(services.events.events, query)
    return EventList(events=[_out(record) for record in records])


def _out(record: EventRecord) -> EventOut:
    event = record.event
    return EventOut(
        node=record.node_name,
        node_id=record.node_id,
        time=event.time,
        kind=event.kind,
        source=event.source,
        code=event.code,
        severity=event.severity,
        action=event.action,
        mnemonic=event.mnemonic,
        message=event.message,
        gpu_index=event.gpu_index,
        uuid=event.uuid,
        pci_bus_id=event.pci_bus_id,
        pid=event.pid,
    )
