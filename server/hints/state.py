"""A working copy of a snapshot's capacity that hints are planned and applied on.

Stage: hints planning. Input: a ``Snapshot``. The kinds try moves on a ``WorkingState``; the
planner applies admitted hints to it in order; ``to_snapshot`` gives the resulting snapshot.
Every change checks capacity and raises ``PlanError`` instead of overcommitting.

GPU choice matches the simulator's: a share goes to the healthy allowed GPU with the least free
milli that holds it (lowest index on a tie); whole GPUs are the first wholly free ones by index.
"""

from __future__ import annotations

from dataclasses import replace

from server.hints.hint import Move
from server.hints.model import MILLI, Gpu, Health, Node, Pod, Request, Snapshot


class PlanError(ValueError):
    """A move that does not fit, or names a pod that is not where the move says."""


def gpu_allowed(gpu: Gpu, request: Request) -> bool:
    """A GPU may take new work: healthy and of a model the request allows."""
    if gpu.health is not Health.OK:
        return False
    return not request.gpu_models or gpu.model in request.gpu_models


class WorkingState:
    """Free capacity per node and GPU and each pod's placement, changed only by checked moves."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.base = snapshot
        self.nodes: dict[str, Node] = dict(snapshot.node_by_name)
        self.cpu_free = {n.name: n.cpu_milli_free for n in snapshot.nodes}
        self.memory_free = {n.name: n.memory_mib_free for n in snapshot.nodes}
        self.gpu_free = {n.name: {g.index: g.free_milli for g in n.gpus} for n in snapshot.nodes}
        self.placement: dict[str, tuple[str | None, tuple[int, ...]]] = {
            p.id: (p.node, p.gpus) for p in snapshot.pods
        }
        self.pods_on: dict[str, set[str]] = {n.name: set() for n in snapshot.nodes}
        for pod in snapshot.pods:
            if pod.node is not None:
                self.pods_on[pod.node].add(pod.id)
        self.version = dict.fromkeys(self.nodes, 0)

    # -- reading ---------------------------------------------------------------------------

    def pod(self, pod_id: str) -> Pod:
        try:
            return self.base.pod_by_id[pod_id]
        except KeyError as exc:
            raise PlanError(f"no pod {pod_id}") from exc

    def node_of(self, pod_id: str) -> str | None:
        return self.placement[pod_id][0]

    def gpus_of(self, pod_id: str) -> tuple[int, ...]:
        return self.placement[pod_id][1]

    def usable_free(self, node: str, request: Request) -> list[tuple[int, int]]:
        """Returns: (GPU index, free milli) of the GPUs of ``node`` that may take ``request``."""
        free = self.gpu_free[node]
        return [(g.index, free[g.index]) for g in self.nodes[node].gpus if gpu_allowed(g, request)]

    def choose_gpus(self, request: Request, node: str) -> tuple[int, ...] | None:
        """Returns: the GPUs ``request`` would take on ``node`` now, or None if none fit."""
        if request.num_gpu == 0:
            return ()
        usable = self.usable_free(node, request)
        if request.num_gpu == 1 and request.gpu_milli < MILLI:
            holding = [(free, index) for index, free in usable if free >= request.gpu_milli]
            return (min(holding)[1],) if holding else None
        whole = sorted(index for index, free in usable if free >= MILLI)
        return tuple(whole[: request.num_gpu]) if len(whole) >= request.num_gpu else None

    def fits(self, request: Request, node: str) -> tuple[int, ...] | None:
        """Returns: the GPUs ``request`` would hold on ``node``, or None when it does not fit."""
        if not self.nodes[node].schedulable:
            return None
        if self.cpu_free[node] < request.cpu_milli or self.memory_free[node] < request.memory_mib:
            return None
        return self.choose_gpus(request, node)

    # -- changing --------------------------------------------------------------------------

    def take_off(self, pod_id: str) -> tuple[str, tuple[int, ...]]:
        """Frees a placed pod's capacity. Returns: where it was (node, GPUs)."""
        node, gpus = self.placement[pod_id]
        if node is None:
            raise PlanError(f"pod {pod_id} is not placed")
        request = self.pod(pod_id).request
        self.cpu_free[node] += request.cpu_milli
        self.memory_free[node] += request.memory_mib
        for index in gpus:
            self.gpu_free[node][index] += request.gpu_milli
        self.placement[pod_id] = (None, ())
        self.pods_on[node].discard(pod_id)
        self.version[node] += 1
        return node, gpus

    def put_on(self, pod_id: str, node: str, gpus: tuple[int, ...]) -> None:
        """Places an unplaced pod on ``node`` holding ``gpus``, checking every capacity."""
        self._check_fit(pod_id, node, gpus)
        self._place(pod_id, node, gpus)

    def _check_fit(self, pod_id: str, node: str, gpus: tuple[int, ...]) -> None:
        request = self.pod(pod_id).request
        if node not in self.nodes or not self.nodes[node].schedulable:
            raise PlanError(f"node {node} does not take pods")
        if self.cpu_free[node] < request.cpu_milli or self.memory_free[node] < request.memory_mib:
            raise PlanError(f"pod {pod_id} does not fit node {node}'s CPU or memory")
        if len(gpus) != request.num_gpu or len(set(gpus)) != len(gpus):
            raise PlanError(f"pod {pod_id} needs {request.num_gpu} distinct GPUs, not {gpus}")
        free = self.gpu_free[node]
        for index in gpus:
            gpu = next((g for g in self.nodes[node].gpus if g.index == index), None)
            if gpu is None or not gpu_allowed(gpu, request) or free[index] < request.gpu_milli:
                raise PlanError(f"GPU {index} of {node} cannot take pod {pod_id}")

    def put_back(self, pod_id: str, node: str, gpus: tuple[int, ...]) -> None:
        """Puts a pod back where ``take_off`` found it, unchecked (a failing GPU too)."""
        self._place(pod_id, node, gpus)

    def _place(self, pod_id: str, node: str, gpus: tuple[int, ...]) -> None:
        request = self.pod(pod_id).request
        free = self.gpu_free[node]
        self.cpu_free[node] -= request.cpu_milli
        self.memory_free[node] -= request.memory_mib
        for index in gpus:
            free[index] -= request.gpu_milli
        self.placement[pod_id] = (node, gpus)
        self.pods_on[node].add(pod_id)
        self.version[node] += 1

    def apply(self, move: Move) -> None:
        """Applies one move or release; atomic: on ``PlanError`` nothing changed."""
        node, gpus = self.placement.get(move.pod, (None, ()))
        if node != move.from_node or gpus != move.from_gpus:
            raise PlanError(f"pod {move.pod} is on {node} {gpus}, not {move.from_node}")
        self.take_off(move.pod)
        if move.to_node is None:
            return
        try:
            self.put_on(move.pod, move.to_node, move.to_gpus)
        except PlanError:
            self._place(move.pod, node, gpus)
            raise

    def apply_all(self, moves: tuple[Move, ...]) -> None:
        """Applies moves in order, all or none."""
        done: list[Move] = []
        try:
            for move in moves:
                self.apply(move)
                done.append(move)
        except PlanError:
            for move in reversed(done):
                self.undo(move)
            raise

    def undo(self, move: Move) -> None:
        if move.to_node is not None:
            self.take_off(move.pod)
        self._place(move.pod, move.from_node, move.from_gpus)

    # -- result ----------------------------------------------------------------------------

    def to_snapshot(self) -> Snapshot:
        """Returns: the base snapshot with this state's free capacity and placements."""
        nodes = tuple(
            replace(
                n,
                cpu_milli_free=self.cpu_free[n.name],
                memory_mib_free=self.memory_free[n.name],
                gpus=tuple(replace(g, free_milli=self.gpu_free[n.name][g.index]) for g in n.gpus),
            )
            for n in self.base.nodes
        )
        pods = tuple(
            replace(p, node=self.placement[p.id][0], gpus=self.placement[p.id][1])
            for p in self.base.pods
        )
        return replace(self.base, nodes=nodes, pods=pods)
