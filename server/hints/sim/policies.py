"""Placement policies: where an arriving pod goes, and on which GPUs.

Stage: simulator placement. Input: the ``ClusterState`` and a pod spec row; output: a
``Placement`` (node, GPU indices) or None when no node fits. Semantics follow the FGD paper's
scheduler simulator (``hkust-adsl/kubernetes-scheduler-simulator``, the ``expected_run_scripts``
configuration):

- Random: a node drawn uniformly among those that fit; a share goes to a GPU drawn uniformly
  among those that hold it.
- BestFit: score (1 - (½·(CPU left - CPU asked)/128 cores + ½·(GPU milli left - asked)/8 GPUs))
  x 100, truncated to an integer, then min-max normalised to 0..100 with integer division; a
  share goes to the tightest GPU.
- FGD (``fgd.FGDPolicy``): the node and GPU whose placement grows fragmentation least.

Ties between nodes go to the node first in a per-seed random order of the nodes (the reference
prefixes node names with a random permutation and picks the smallest name among equal scores).
Whole GPUs are the first free ones by index.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol

import numpy as np
import numpy.typing as npt

from server.hints.sim.cluster import ClusterState, first_free_gpus, tightest_gpus
from server.hints.sim.trace import MILLI

IntArray = npt.NDArray[np.int64]
MAX_SPEC_CPU_MILLI = 128_000
MAX_SPEC_GPU_MILLI = 8_000
MAX_NODE_SCORE = 100


class Placement(NamedTuple):
    node: int
    gpus: tuple[int, ...]


class Policy(Protocol):
    """Chooses a placement for one instance of a pod spec, or None when nothing fits."""

    name: str

    def place(self, state: ClusterState, pod: int) -> Placement | None: ...


def pick_node(candidates: IntArray, scores: IntArray, rank: IntArray) -> int:
    """Returns: the candidate with the highest score, the lowest ``rank`` among equals."""
    best = candidates[scores == scores.max()]
    return int(best[np.argmin(rank[best])])


class RandomPolicy:
    name = "random"

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng

    def place(self, state: ClusterState, pod: int) -> Placement | None:
        candidates = np.flatnonzero(state.fits(pod))
        if len(candidates) == 0:
            return None
        node = int(candidates[self._rng.integers(len(candidates))])
        num_gpu, share = int(state.pods.num_gpu[pod]), int(state.pods.gpu_milli[pod])
        if num_gpu == 1 and share < MILLI:
            gpus = np.flatnonzero(state.gpu_free[node] >= share)
            return Placement(node, (int(gpus[self._rng.integers(len(gpus))]),))
        return Placement(node, first_free_gpus(state, node, num_gpu) if num_gpu else ())


def best_fit_scores(state: ClusterState, pod: int, nodes: IntArray) -> IntArray:
    """Returns: BestFit's raw integer score (0..100, higher = tighter) of ``nodes``."""
    pods = state.pods
    cpu_left = state.cpu_free[nodes] - pods.cpu_milli[pod]
    gpu_left = state.gpu_free[nodes].sum(axis=1) - pods.gpu_milli_total[pod]
    waste = cpu_left / MAX_SPEC_CPU_MILLI * 0.5
    waste = waste + gpu_left / MAX_SPEC_GPU_MILLI * 0.5
    raw: IntArray = np.trunc((1.0 - waste) * MAX_NODE_SCORE).astype(np.int64)
    return raw


def normalize(scores: IntArray) -> IntArray:
    """Returns: scores mapped onto 0..100 by min-max with integer division (all 0 if flat)."""
    low, high = int(scores.min()), int(scores.max())
    if high == low:
        return np.zeros_like(scores)
    out: IntArray = (scores - low) * MAX_NODE_SCORE // (high - low)
    return out


class BestFitPolicy:
    name = "bestfit"

    def __init__(self, rank: IntArray) -> None:
        self._rank = rank

    def place(self, state: ClusterState, pod: int) -> Placement | None:
        candidates = np.flatnonzero(state.fits(pod))
        if len(candidates) == 0:
            return None
        scores = normalize(best_fit_scores(state, pod, candidates))
        node = pick_node(candidates, scores, self._rank)
        return Placement(node, tightest_gpus(state, pod, node))
