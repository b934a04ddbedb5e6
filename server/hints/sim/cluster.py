"""The simulated cluster: free capacity per node and GPU, and where each pod instance runs.

Stage: simulator state. Input: a ``NodeTable`` and a ``PodTable`` (the pod specs); each arrival
is an *instance* of a spec (the replay clones specs to inflate the load). Placement policies read
the free capacity and call ``place``; hints act on the state through ``move`` and ``evict``;
``snapshot`` gives the hint engine an immutable view.

Every change checks capacity (CPU, memory, per-GPU milli, GPU model) and raises
``PlacementError`` instead of overcommitting. ``node_version`` counts changes per node, so a
policy can cache per-node figures and recompute only the nodes that changed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from server.hints.sim.trace import MILLI, NodeTable, PodTable, allowed_models

BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.int64]
UNPLACED = -1


class PlacementError(ValueError):
    """A placement or move that does not fit, or names an unknown instance, node or GPU."""


@dataclass(frozen=True)
class NodeView:
    """One node in a snapshot: capacity and what is free (milli-cores, MiB, milli per GPU)."""

    index: int
    name: str
    gpu_model: str
    cpu_milli: int
    memory_mib: int
    num_gpu: int
    cpu_milli_free: int
    memory_mib_free: int
    gpu_milli_free: tuple[int, ...]


@dataclass(frozen=True)
class PodView:
    """One pod instance in a snapshot: its request, constraint, QoS and placement.

    ``node`` is ``None`` for a pod that arrived but could not be placed; ``gpus`` are the GPU
    indices on its node (each holds ``gpu_milli``).
    """

    instance: int
    name: str
    cpu_milli: int
    memory_mib: int
    num_gpu: int
    gpu_milli: int
    gpu_spec: str
    qos: str
    node: int | None
    gpus: tuple[int, ...]


@dataclass(frozen=True)
class Snapshot:
    """An immutable view of the cluster, the input a hint engine reads."""

    nodes: tuple[NodeView, ...]
    pods: tuple[PodView, ...]


def _gpu_bits(gpus: tuple[int, ...]) -> int:
    bits = 0
    for gpu in gpus:
        bits |= 1 << gpu
    return bits


def _gpu_tuple(bits: int) -> tuple[int, ...]:
    return tuple(i for i in range(bits.bit_length()) if bits >> i & 1)


class ClusterState:
    """Free capacity and placements; the only place capacity is changed."""

    def __init__(self, nodes: NodeTable, pods: PodTable) -> None:
        self.nodes = nodes
        self.pods = pods
        width = max(nodes.max_gpus_per_node, 1)
        self.cpu_free: IntArray = nodes.cpu_milli.copy()
        self.memory_free: IntArray = nodes.memory_mib.copy()
        slots = np.arange(width)[None, :] < nodes.num_gpu[:, None]
        # Slots past a node's GPU count stay at 0 free, so no GPU request ever fits there.
        self.gpu_free: IntArray = np.where(slots, MILLI, 0).astype(np.int64)
        self.node_version: IntArray = np.zeros(len(nodes), dtype=np.int64)
        self.used_gpu_milli = 0
        self._instance_pod: IntArray = np.zeros(0, dtype=np.int64)
        self._instance_node: IntArray = np.zeros(0, dtype=np.int64)
        self._instance_gpus: list[int] = []
        self._count = 0
        self._access: dict[str, BoolArray] = {}

    # -- instances -------------------------------------------------------------------------

    def add(self, pod: int) -> int:
        """Registers an unplaced instance of pod spec ``pod``. Returns: its instance id."""
        if not 0 <= pod < len(self.pods):
            raise PlacementError(f"no pod spec {pod}")
        if self._count == len(self._instance_pod):
            grow = max(64, 2 * self._count)
            self._instance_pod = np.resize(self._instance_pod, grow)
            self._instance_node = np.resize(self._instance_node, grow)
        self._instance_pod[self._count] = pod
        self._instance_node[self._count] = UNPLACED
        self._instance_gpus.append(0)
        self._count += 1
        return self._count - 1

    @property
    def instance_count(self) -> int:
        return self._count

    def pod_of(self, instance: int) -> int:
        """Returns: the pod spec (row of ``pods``) of an instance."""
        self._check_instance(instance)
        return int(self._instance_pod[instance])

    def node_of(self, instance: int) -> int | None:
        """Returns: the node an instance runs on, or None while it is unplaced."""
        self._check_instance(instance)
        node = int(self._instance_node[instance])
        return None if node == UNPLACED else node

    def gpus_of(self, instance: int) -> tuple[int, ...]:
        """Returns: the GPU indices an instance holds on its node."""
        self._check_instance(instance)
        return _gpu_tuple(self._instance_gpus[instance])

    def instances_on(self, node: int) -> list[int]:
        """Returns: the instances placed on ``node``, in arrival order."""
        return [int(i) for i in np.flatnonzero(self._instance_node[: self._count] == node)]

    def unplaced(self) -> list[int]:
        """Returns: instances that arrived and hold no node (failed or evicted)."""
        return [int(i) for i in np.flatnonzero(self._instance_node[: self._count] == UNPLACED)]

    # -- what fits -------------------------------------------------------------------------

    def accessible(self, pod: int) -> BoolArray:
        """Returns: per node, whether its GPU model satisfies the pod's ``gpu_spec``."""
        spec = self.pods.gpu_spec[pod]
        mask = self._access.get(spec)
        if mask is None:
            models = allowed_models(spec)
            if not models:
                mask = np.ones(len(self.nodes), dtype=np.bool_)
            else:
                mask = np.array([m in models for m in self.nodes.model], dtype=np.bool_)
            self._access[spec] = mask
        return mask

    def fits(self, pod: int) -> BoolArray:
        """Returns: per node, whether one instance of pod spec ``pod`` fits there now.

        CPU and memory must fit; a GPU pod also needs an allowed GPU model and, for a share,
        one GPU with that much free, or for n GPUs, n GPUs each with the share free.
        """
        pods = self.pods
        ok: BoolArray = self.cpu_free >= pods.cpu_milli[pod]
        ok &= self.memory_free >= pods.memory_mib[pod]
        num_gpu = int(pods.num_gpu[pod])
        if num_gpu > 0:
            share = int(pods.gpu_milli[pod])
            ok &= self.accessible(pod)
            if num_gpu == 1:
                ok &= self.gpu_free.max(axis=1) >= share
            else:
                ok &= (self.gpu_free >= share).sum(axis=1) >= num_gpu
        return ok

    # -- changes ---------------------------------------------------------------------------

    def place(self, instance: int, node: int, gpus: tuple[int, ...]) -> None:
        """Places an unplaced instance on ``node`` holding ``gpus`` (indices on that node)."""
        self._check_instance(instance)
        if self._instance_node[instance] != UNPLACED:
            raise PlacementError(f"instance {instance} is already on node {self.node_of(instance)}")
        if not 0 <= node < len(self.nodes):
            raise PlacementError(f"no node {node}")
        pod = int(self._instance_pod[instance])
        pods = self.pods
        cpu, memory = int(pods.cpu_milli[pod]), int(pods.memory_mib[pod])
        num_gpu, share = int(pods.num_gpu[pod]), int(pods.gpu_milli[pod])
        if len(gpus) != num_gpu or len(set(gpus)) != num_gpu:
            raise PlacementError(f"pod {pods.names[pod]} needs {num_gpu} distinct GPUs: {gpus}")
        if self.cpu_free[node] < cpu or self.memory_free[node] < memory:
            raise PlacementError(f"pod {pods.names[pod]} does not fit node {node}'s CPU/memory")
        if num_gpu:
            if not self.accessible(pod)[node]:
                raise PlacementError(f"pod {pods.names[pod]} may not use node {node}'s GPUs")
            for gpu in gpus:
                if not 0 <= gpu < self.nodes.num_gpu[node] or self.gpu_free[node, gpu] < share:
                    raise PlacementError(f"GPU {gpu} of node {node} cannot hold {share} milli")
        self.cpu_free[node] -= cpu
        self.memory_free[node] -= memory
        for gpu in gpus:
            self.gpu_free[node, gpu] -= share
        self.used_gpu_milli += share * num_gpu
        self._instance_node[instance] = node
        self._instance_gpus[instance] = _gpu_bits(gpus)
        self.node_version[node] += 1

    def evict(self, instance: int) -> None:
        """Takes a placed instance off its node; it stays registered, unplaced."""
        node = self.node_of(instance)
        if node is None:
            raise PlacementError(f"instance {instance} is not placed")
        pod = int(self._instance_pod[instance])
        share = int(self.pods.gpu_milli[pod])
        gpus = self.gpus_of(instance)
        self.cpu_free[node] += self.pods.cpu_milli[pod]
        self.memory_free[node] += self.pods.memory_mib[pod]
        for gpu in gpus:
            self.gpu_free[node, gpu] += share
        self.used_gpu_milli -= share * len(gpus)
        self._instance_node[instance] = UNPLACED
        self._instance_gpus[instance] = 0
        self.node_version[node] += 1

    def move(self, instance: int, node: int, gpus: tuple[int, ...] | None = None) -> None:
        """Moves a placed instance to ``node`` (``gpus`` None: the tightest-fitting GPUs).

        Atomic: when the target cannot hold it, the instance stays where it was.
        """
        origin = self.node_of(instance)
        if origin is None:
            raise PlacementError(f"instance {instance} is not placed")
        old_gpus = self.gpus_of(instance)
        self.evict(instance)
        try:
            if gpus is None:
                gpus = tightest_gpus(self, self.pod_of(instance), node)
            self.place(instance, node, gpus)
        except PlacementError:
            self.place(instance, origin, old_gpus)
            raise

    # -- views -----------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """Returns: an immutable copy of nodes (with free capacity) and pod instances."""
        nodes, pods = self.nodes, self.pods
        node_views = tuple(
            NodeView(
                index=i,
                name=nodes.names[i],
                gpu_model=nodes.model[i],
                cpu_milli=int(nodes.cpu_milli[i]),
                memory_mib=int(nodes.memory_mib[i]),
                num_gpu=int(nodes.num_gpu[i]),
                cpu_milli_free=int(self.cpu_free[i]),
                memory_mib_free=int(self.memory_free[i]),
                gpu_milli_free=tuple(int(x) for x in self.gpu_free[i, : nodes.num_gpu[i]]),
            )
            for i in range(len(nodes))
        )
        pod_views = tuple(
            PodView(
                instance=k,
                name=pods.names[p],
                cpu_milli=int(pods.cpu_milli[p]),
                memory_mib=int(pods.memory_mib[p]),
                num_gpu=int(pods.num_gpu[p]),
                gpu_milli=int(pods.gpu_milli[p]),
                gpu_spec=pods.gpu_spec[p],
                qos=pods.qos[p],
                node=self.node_of(k),
                gpus=self.gpus_of(k),
            )
            for k, p in enumerate(int(x) for x in self._instance_pod[: self._count])
        )
        return Snapshot(nodes=node_views, pods=pod_views)

    def _check_instance(self, instance: int) -> None:
        if not 0 <= instance < self._count:
            raise PlacementError(f"no instance {instance}")


def first_free_gpus(state: ClusterState, node: int, count: int) -> tuple[int, ...]:
    """Returns: the first ``count`` wholly free GPUs of ``node`` by index (whole-GPU pods)."""
    free = np.flatnonzero(state.gpu_free[node] == MILLI)
    if len(free) < count:
        raise PlacementError(f"node {node} has {len(free)} free GPUs, not {count}")
    return tuple(int(g) for g in free[:count])


def tightest_gpus(state: ClusterState, pod: int, node: int) -> tuple[int, ...]:
    """Returns: the GPUs best fit gives pod spec ``pod`` on ``node``.

    A share goes to the GPU with the least free milli that still holds it (lowest index on a
    tie); whole GPUs are the first free ones; a CPU-only pod holds none.
    """
    num_gpu, share = int(state.pods.num_gpu[pod]), int(state.pods.gpu_milli[pod])
    if num_gpu == 0:
        return ()
    if num_gpu == 1 and share < MILLI:
        free = state.gpu_free[node]
        candidates = np.flatnonzero(free >= share)
        if len(candidates) == 0:
            raise PlacementError(f"no GPU of node {node} holds {share} milli")
        return (int(candidates[np.argmin(free[candidates])]),)
    return first_free_gpus(state, node, num_gpu)
