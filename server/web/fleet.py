"""The fleet page's model: every node and GPU rated, filtered, sorted and cut into pages.

Stage: nodes, latest values, recent events, alerts and hints -> (this) -> ``fleet.html``.
The whole fleet is rated in memory from the latest-values cache (no history read), so the page
costs the same whatever the chart range; only one page of node rows is rendered (``per_page``,
50 by default), so 1,000 nodes and 8,000 GPUs render as fast as 50.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from server.nodes.service import NodeView
from server.web.health import HEALTH_ORDER, Health, HealthReader, node_readings

SORTS = ("name", "health", "util", "power", "temp", "memory", "age")
STATES = ("all", "up", "down", "failing", "hot")
PER_PAGE_CHOICES = (25, 50, 100, 250, 500)
TOP_GPUS = 8


@dataclass(frozen=True)
class GpuRow:
    node: str
    index: int
    uuid: str
    model: str
    utilization_percent: float | None
    memory_used_bytes: float | None
    memory_total_bytes: float | None
    temperature_celsius: float | None
    power_watts: float | None
    health: Health


@dataclass(frozen=True)
class NodeRow:
    name: str
    up: bool
    age_seconds: float
    labels: dict[str, str]
    gpus: list[GpuRow]
    gpu_count: int
    load1: float | None
    memory_used_ratio: float | None
    health: str  # the worst of its GPUs' (or "unknown" when down, "healthy" without GPUs)

    def mean(self, key: str) -> float | None:
        values = [getattr(g, key) for g in self.gpus if getattr(g, key) is not None]
        return sum(values) / len(values) if values else None

    def total(self, key: str) -> float | None:
        values = [getattr(g, key) for g in self.gpus if getattr(g, key) is not None]
        return sum(values) if values else None

    @property
    def failing(self) -> list[GpuRow]:
        return [g for g in self.gpus if g.health.state in ("failing", "hot")]


@dataclass(frozen=True)
class FleetQuery:
    """The fleet table's filter, sort and page (the page's query string)."""

    search: str = ""
    state: str = "all"
    sort: str = "health"
    descending: bool = False
    page: int = 1
    per_page: int = 50

    @classmethod
    def parse(
        cls, q: str, state: str, sort: str, order: str, page: int, per_page: int
    ) -> FleetQuery:
        """Returns: the query, with unknown values replaced by the defaults (a page link that
        names an old sort still opens)."""
        return cls(
            search=q.strip()[:200],
            state=state if state in STATES else "all",
            sort=sort if sort in SORTS else "health",
            descending=order == "desc",
            page=max(1, page),
            per_page=per_page if per_page in PER_PAGE_CHOICES else 50,
        )


@dataclass(frozen=True)
class FleetModel:
    nodes_total: int
    nodes_up: int
    gpus_total: int
    gpus_by_health: dict[str, int]
    rows: list[NodeRow]  # this page's
    matched: int  # rows after the filter, over all pages
    pages: int
    query: FleetQuery
    busiest: list[GpuRow]
    idlest: list[GpuRow]
    power_watts: float
    mean_utilization_percent: float | None
    models: dict[str, int] = field(default_factory=dict)


def rows_of(views: Sequence[NodeView], reader: HealthReader, now: float) -> list[NodeRow]:
    """Returns: a row per node, its GPUs rated."""
    rows = []
    for view in views:
        latest = view.latest if view.up else None
        readings = node_readings(latest)
        gpus = []
        for gpu in view.gpus:
            got = gpu.latest
            health = reader.rate(
                view.record.name, readings, view.up, gpu.record.uuid, gpu.record.index,
                got.get("temperature_celsius"),
            )  # fmt: skip
            gpus.append(
                GpuRow(
                    node=view.record.name,
                    index=gpu.record.index,
                    uuid=gpu.record.uuid,
                    model=gpu.record.model,
                    utilization_percent=got.get("utilization_percent"),
                    memory_used_bytes=got.get("memory_used_bytes"),
                    memory_total_bytes=gpu.record.memory_total_bytes,
                    temperature_celsius=got.get("temperature_celsius"),
                    power_watts=got.get("power_watts"),
                    health=health,
                )
            )
        load1 = memory_ratio = None
        if latest is not None:
            load1 = latest.value("node_load1")
            total = latest.value("node_memory_MemTotal_bytes")
            available = latest.value("node_memory_MemAvailable_bytes")
            if total and available is not None:
                memory_ratio = 1.0 - available / total
        states = [g.health.state for g in gpus]
        worst = min(states, key=HEALTH_ORDER.__getitem__) if states else "healthy"
        rows.append(
            NodeRow(
                name=view.record.name,
                up=view.up,
                age_seconds=max(0.0, now - view.record.last_push),
                labels=dict(view.record.labels),
                gpus=gpus,
                gpu_count=max(view.gpu_count, len(gpus)),
                load1=load1,
                memory_used_ratio=memory_ratio,
                health=worst if view.up else ("failing" if worst == "failing" else "unknown"),
            )
        )
    return rows


def _matches(row: NodeRow, query: FleetQuery) -> bool:
    if query.state == "up" and not row.up:
        return False
    if query.state == "down" and row.up:
        return False
    if query.state == "failing" and row.health != "failing":
        return False
    if query.state == "hot" and row.health != "hot":
        return False
    if not query.search:
        return True
    needle = query.search.lower()
    haystack = [row.name, *row.labels.values(), *(f"{k}={v}" for k, v in row.labels.items())]
    haystack += [g.model for g in row.gpus] + [g.uuid for g in row.gpus]
    return any(needle in text.lower() for text in haystack)


def _sort_key(row: NodeRow, sort: str) -> tuple[float | str, str]:
    """Returns: the row's key for ``sort``; rows without the value sort first (ascending)."""
    temps = [g.temperature_celsius for g in row.gpus if g.temperature_celsius is not None]
    values: dict[str, float | str | None] = {
        "name": row.name,
        "health": HEALTH_ORDER.get(row.health, 9),
        "util": row.mean("utilization_percent"),
        "power": row.total("power_watts"),
        "temp": max(temps) if temps else None,
        "memory": row.memory_used_ratio,
        "age": row.age_seconds,
    }
    value = values.get(sort, row.age_seconds)
    return (-math.inf if value is None else value, row.name)


