"""Snapshots on which the real hint engine gives known hints, and a source the tests change.

Built with the engine's own model (``tests/server/hints/builders.py``). ``FLEET`` gives one
hint of each of three kinds: ``drain`` (GPU 3 of gpu01 has a fatal XID; train-1 runs there),
``defragment`` (a CPU-only pod, etl, holds the cores of gpu-a that a pending 8-GPU job needs)
and ``consolidate`` (node c is a quarter used by idle work and its pod fits on d).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from server.hints.model import Failure, FailureKind, GpuWindow, Snapshot, Telemetry
from tests.server.hints.builders import cluster, cpu_node, gpu_node, pod, shape

XID_79 = (Failure(FailureKind.FATAL_XID, "79", "DCGM_FI_DEV_XID_ERRORS", 79.0),)


def fleet(*, failing: bool = True, blocked: bool = True, idle: bool = True) -> Snapshot:
    """The test cluster; each flag off removes the cause of one hint."""
    nodes = [
        gpu_node("gpu01", failures={3: XID_79} if failing else None),
        gpu_node("gpu-a"),
        gpu_node("gpu-b"),
        cpu_node("cpu-1", cpu_milli=128_000),
        gpu_node("c", gpus=4),
        gpu_node("d", gpus=4),
    ]
    pods = [
        pod("train-1", "gpu01", gpus=(3,)),
        pod("train-2", "gpu01", gpus=tuple(range(4, 8)), preemptible=False),
        pod("train", "gpu-b", cpu_milli=32_000, gpus=tuple(range(8))),
        pod("c1", "c", gpus=(0,)),
        pod("d1", "d", gpus=(0,), preemptible=False),
        pod("d2", "d", gpus=(1,), preemptible=False),
    ]
    if blocked:
        pods.append(pod("etl", "gpu-a", cpu_milli=80_000))
    util = 5.0 if idle else 90.0
    telemetry = Telemetry(gpus=tuple(GpuWindow(n, 0, 600.0, util_pct=util) for n in "cd"))
    return cluster(nodes, pods, pending=(shape(8, 32_000),), telemetry=telemetry)


EMPTY = Snapshot(nodes=())


@dataclass
class ScriptedSource:
    """A ``SnapshotSource`` whose snapshot a test replaces between rounds, or makes fail."""

    snapshot: Snapshot = EMPTY
    error: Exception | None = None
    builds: int = 0

    def build(self, now: float) -> Snapshot:
        self.builds += 1
        if self.error is not None:
            raise self.error
        return replace(self.snapshot, now_s=now)
