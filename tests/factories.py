"""Builders for wire objects used across agent and server tests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from agent.wire.schema import (
    Batch,
    CollectorStatus,
    GpuFacts,
    HostFacts,
    Inventory,
    MetricFamily,
    NodeIdentity,
)

NODE_ID = "0123456789abcdef0123456789abcdef"
GPU_LABELS = {
    "gpu": "0",
    "UUID": "GPU-11111111-2222-3333-4444-555555555555",
    "pci_bus_id": "00000000:00:06.0",
    "device": "nvidia0",
    "modelName": "NVIDIA H100 80GB HBM3",
    "Hostname": "gpu01",
}


def identity(
    name: str = "gpu01", node_id: str = NODE_ID, labels: Mapping[str, str] | None = None
) -> NodeIdentity:
    return NodeIdentity(node_id=node_id, name=name, hostname=name, labels=dict(labels or {}))


def default_metrics(cpu_idle: float = 100.0, gpu_util: float = 42.0) -> list[MetricFamily]:
    return [
        MetricFamily(
            name="node_cpu_seconds_total",
            samples=[
                ({"cpu": "0", "mode": "idle"}, cpu_idle),
                ({"cpu": "0", "mode": "user"}, 12.5),
            ],
        ),
        MetricFamily(name="node_load1", samples=[({}, 0.5)]),
        MetricFamily(name="DCGM_FI_DEV_GPU_UTIL", samples=[(dict(GPU_LABELS), gpu_util)]),
    ]


def inventory(gpus: Sequence[GpuFacts] | None = None) -> Inventory:
    return Inventory(
        host=HostFacts(cpu_count=2, memory_total_bytes=8 << 30, agent_version="test"),
        gpus=list(
            gpus
            if gpus is not None
            else [
                GpuFacts(
                    index=0,
                    uuid=GPU_LABELS["UUID"],
                    model=GPU_LABELS["modelName"],
                    pci_bus_id=GPU_LABELS["pci_bus_id"],
                    memory_total_bytes=80 << 30,
                )
            ]
        ),
        driver_version="580.159.04",
    )


def make_batch(
    seq: int = 1,
    timestamp: float = 1_800_000_000.0,
    node: NodeIdentity | None = None,
    metrics: Sequence[MetricFamily] | None = None,
    interval: float = 10.0,
    with_inventory: bool = True,
) -> Batch:
    return Batch(
        node=node or identity(),
        seq=seq,
        timestamp=timestamp,
        interval_seconds=interval,
        collectors=[CollectorStatus(name="cpu", success=True, duration_seconds=0.002)],
        metrics=list(metrics if metrics is not None else default_metrics()),
        inventory=inventory() if with_inventory else None,
    )
