"""Rebalancing baselines the hint engine is scored against, re-implemented from their semantics.

Stage: simulator baselines (reference §5.4). Input: a ``ClusterState`` at a hook, the replay's
placement policy and a budget. Output: a ``Rebalance`` (pods moved, pods lost).

- **LowNodeUtilization** (descheduler, on requests, reference §1.1): a node is under-utilised
  when every listed resource is below ``thresholds``, over-utilised when any is above
  ``target_thresholds`` (percent of allocatable; pods against 110 per node, Kubernetes'
  default). Aborts when either set is empty. From the over-utilised nodes, most used first, it
  evicts pods (BestEffort QoS first) while the node stays above its targets and the
  under-utilised nodes still have room below their targets for every resource; the evicted pods
  are then re-placed by the cluster's own placement policy, wherever it puts them.
- **HighNodeUtilization** (descheduler): nodes below ``thresholds`` (only the listed resources)
  are the sources, least used first; every evictable pod on them is evicted while the other
  nodes have free room of each listed resource, then re-placed by the placement policy. Aborts
  when no node is under or none is above.
- **Oracle re-placement** (B5): every running pod taken off and placed again from an empty
  cluster with FGD, in arrival order; unlimited moves, constraints ignored. It bounds what
  moving pods alone can gain.

Evictable: pods whose QoS class may move (not LS, as for the engine), up to ``budget`` evictions
in all (``maxNoOfPodsToEvictTotal``). A pod evicted that finds no place again stays unplaced:
it counts as lost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from server.hints.sim.cluster import ClusterState
from server.hints.sim.fgd import FGDPolicy
from server.hints.sim.frag import FragModel, typical_pods
from server.hints.sim.policies import Policy
from server.hints.sim.to_snapshot import NON_PREEMPTIBLE_QOS
from server.hints.sim.trace import MILLI

MAX_PODS_PER_NODE = 110
RESOURCES = ("cpu", "memory", "pods", "gpu")
LOW_NODE_THRESHOLDS: Mapping[str, float] = dict.fromkeys(RESOURCES, 20.0)
LOW_NODE_TARGETS: Mapping[str, float] = dict.fromkeys(RESOURCES, 50.0)
HIGH_NODE_THRESHOLDS: Mapping[str, float] = {"gpu": 40.0}
QOS_EVICTION_ORDER = {"BE": 0, "Burstable": 1, "Guaranteed": 2}
FloatArray = npt.NDArray[np.float64]


@dataclass
class Rebalance:
    """Pods a baseline moved (evicted and placed again, elsewhere) and lost (no place again)."""

    moved: set[int] = field(default_factory=set)
    lost: set[int] = field(default_factory=set)
    evicted: int = 0
    aborted: str = ""


def usage_pct(state: ClusterState) -> dict[str, FloatArray]:
    """Returns: per resource, each node's requested share of its allocatable, in percent."""
    nodes = state.nodes
    placed = np.zeros(len(nodes), dtype=np.int64)
    for k in range(state.instance_count):
        node = state.node_of(k)
        if node is not None:
            placed[node] += 1
    gpus = np.maximum(nodes.num_gpu * MILLI, 1)
    gpu_used = nodes.num_gpu * MILLI - state.gpu_free.sum(axis=1)
    return {
        "cpu": 100.0 * (nodes.cpu_milli - state.cpu_free) / np.maximum(nodes.cpu_milli, 1),
        "memory": 100.0 * (nodes.memory_mib - state.memory_free) / np.maximum(nodes.memory_mib, 1),
        "pods": 100.0 * placed / MAX_PODS_PER_NODE,
        "gpu": 100.0 * gpu_used / gpus,
    }


def _request(state: ClusterState, k: int) -> dict[str, float]:
    """Returns: an instance's request per resource, in units of the node's allocatable x 100."""
    spec = state.pod_of(k)
    pods = state.pods
    return {
        "cpu": float(pods.cpu_milli[spec]),
        "memory": float(pods.memory_mib[spec]),
        "pods": 1.0,
        "gpu": float(pods.gpu_milli_total[spec]),
    }


def _capacity(state: ClusterState, node: int) -> dict[str, float]:
    nodes = state.nodes
    return {
        "cpu": float(nodes.cpu_milli[node]),
        "memory": float(nodes.memory_mib[node]),
        "pods": float(MAX_PODS_PER_NODE),
        "gpu": float(nodes.num_gpu[node] * MILLI),
    }


def evictable(state: ClusterState, node: int) -> list[int]:
    """Returns: the node's pods that may be evicted, BestEffort first, then by arrival."""
    qos = {k: state.pods.qos[state.pod_of(k)] for k in state.instances_on(node)}
    pods = [k for k, cls in qos.items() if cls not in NON_PREEMPTIBLE_QOS]
    return sorted(pods, key=lambda k: (QOS_EVICTION_ORDER.get(qos[k], 3), k))


