"""FGD's GPU fragmentation measure: idle GPU milli that typical pods could not use.

Stage: simulator scoring, used by the FGD policy and by reports. Input: the typical pods (the
most popular request shapes of the workload, weighted by popularity) and a node's free CPU and
free milli per GPU. Output: the node's expected fragment in milli-GPUs (FGD paper, §4; the
reference simulator's ``NodeGpuShareFragAmountScore``).

For each typical pod of weight w:
- it cannot run on the node (too little CPU, no GPU of an allowed model, too few GPUs with its
  share free) or asks for no GPU: all the node's idle GPU milli counts, x w;
- it can run: the idle milli on GPUs with less free than its share counts, x w.

Computed from per-node summaries so a candidate placement is cheap: per (share, GPU count,
model constraint) group, the number of GPUs with at least the share free and the idle milli on
GPUs with less; the CPU condition comes from a cumulative table over the typical CPU requests.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from server.hints.sim.trace import MILLI, NodeTable, PodTable, allowed_models

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
POPULARITY = 0.95


@dataclass(frozen=True)
class TypicalPod:
    """A request shape and its weight (share of the workload's pods, renormalised to 1)."""

    cpu_milli: int
    gpu_milli: int
    num_gpu: int
    gpu_spec: str
    weight: float


def typical_pods(pods: PodTable, popularity: float = POPULARITY) -> tuple[TypicalPod, ...]:
    """Returns: the most common shapes covering ``popularity`` of the pods, weights summing to 1.

    Shapes are (CPU, per-GPU share, GPU count, GPU constraint), memory aside, CPU-only pods
    included; ordered by count, then by the larger shape, one at a time until the cumulative
    count reaches the threshold (the reference's defaults: 95 %, step 1).
    """
    counts = Counter(
        (int(c), int(m), int(n), s)
        for c, m, n, s in zip(
            pods.cpu_milli, pods.gpu_milli, pods.num_gpu, pods.gpu_spec, strict=True
        )
    )
    if not counts:
        return ()
    total = float(sum(counts.values()))
    ranked = sorted(counts.items(), key=lambda kv: (kv[1], kv[0]), reverse=True)
    chosen: list[tuple[tuple[int, int, int, str], int]] = []
    cumulative = 0.0
    for shape, count in ranked:
        if cumulative >= popularity * total:
            break
        chosen.append((shape, count))
        cumulative += count
    return tuple(
        TypicalPod(cpu_milli=c, gpu_milli=m, num_gpu=n, gpu_spec=s, weight=count / cumulative)
        for (c, m, n, s), count in chosen
    )


@dataclass(frozen=True, eq=False)
class NodeSummary:
    """Per node (rows): idle GPU milli; per group, GPUs that fit and milli left short."""

    idle: IntArray  # (rows,)
    fitting: IntArray  # (rows, groups): GPUs with at least the group's share free
    short: IntArray  # (rows, groups): idle milli on GPUs with less than the share free


class FragModel:
    """Vectorised fragmentation of nodes against a fixed set of typical pods."""

    def __init__(self, typical: tuple[TypicalPod, ...], nodes: NodeTable) -> None:
        self.typical = typical
        self.total_weight = float(sum(t.weight for t in typical))
        gpu_pods = [t for t in typical if t.gpu_milli > 0]
        keys = sorted({(t.gpu_milli, t.num_gpu, t.gpu_spec) for t in gpu_pods})
        group_of = {key: g for g, key in enumerate(keys)}
        self.group_share: IntArray = np.array([k[0] for k in keys], dtype=np.int64)
        self.group_count: IntArray = np.array([k[1] for k in keys], dtype=np.int64)
        # The CPU condition: weight of a group's pods whose CPU request is <= free CPU.
        self.cpu_steps: IntArray = np.array(sorted({t.cpu_milli for t in gpu_pods}), dtype=np.int64)
        by_cpu = np.zeros((len(self.cpu_steps) + 1, len(keys)), dtype=np.float64)
        for t in gpu_pods:
            step = int(np.searchsorted(self.cpu_steps, t.cpu_milli)) + 1
            by_cpu[step, group_of[(t.gpu_milli, t.num_gpu, t.gpu_spec)]] += t.weight
        self.cpu_weight: FloatArray = np.cumsum(by_cpu, axis=0)
        access = np.ones((len(nodes), len(keys)), dtype=np.float64)
        for g, (_, _, spec) in enumerate(keys):
            models = allowed_models(spec)
            if models:
                access[:, g] = [m in models for m in nodes.model]
        self.access: FloatArray = access
        # Per free-milli value v (0..1000) and group: does a GPU with v free fit, and the
        # milli it leaves short otherwise.
        free = np.arange(MILLI + 1, dtype=np.int64)[:, None]
        self.fits_table: IntArray = (free >= self.group_share[None, :]).astype(np.int64)
        self.short_table: IntArray = np.where(free < self.group_share[None, :], free, 0)

    @property
    def groups(self) -> int:
        return len(self.group_share)

    def summarize(self, gpu_free: IntArray) -> NodeSummary:
        """Returns: summaries of nodes with free milli per GPU ``gpu_free`` (rows, slots)."""
        return NodeSummary(
            idle=gpu_free.sum(axis=1),
            fitting=self.fits_table[gpu_free].sum(axis=1),
            short=self.short_table[gpu_free].sum(axis=1),
        )

    def frag(
        self,
        nodes: IntArray,
        cpu_free: IntArray,
        idle: IntArray,
        fitting: IntArray,
        short: IntArray,
    ) -> FloatArray:
        """Returns: fragment milli of states (one per row) of the nodes ``nodes``."""
        step = np.searchsorted(self.cpu_steps, cpu_free, side="right")
        runnable = (fitting >= self.group_count[None, :]) * self.access[nodes]
        weight = self.cpu_weight[step] * runnable
        idle_f = idle.astype(np.float64)
        usable = (weight * (idle_f[:, None] - short)).sum(axis=1)
        result: FloatArray = idle_f * self.total_weight - usable
        return result

    def node_frag(self, nodes: IntArray, cpu_free: IntArray, gpu_free: IntArray) -> FloatArray:
        """Returns: fragment milli of nodes ``nodes`` with the given free CPU and GPUs."""
        s = self.summarize(gpu_free)
        return self.frag(nodes, cpu_free, s.idle, s.fitting, s.short)
