"""Tiny hand-made node and pod tables for the simulator's tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from server.hints.sim.trace import NodeTable, PodTable

# (milli-cores, MiB, GPUs, model)
Node = tuple[int, int, int, str]
# (milli-cores, MiB, GPUs, milli per GPU, gpu_spec)
Pod = tuple[int, int, int, int, str]


def node_table(rows: Sequence[Node]) -> NodeTable:
    return NodeTable(
        names=tuple(f"node-{i}" for i in range(len(rows))),
        cpu_milli=np.array([r[0] for r in rows], dtype=np.int64),
        memory_mib=np.array([r[1] for r in rows], dtype=np.int64),
        num_gpu=np.array([r[2] for r in rows], dtype=np.int64),
        model=tuple(r[3] for r in rows),
    )


def pod_table(rows: Sequence[Pod], qos: str = "BE") -> PodTable:
    return PodTable(
        names=tuple(f"pod-{i}" for i in range(len(rows))),
        cpu_milli=np.array([r[0] for r in rows], dtype=np.int64),
        memory_mib=np.array([r[1] for r in rows], dtype=np.int64),
        num_gpu=np.array([r[2] for r in rows], dtype=np.int64),
        gpu_milli=np.array([r[3] for r in rows], dtype=np.int64),
        gpu_spec=tuple(r[4] for r in rows),
        qos=(qos,) * len(rows),
    )
