"""Replay a trace: place each arrival with a policy, call hooks at chosen arrival points.

Stage: simulator driver. Input: nodes, pods, a policy name, a seed, the arrival ratio (1.3 =
pods requesting 130 % of GPU capacity) and hooks keyed by arrival ratio. Output: a
``ReplayResult`` with GPU milli arrived and allocated after every arrival, and the FGD
artifact's figure ``alloc_pct_at`` (mean allocation over the arrivals whose arrived share
rounds to that percentage).

One seed drives everything, in the reference's order: the shuffle, the tune-up draws, the
node order that breaks ties, then the policy's own draws. A pod that fits nowhere stays
unplaced (the reference drops it). A hook runs once, right after the arrival that brings the
arrived share to its point; it may change the state (``ClusterState.move``, ``evict``) before
the replay continues.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from server.hints.sim.cluster import ClusterState
from server.hints.sim.fgd import FGDPolicy
from server.hints.sim.frag import FragModel, typical_pods
from server.hints.sim.policies import BestFitPolicy, Policy, RandomPolicy
from server.hints.sim.trace import NodeTable, PodTable
from server.hints.sim.workload import arrival_order

IntArray = npt.NDArray[np.int64]
POLICIES = ("random", "bestfit", "fgd")
Hook = Callable[[ClusterState, "HookPoint"], None]
Progress = Callable[[int, int], None]
PROGRESS_EVERY = 256


@dataclass(frozen=True)
class HookPoint:
    """Where a hook runs: its arrival ratio, the arrivals so far, the arrived share, and the
    replay's placement policy (to re-place what a hook evicts with the same policy)."""

    at: float
    arrivals: int
    arrived_share: float
    placer: Policy | None = None


@dataclass(frozen=True, eq=False)
class ReplayResult:
    """One replay: per arrival, cumulative GPU milli arrived and GPU milli allocated after it."""

    policy: str
    seed: int
    ratio: float
    total_gpu_milli: int
    arrived_milli: IntArray
    used_milli: IntArray
    failed: int
    seconds: float
    hooks_run: tuple[float, ...] = field(default=())

    @property
    def arrivals(self) -> int:
        return len(self.arrived_milli)

    @property
    def final_alloc_pct(self) -> float:
        if not self.arrivals or not self.total_gpu_milli:
            return math.nan
        return 100.0 * float(self.used_milli[-1]) / self.total_gpu_milli

    def alloc_pct_at(self, arrival_pct: int) -> float:
        """Returns: % GPUs allocated at ``arrival_pct`` % arrival, as the FGD artifact counts it.

        Each arrival's arrived share and allocation are rounded (to a whole percent and to
        0.01 %), the allocations of arrivals at exactly ``arrival_pct`` are averaged (within
        ±1 % when none is), and the mean is rounded to 0.01 %. NaN when no arrival is near.
        """
        gpus = self.total_gpu_milli / 1000
        if not self.arrivals or not gpus:
            return math.nan
        arrived = np.round(self.arrived_milli / gpus / 10)
        alloc = np.round(self.used_milli / gpus / 10, 2)
        near = arrived == arrival_pct
        if not near.any():
            near = (arrived >= arrival_pct - 1) & (arrived <= arrival_pct + 1)
            if not near.any():
                return math.nan
        return round(float(alloc[near].mean()), 2)


def make_policy(name: str, nodes: NodeTable, pods: PodTable, rng: np.random.Generator) -> Policy:
    """Returns: the named policy; its node order for ties is drawn from ``rng``."""
    if name not in POLICIES:
        raise ValueError(f"unknown policy {name!r}; one of {', '.join(POLICIES)}")
    rank = rng.permutation(len(nodes)).astype(np.int64)
    if name == "random":
        return RandomPolicy(rng)
    if name == "bestfit":
        return BestFitPolicy(rank)
    return FGDPolicy(FragModel(typical_pods(pods), nodes), rank)


def replay(
    nodes: NodeTable,
    pods: PodTable,
    policy: str,
    seed: int,
    ratio: float = 1.3,
    hooks: Mapping[float, Hook] | None = None,
    progress: Progress | None = None,
) -> ReplayResult:
    """Replays ``pods`` on ``nodes`` up to ``ratio`` of GPU capacity with ``policy``."""
    started = time.perf_counter()
    rng = np.random.default_rng(seed)
    total = nodes.total_gpu_milli
    order = arrival_order(pods, total, ratio, rng)
    chooser = make_policy(policy, nodes, pods, rng)
    state = ClusterState(nodes, pods)
    pending = sorted((hooks or {}).items())
    requested = pods.gpu_milli_total
    arrived_milli = np.zeros(len(order), dtype=np.int64)
    used_milli = np.zeros(len(order), dtype=np.int64)
    arrived, failed, ran = 0, 0, []
    for n, pod in enumerate(int(p) for p in order):
        instance = state.add(pod)
        arrived += int(requested[pod])
        placement = chooser.place(state, pod)
        if placement is None:
            failed += 1
        else:
            state.place(instance, placement.node, placement.gpus)
        while pending and total and arrived >= pending[0][0] * total:
            at, hook = pending.pop(0)
            point = HookPoint(at, n + 1, arrived / total, chooser)
            hook(state, point)
            ran.append(at)
        arrived_milli[n] = arrived
        used_milli[n] = state.used_gpu_milli
        if progress is not None and (n + 1) % PROGRESS_EVERY == 0:
            progress(n + 1, len(order))
    if progress is not None:
        progress(len(order), len(order))
    return ReplayResult(
        policy=policy,
        seed=seed,
        ratio=ratio,
        total_gpu_milli=total,
        arrived_milli=arrived_milli,
        used_milli=used_milli,
        failed=failed,
        seconds=time.perf_counter() - started,
        hooks_run=tuple(ran),
    )
