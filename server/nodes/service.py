"""Node views: what the store knows (facts, GPUs) joined with the latest values."""

from __future__ import annotations

from dataclasses import dataclass

from server.alerting.pseudo_nodes import is_server_side
from server.latest.cache import LatestCache, NodeLatest, StalePolicy
from server.storage.store import GpuRecord, NodeRecord, Store


@dataclass(frozen=True)
class GpuView:
    record: GpuRecord
    latest: dict[str, float]


@dataclass(frozen=True)
class NodeView:
    record: NodeRecord
    up: bool
    latest: NodeLatest | None
    gpus: list[GpuView]
    gpu_count: int

    @property
    def clock_skew_seconds(self) -> float | None:
        """Returns: the node's clock minus the server's at its last request, if it said."""
        return None if self.latest is None else self.latest.clock_skew_seconds


# Latest GPU readings shown in node views: (key in the view, metric, factor to apply).
GPU_READINGS = (
    ("utilization_percent", "DCGM_FI_DEV_GPU_UTIL", 1.0),
    ("memory_used_bytes", "DCGM_FI_DEV_FB_USED", 1024.0 * 1024.0),
    ("temperature_celsius", "DCGM_FI_DEV_GPU_TEMP", 1.0),
    ("power_watts", "DCGM_FI_DEV_POWER_USAGE", 1.0),
    ("up", "dcmon_gpu_up", 1.0),
)


def node_views(
    store: Store, latest: LatestCache, policy: StalePolicy, now: float, with_gpus: bool = False
) -> list[NodeView]:
    """Returns: every known node with its state; with its GPUs and their readings if asked."""
    cached = {node.node_id: node for node in latest.nodes()}
    counts = store.gpu_counts()
    gpus = store.gpus_by_node() if with_gpus else {}
    views = []
    for record in store.nodes():
        if is_server_side(record.node_id, record.name):
            continue  # where rule output is stored, not a node (server/alerting)
        node_latest = cached.get(record.node_id)
        up = node_latest is not None and policy.is_up(node_latest, now)
        gpu_views = _gpu_views(gpus.get(record.pk, []), node_latest if up else None)
        views.append(NodeView(record, up, node_latest, gpu_views, counts.get(record.pk, 0)))
    return views


def node_view(
    store: Store, latest: LatestCache, policy: StalePolicy, key: str, now: float
) -> NodeView | None:
    """Returns: one node (by name or node id) with its GPUs and their latest readings."""
    record = store.node(key)
    if record is None:
        return None
    node_latest = latest.get(record.node_id)
    up = node_latest is not None and policy.is_up(node_latest, now)
    gpus = _gpu_views(store.gpus(record.pk), node_latest if up else None)
    return NodeView(record, up, node_latest, gpus, len(gpus))


def _gpu_views(gpus: list[GpuRecord], node_latest: NodeLatest | None) -> list[GpuView]:
    """Joins inventory with the latest readings (none when the node is down)."""
    views = []
    for gpu in gpus:
        readings: dict[str, float] = {}
        if node_latest is not None:
            for view_key, metric, factor in GPU_READINGS:
                value = node_latest.value(metric, UUID=gpu.uuid)
                if value is not None:
                    readings[view_key] = value * factor
        views.append(GpuView(gpu, readings))
    return views
