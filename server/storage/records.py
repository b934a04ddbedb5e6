"""Node and GPU records as the API reads them, straight from their tables.

Stage: storage -> nodes, history, exposition. Series are read from the in-memory index instead
(``series_index.py``); these are the few, small node-level tables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, Table, func, select

from server.storage.tables import GpuRow, NodeRow

_nodes: Table = NodeRow.__table__  # type: ignore[assignment]
_gpus: Table = GpuRow.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class NodeNaming:
    """What series selection needs of a node: its name (``instance``) and labels, and what
    the query source's staleness rules need (``server/query/staleness.py``)."""

    pk: int
    name: str
    labels: dict[str, str]
    node_id: str = ""
    interval_seconds: float = 0.0
    last_push: float = 0.0
    last_batch_ts: float = 0.0


@dataclass(frozen=True)
class NodeRecord:
    pk: int
    node_id: str
    name: str
    hostname: str
    labels: dict[str, str]
    interval_seconds: float
    first_seen: float
    last_push: float
    last_batch_ts: float
    last_seq: int
    host_facts: dict[str, Any]
    driver_version: str | None
    gpu_status: str


@dataclass(frozen=True)
class GpuRecord:
    index: int
    uuid: str
    model: str
    pci_bus_id: str
    serial: str | None
    vbios_version: str | None
    memory_total_bytes: int | None
    first_seen: float
    last_seen: float


@dataclass(frozen=True)
class SeriesRecord:
    id: int
    node_pk: int
    metric: str
    labels: dict[str, str]


def read_nodes(engine: Engine) -> list[NodeRecord]:
    with engine.connect() as conn:
        return [node_record(row) for row in conn.execute(select(_nodes).order_by(_nodes.c.name))]


def read_node_naming(engine: Engine) -> dict[int, NodeNaming]:
    """Returns: node pk -> name, labels and push timing, without the rest of the node rows
    (for every history, discovery and PromQL query, so it reads a few columns only)."""
    columns = (
        _nodes.c.id,
        _nodes.c.name,
        _nodes.c.labels,
        _nodes.c.node_id,
        _nodes.c.interval_seconds,
        _nodes.c.last_push,
        _nodes.c.last_batch_ts,
    )
    with engine.connect() as conn:
        rows = conn.execute(select(*columns))
        return {
            row.id: NodeNaming(
                row.id,
                row.name,
                dict(row.labels or {}),
                row.node_id,
                row.interval_seconds,
                row.last_push,
                row.last_batch_ts,
            )
            for row in rows
        }


def read_node(engine: Engine, key: str) -> NodeRecord | None:
    """Returns: the node whose name or node id is ``key`` (newest push wins on a name)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(_nodes)
            .where((_nodes.c.node_id == key) | (_nodes.c.name == key))
            .order_by(_nodes.c.last_push.desc())
            .limit(1)
        ).first()
    return None if row is None else node_record(row)


def read_gpus(engine: Engine, node_pk: int) -> list[GpuRecord]:
    with engine.connect() as conn:
        rows = conn.execute(
            select(_gpus).where(_gpus.c.node_pk == node_pk).order_by(_gpus.c.gpu_index)
        )
        return [gpu_record(row) for row in rows]


def read_gpus_by_node(engine: Engine) -> dict[int, list[GpuRecord]]:
    """Returns: node pk -> its GPUs by index, for every node, in one query."""
    with engine.connect() as conn:
        rows = conn.execute(select(_gpus).order_by(_gpus.c.node_pk, _gpus.c.gpu_index))
        result: dict[int, list[GpuRecord]] = {}
        for row in rows:
            result.setdefault(row.node_pk, []).append(gpu_record(row))
        return result


def read_gpu_counts(engine: Engine) -> dict[int, int]:
    """Returns: node pk -> number of GPUs in its inventory."""
    with engine.connect() as conn:
        rows = conn.execute(select(_gpus.c.node_pk, func.count()).group_by(_gpus.c.node_pk))
        return {int(node_pk): int(count) for node_pk, count in rows}


def gpu_record(row: Any) -> GpuRecord:
    return GpuRecord(
        index=row.gpu_index,
        uuid=row.uuid,
        model=row.model,
        pci_bus_id=row.pci_bus_id,
        serial=row.serial,
        vbios_version=row.vbios_version,
        memory_total_bytes=row.memory_total_bytes,
        first_seen=row.first_seen,
        last_seen=row.last_seen,
    )


def node_record(row: Any) -> NodeRecord:
    return NodeRecord(
        pk=row.id,
        node_id=row.node_id,
        name=row.name,
        hostname=row.hostname,
        labels=dict(row.labels or {}),
        interval_seconds=row.interval_seconds,
        first_seen=row.first_seen,
        last_push=row.last_push,
        last_batch_ts=row.last_batch_ts,
        last_seq=row.last_seq,
        host_facts=dict(row.host_facts or {}),
        driver_version=row.driver_version,
        gpu_status=row.gpu_status,
    )
