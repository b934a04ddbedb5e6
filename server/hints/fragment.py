"""GPU fragmentation of a node against the demand mix (FGD's measure), for defragment.

Stage: hints scoring. Input: demand shapes with weights (the pending shapes, or without them
the shapes of placed pods, FGD's "typical pods") and a node's free CPU, memory and free milli
per healthy GPU. Output: the node's expected fragment in milli-GPUs: for each shape of weight w,
- it cannot run on the node (CPU, memory, GPU model, too few GPUs with its share free) or asks
  for no GPU: all the node's idle GPU milli counts, x w;
- it can run: the idle milli on GPUs it cannot use (less free than its share, or another
  model) counts, x w.
(FGD, ATC'23, §4; the reference simulator's fragment score.) A move's gain is how much it
lowers the sum over its source and target.

Results are cached by what they depend on: CPU and memory only through which shapes fit, and
the sorted (model, free milli) of the GPUs.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from dataclasses import dataclass

from server.hints.model import Health, Request, Snapshot
from server.hints.state import WorkingState, gpu_allowed


@dataclass(frozen=True)
class Shape:
    """A demand shape and its weight in the mix (weights sum to 1)."""

    request: Request
    weight: float


def demand_shapes(snapshot: Snapshot, popularity: float) -> tuple[Shape, ...]:
    """Returns: the pending shapes weighted by count; without pending demand, the commonest
    shapes of the placed pods covering ``popularity`` of them (FGD's typical pods)."""
    counts: Counter[Request] = Counter()
    if snapshot.pending:
        for shape in snapshot.pending:
            counts[shape.request] += max(shape.count, 0)
        chosen = sorted(counts.items(), key=_rank)
    else:
        counts.update(p.request for p in snapshot.pods if p.node is not None)
        chosen = []
        total, covered = sum(counts.values()), 0
        for request, count in sorted(counts.items(), key=_rank):
            if covered >= popularity * total:
                break
            chosen.append((request, count))
            covered += count
    weight = float(sum(c for _, c in chosen))
    return tuple(Shape(r, c / weight) for r, c in chosen if c > 0) if weight else ()


def _rank(item: tuple[Request, int]) -> tuple[int, int, int, int, int, tuple[str, ...]]:
    r, count = item
    return (-count, -r.num_gpu, -r.gpu_milli, -r.cpu_milli, -r.memory_mib, tuple(r.gpu_models))


def describe(request: Request) -> str:
    """Returns: a short text of a request, e.g. '8 GPUs, 32 CPU' or '0.5 GPU, 4 CPU'."""
    cpu = f"{request.cpu_milli / 1000:g} CPU"
    if request.num_gpu == 0:
        return f"no GPU, {cpu}"
    if request.num_gpu == 1 and request.gpu_milli < 1000:
        return f"{request.gpu_milli / 1000:g} GPU, {cpu}"
    return f"{request.num_gpu} GPU{'s' if request.num_gpu > 1 else ''}, {cpu}"


GpuKey = tuple[tuple[str, int], ...]


class FragMeter:
    """Fragment of nodes (milli-GPUs, weighted by the mix) on a working state."""

    def __init__(self, shapes: tuple[Shape, ...]) -> None:
        self.shapes = shapes
        self._cpu_steps = sorted({s.request.cpu_milli for s in shapes})
        self._memory_steps = sorted({s.request.memory_mib for s in shapes})
        self._cache: dict[tuple[int, int, GpuKey], float] = {}

    def gpu_key(
        self, state: WorkingState, node: str, delta: dict[int, int] | None = None
    ) -> GpuKey:
        """Returns: sorted (model, free milli) of the node's healthy GPUs, with ``delta`` added."""
        free = state.gpu_free[node]
        delta = delta or {}
        return tuple(
            sorted(
                (g.model, free[g.index] + delta.get(g.index, 0))
                for g in state.nodes[node].gpus
                if g.health is Health.OK
            )
        )

    def frag(self, cpu_free: int, memory_free: int, gpus: GpuKey) -> float:
        """Returns: the expected fragment (milli-GPUs) of a node in this state."""
        key = (
            bisect_right(self._cpu_steps, cpu_free),
            bisect_right(self._memory_steps, memory_free),
            gpus,
        )
        cached = self._cache.get(key)
        if cached is None:
            cached = self._compute(cpu_free, memory_free, gpus)
            self._cache[key] = cached
        return cached

    def _compute(self, cpu_free: int, memory_free: int, gpus: GpuKey) -> float:
        idle = sum(free for _, free in gpus)
        if idle == 0:
            return 0.0
        total = 0.0
        for shape in self.shapes:
            r = shape.request
            if r.num_gpu == 0 or r.cpu_milli > cpu_free or r.memory_mib > memory_free:
                total += shape.weight * idle
                continue
            usable = [
                free
                for model, free in gpus
                if free >= r.gpu_milli and (not r.gpu_models or model in r.gpu_models)
            ]
            if len(usable) < r.num_gpu:
                total += shape.weight * idle
            else:
                total += shape.weight * (idle - sum(usable))
        return total

    def node_frag(self, state: WorkingState, node: str) -> float:
        return self.frag(state.cpu_free[node], state.memory_free[node], self.gpu_key(state, node))

    def frag_after(
        self, state: WorkingState, node: str, request: Request, gpus: tuple[int, ...], sign: int
    ) -> float:
        """Returns: the node's fragment after adding (sign +1) or removing (-1) ``request``
        on ``gpus``; nothing is changed."""
        delta = dict.fromkeys(gpus, -sign * request.gpu_milli)
        return self.frag(
            state.cpu_free[node] - sign * request.cpu_milli,
            state.memory_free[node] - sign * request.memory_mib,
            self.gpu_key(state, node, delta),
        )

    def usable_shapes(
        self, state: WorkingState, node: str, request: Request, gpus: tuple[int, ...]
    ) -> list[Request]:
        """Returns: the demand shapes that fit ``node`` once ``request`` leaves it, not before."""
        found = []
        for shape in self.shapes:
            r = shape.request
            if r.num_gpu == 0 or self._fits(state, node, r, None):
                continue
            if self._fits(state, node, r, (request, gpus)):
                found.append(r)
        return found

    @staticmethod
    def _fits(
        state: WorkingState,
        node: str,
        r: Request,
        leaving: tuple[Request, tuple[int, ...]] | None,
    ) -> bool:
        cpu, memory = state.cpu_free[node], state.memory_free[node]
        free = dict(state.gpu_free[node])
        if leaving is not None:
            gone, held = leaving
            cpu += gone.cpu_milli
            memory += gone.memory_mib
            for index in held:
                free[index] += gone.gpu_milli
        if cpu < r.cpu_milli or memory < r.memory_mib:
            return False
        usable = [
            g for g in state.nodes[node].gpus if gpu_allowed(g, r) and free[g.index] >= r.gpu_milli
        ]
        return len(usable) >= r.num_gpu