def fleet_model(rows: list[NodeRow], query: FleetQuery) -> FleetModel:
    """Returns: the page's model: fleet totals, then one page of the filtered, sorted rows."""
    matched = [row for row in rows if _matches(row, query)]
    matched.sort(key=lambda row: _sort_key(row, query.sort), reverse=query.descending)
    pages = max(1, math.ceil(len(matched) / query.per_page))
    page = min(query.page, pages)
    start = (page - 1) * query.per_page
    gpus = [g for row in rows for g in row.gpus]
    live = [g for row in rows if row.up for g in row.gpus if g.utilization_percent is not None]
    by_util = sorted(live, key=lambda g: (g.utilization_percent or 0.0, g.node, g.index))
    utils = [g.utilization_percent or 0.0 for g in live]
    return FleetModel(
        nodes_total=len(rows),
        nodes_up=sum(1 for row in rows if row.up),
        gpus_total=len(gpus),
        gpus_by_health=dict(Counter(g.health.state for g in gpus)),
        rows=matched[start : start + query.per_page],
        matched=len(matched),
        pages=pages,
        query=FleetQuery(
            query.search, query.state, query.sort, query.descending, page, query.per_page
        ),
        busiest=list(reversed(by_util[-TOP_GPUS:])),
        idlest=by_util[:TOP_GPUS],
        power_watts=sum(g.power_watts or 0.0 for g in gpus),
        mean_utilization_percent=sum(utils) / len(utils) if utils else None,
        models=dict(Counter(g.model for g in gpus)),
    )
