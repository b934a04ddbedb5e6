"""GET /api/v1/nodes and /api/v1/nodes/{node}: inventory, state and latest GPU readings."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from server.auth import READ
from server.deps import ServicesDep
from server.errors import ApiError
from server.nodes.service import NodeView, node_view, node_views

router = APIRouter(tags=["nodes"], dependencies=[Depends(READ)])


class NodeSummary(BaseModel):
    node_id: str
    name: str
    hostname: str
    labels: dict[str, str]
    state: str
    last_push: float
    first_seen: float
    interval_seconds: float
    agent_version: str
    cpu_count: int
    memory_total_bytes: int
    gpu_count: int
    driver_version: str | None
    gpu_status: str
    clock_skew_seconds: float | None = None


class GpuOut(BaseModel):
    index: int
    uuid: str
    model: str
    pci_bus_id: str
    serial: str | None
    vbios_version: str | None
    memory_total_bytes: int | None
    driver_version: str | None
    first_seen: float
    last_seen: float
    latest: dict[str, float]


class CollectorOut(BaseModel):
    name: str
    success: bool
    duration_seconds: float


class NodeDetail(NodeSummary):
    host: dict[str, Any]
    gpus: list[GpuOut]
    collectors: list[CollectorOut]


class NodeList(BaseModel):
    nodes: list[NodeSummary]


@router.get("/api/v1/nodes", response_model=NodeList)
async def list_nodes(services: ServicesDep) -> NodeList:
    """Every node the server knows, with its state (up: pushed within its staleness window)."""
    views = await run_in_threadpool(
        node_views, services.store, services.latest, services.policy, services.clock()
    )
    return NodeList(nodes=[_summary(view) for view in views])


@router.get(
    "/api/v1/nodes/{node}",
    response_model=NodeDetail,
    responses={404: {"description": "No node with this name or node id"}},
)
async def get_node(node: str, services: ServicesDep) -> NodeDetail:
    """One node by name or node id: host facts, GPUs (model, UUID, driver, last seen)."""
    view = await run_in_threadpool(
        node_view, services.store, services.latest, services.policy, node, services.clock()
    )
    if view is None:
        raise ApiError(404, "not_found", f"no node named {node!r}")
    summary = _summary(view)
    return NodeDetail(
        **summary.model_dump(),
        host=view.record.host_facts,
        gpus=[
            GpuOut(
                index=gpu.record.index,
                uuid=gpu.record.uuid,
                model=gpu.record.model,
                pci_bus_id=gpu.record.pci_bus_id,
                serial=gpu.record.serial,
                vbios_version=gpu.record.vbios_version,
                memory_total_bytes=gpu.record.memory_total_bytes,
                driver_version=view.record.driver_version,
                first_seen=gpu.record.first_seen,
                last_seen=gpu.record.last_seen,
                latest=gpu.latest,
            )
            for gpu in view.gpus
        ],
        collectors=_collectors(view),
    )


def _summary(view: NodeView) -> NodeSummary:
    record = view.record
    facts = record.host_facts
    return NodeSummary(
        node_id=record.node_id,
        name=record.name,
        hostname=record.hostname,
        labels=record.labels,
        state="up" if view.up else "down",
        last_push=record.last_push,
        first_seen=record.first_seen,
        interval_seconds=record.interval_seconds,
        agent_version=str(facts.get("agent_version", "")),
        cpu_count=int(facts.get("cpu_count", 0)),
        memory_total_bytes=int(facts.get("memory_total_bytes", 0)),
        gpu_count=view.gpu_count,
        driver_version=record.driver_version,
        gpu_status=record.gpu_status,
        clock_skew_seconds=view.clock_skew_seconds,
    )


def _collectors(view: NodeView) -> list[CollectorOut]:
    if view.latest is None:
        return []
    success = {
        labels["collector"]: value
        for labels, value in view.latest.families.get("node_scrape_collector_success", ())
    }
    duration = {
        labels["collector"]: value
        for labels, value in view.latest.families.get("node_scrape_collector_duration_seconds", ())
    }
    return [
        CollectorOut(name=name, success=value == 1.0, duration_seconds=duration.get(name, 0.0))
        for name, value in sorted(success.items())
    ]
