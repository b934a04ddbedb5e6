"""The arrival sequence: which pod spec arrives n-th, tuned to a share of GPU capacity.

Stage: simulator input, after ``trace``. Follows the FGD simulator's workload tuning
(``WorkloadTuningConfig``, ``--shuffle-pod=true``): the trace's pods are shuffled, then, while
their GPU requests are below ``ratio`` x the cluster's GPU milli, specs drawn uniformly from
the trace are appended (tune-up); above it, randomly chosen pods are dropped (tune-down).

Tune-up stops at the first drawn spec whose *per-GPU* share would pass the target, as the
reference does (a whole-GPU pod of several GPUs may therefore overshoot by a few GPUs).
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from server.hints.sim.trace import PodTable

IntArray = npt.NDArray[np.int64]


def arrival_order(
    pods: PodTable,
    total_gpu_milli: int,
    ratio: float,
    rng: np.random.Generator,
    shuffle: bool = True,
) -> IntArray:
    """Returns: pod spec rows in arrival order, requesting about ``ratio`` of GPU capacity.

    ``ratio`` <= 0 keeps the trace as it is (shuffled if asked).
    """
    n = len(pods)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    order = rng.permutation(n).astype(np.int64) if shuffle else np.arange(n, dtype=np.int64)
    if ratio <= 0:
        return order
    requested = pods.gpu_milli_total
    total = int(requested.sum())
    target = ratio * total_gpu_milli
    if total > target:
        return _tune_down(order, requested, total, target, rng)
    if total < target:
        return _tune_up(order, pods, total, target, rng)
    return order


def _tune_down(
    order: IntArray, requested: IntArray, total: int, target: float, rng: np.random.Generator
) -> IntArray:
    kept = list(order)
    while total > target:
        pod = kept.pop(int(rng.integers(len(kept))))
        total -= int(requested[pod])
    return np.array(kept, dtype=np.int64)


def _tune_up(
    order: IntArray, pods: PodTable, total: int, target: float, rng: np.random.Generator
) -> IntArray:
    share, requested, n = pods.gpu_milli, pods.gpu_milli_total, len(pods)
    extra: list[int] = []
    # Drawn in blocks for speed (the unused rest of the last block is discarded).
    while True:
        for pod in rng.integers(n, size=1024):
            if total + int(share[pod]) > target:
                return np.concatenate([order, np.array(extra, dtype=np.int64)])
            total += int(requested[pod])
            extra.append(int(pod))


def arrived_share(pods: PodTable, order: IntArray, total_gpu_milli: int) -> float:
    """Returns: GPU milli requested by ``order`` as a share of capacity (1.0 = 100 %)."""
    return float(pods.gpu_milli_total[order].sum()) / total_gpu_milli if total_gpu_milli else 0.0
