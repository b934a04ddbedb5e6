"""A small synthetic trace shaped like the Alibaba v2023 GPU cluster, for tests and demos.

Stage: simulator input (a stand-in for ``trace``). The real trace files may not be copied into
the repository; this generator draws nodes from the trace's main node types (8-GPU G2/G3 and
V100 nodes, 2-GPU T4 and P100 nodes, 4-GPU V100 nodes) and pods from its mix of request kinds
(about 13 % CPU-only, 38 % GPU shares of 50..810 milli, 48 % one whole GPU, 1 % 2-8 GPUs), with
CPU and memory requests in the trace's ranges. ``write_trace`` lays the tables out as the
trace folder the CLI reads.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from server.hints.sim.trace import (
    DEFAULT_WORKLOAD,
    NODE_FILE,
    TRACE_SUBDIR,
    NodeTable,
    PodTable,
)

# model, GPUs, milli-cores, MiB, share of nodes
NODE_TYPES = (
    ("G2", 8, 96_000, 393_216, 0.45),
    ("T4", 2, 104_000, 524_288, 0.32),
    ("P100", 2, 64_000, 262_144, 0.11),
    ("V100M16", 4, 96_000, 393_216, 0.04),
    ("G3", 8, 96_000, 786_432, 0.04),
    ("V100M32", 8, 128_000, 786_432, 0.04),
)
POD_KINDS = (0.13, 0.38, 0.48, 0.01)  # CPU-only, GPU share, one GPU, several GPUs
QOS = ("LS", "BE", "Burstable", "Guaranteed")
QOS_SHARE = (0.57, 0.41, 0.015, 0.005)
CONSTRAINED_SPEC = "V100M16|V100M32"


def synthetic_nodes(count: int, rng: np.random.Generator) -> NodeTable:
    """Returns: ``count`` nodes drawn from the trace's node types."""
    weights = np.array([t[4] for t in NODE_TYPES])
    kinds = rng.choice(len(NODE_TYPES), size=count, p=weights / weights.sum())
    return NodeTable(
        names=tuple(f"synth-node-{i:04d}" for i in range(count)),
        cpu_milli=np.array([NODE_TYPES[k][2] for k in kinds], dtype=np.int64),
        memory_mib=np.array([NODE_TYPES[k][3] for k in kinds], dtype=np.int64),
        num_gpu=np.array([NODE_TYPES[k][1] for k in kinds], dtype=np.int64),
        model=tuple(NODE_TYPES[k][0] for k in kinds),
    )


def synthetic_pods(
    count: int, rng: np.random.Generator, constrained_share: float = 0.0
) -> PodTable:
    """Returns: ``count`` pods in the trace's mix; ``constrained_share`` of GPU pods get a
    GPU model constraint (V100 only)."""
    kind = rng.choice(len(POD_KINDS), size=count, p=np.array(POD_KINDS))
    several = rng.choice([2, 4, 8], size=count)
    num_gpu = np.where(kind == 0, 0, np.where(kind == 3, several, 1)).astype(np.int64)
    share = np.where(kind == 1, rng.integers(5, 82, size=count) * 10, 1000)
    share = np.where(num_gpu == 0, 0, share).astype(np.int64)
    cores = rng.choice([1, 2, 4, 6, 8, 12, 16, 24, 32], size=count)
    cores = np.where(kind == 3, 8 * num_gpu, cores)
    cpu = (cores * 1000).astype(np.int64)
    memory = (cores * rng.choice([1024, 2048, 4096], size=count)).astype(np.int64)
    constrained = (num_gpu > 0) & (rng.random(count) < constrained_share)
    qos = rng.choice(len(QOS), size=count, p=np.array(QOS_SHARE))
    return PodTable(
        names=tuple(f"synth-pod-{i:05d}" for i in range(count)),
        cpu_milli=cpu,
        memory_mib=memory,
        num_gpu=num_gpu,
        gpu_milli=share,
        gpu_spec=tuple(CONSTRAINED_SPEC if c else "" for c in constrained),
        qos=tuple(QOS[q] for q in qos),
    )


def synthetic_trace(
    seed: int, nodes: int = 60, pods: int = 400, constrained_share: float = 0.0
) -> tuple[NodeTable, PodTable]:
    """Returns: a node table and a pod list drawn for ``seed``."""
    rng = np.random.default_rng(seed)
    return synthetic_nodes(nodes, rng), synthetic_pods(pods, rng, constrained_share)


def write_trace(
    directory: Path, nodes: NodeTable, pods: PodTable, workload: str = DEFAULT_WORKLOAD
) -> Path:
    """Writes the tables as ``directory/alibaba-gpu-v2023/*.csv``. Returns: ``directory``."""
    folder = directory / TRACE_SUBDIR
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / NODE_FILE).open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["sn", "cpu_milli", "memory_mib", "gpu", "model"])
        for i in range(len(nodes)):
            out.writerow(
                [
                    nodes.names[i],
                    int(nodes.cpu_milli[i]),
                    int(nodes.memory_mib[i]),
                    int(nodes.num_gpu[i]),
                    nodes.model[i],
                ]
            )
    with (folder / f"{workload}.csv").open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli", "gpu_spec", "qos"])
        for i in range(len(pods)):
            out.writerow(
                [
                    pods.names[i],
                    int(pods.cpu_milli[i]),
                    int(pods.memory_mib[i]),
                    int(pods.num_gpu[i]),
                    int(pods.gpu_milli[i]),
                    pods.gpu_spec[i],
                    pods.qos[i],
                ]
            )
    return directory