def low_node_utilization(
    state: ClusterState,
    placer: Policy,
    budget: int,
    thresholds: Mapping[str, float] = LOW_NODE_THRESHOLDS,
    targets: Mapping[str, float] = LOW_NODE_TARGETS,
) -> Rebalance:
    """Descheduler LowNodeUtilization on requests, then re-placement by ``placer``."""
    out = Rebalance()
    usage = usage_pct(state)
    names = list(thresholds)
    under = np.all([usage[r] < thresholds[r] for r in names], axis=0)
    over = np.any([usage[r] > targets[r] for r in names], axis=0)
    if not under.any() or not over.any():
        out.aborted = "no under-utilised node" if not under.any() else "no over-utilised node"
        return out
    available = {
        r: sum(
            (targets[r] - usage[r][n]) / 100.0 * _capacity(state, int(n))[r]
            for n in np.flatnonzero(under)
        )
        for r in names
    }
    score = np.sum([usage[r] for r in names], axis=0)
    sources = sorted(np.flatnonzero(over), key=lambda n: (-score[n], n))
    evicted: list[tuple[int, int, tuple[int, ...]]] = []
    for node in (int(n) for n in sources):
        capacity = _capacity(state, node)
        used = {r: usage[r][node] / 100.0 * capacity[r] for r in names}
        for k in evictable(state, node):
            if len(evicted) >= budget:
                break
            above = any(used[r] > targets[r] / 100.0 * capacity[r] for r in names)
            if not above or any(available[r] <= 0 for r in names):
                break
            request = _request(state, k)
            evicted.append((k, node, state.gpus_of(k)))
            state.evict(k)
            for r in names:
                used[r] -= request[r]
                available[r] -= request[r]
    return _replace(state, placer, evicted, out)


def high_node_utilization(
    state: ClusterState,
    placer: Policy,
    budget: int,
    thresholds: Mapping[str, float] = HIGH_NODE_THRESHOLDS,
) -> Rebalance:
    """Descheduler HighNodeUtilization on requests, then re-placement by ``placer``."""
    out = Rebalance()
    usage = usage_pct(state)
    names = list(thresholds)
    under = np.all([usage[r] < thresholds[r] for r in names], axis=0)
    if "gpu" in names:
        under &= state.nodes.num_gpu > 0  # descheduler #1634: GPU-less nodes are not sources
    rest = ~under
    if not under.any() or not rest.any():
        out.aborted = "no under-utilised node" if not under.any() else "no other node"
        return out
    available = {
        r: sum(
            (1.0 - usage[r][n] / 100.0) * _capacity(state, int(n))[r] for n in np.flatnonzero(rest)
        )
        for r in names
    }
    score = np.sum([usage[r] for r in names], axis=0)
    sources = sorted(np.flatnonzero(under), key=lambda n: (score[n], n))
    evicted: list[tuple[int, int, tuple[int, ...]]] = []
    for node in (int(n) for n in sources):
        for k in evictable(state, node):
            if len(evicted) >= budget or any(available[r] <= 0 for r in names):
                break
            request = _request(state, k)
            evicted.append((k, node, state.gpus_of(k)))
            state.evict(k)
            for r in names:
                available[r] -= request[r]
    return _replace(state, placer, evicted, out)


def oracle_replacement(state: ClusterState, seed: int) -> Rebalance:
    """Every running pod placed again from an empty cluster with FGD, in arrival order."""
    out = Rebalance()
    running = [k for k in range(state.instance_count) if state.node_of(k) is not None]
    before = {k: (state.node_of(k), state.gpus_of(k)) for k in running}
    for k in running:
        state.evict(k)
    rank = np.random.default_rng(seed).permutation(len(state.nodes)).astype(np.int64)
    fgd = FGDPolicy(FragModel(typical_pods(state.pods), state.nodes), rank)
    out.evicted = len(running)
    for k in running:
        placement = fgd.place(state, state.pod_of(k))
        if placement is None:
            out.lost.add(k)
            continue
        state.place(k, placement.node, placement.gpus)
        if (placement.node, placement.gpus) != before[k]:
            out.moved.add(k)
    return out


def _replace(
    state: ClusterState,
    placer: Policy,
    evicted: Sequence[tuple[int, int, tuple[int, ...]]],
    out: Rebalance,
) -> Rebalance:
    out.evicted = len(evicted)
    for k, node, gpus in evicted:
        placement = placer.place(state, state.pod_of(k))
        if placement is None:
            out.lost.add(k)
            continue
        state.place(k, placement.node, placement.gpus)
        if (placement.node, placement.gpus) != (node, gpus):
            out.moved.add(k)
    return out
