"""The simulated cluster as the hint engine's ``Snapshot``, and the engine's moves back onto it.

Stage: simulator ↔ engine seam. Input: a ``ClusterState`` (placed pod instances, free capacity),
the demand to weigh fragments by, and optional telemetry. Output: a ``SimSnapshot`` holding the
engine's ``Snapshot`` with the maps between the engine's names and the simulator's indices;
``apply_hints`` plays the engine's hints back through ``ClusterState.move`` and ``evict``.

Names: node ``n`` is the trace's node name, pod instance ``k`` is ``"i<k>"``. GPUs keep their
indices and get the node's model; a pod's ``gpu_spec`` becomes ``Request.gpu_models``. LS pods
(latency-sensitive services) are not preemptible (reference §5.2: "LS/non-preemptible pods
cannot move"); every other QoS class is.

The simulator checks the engine, it does not trust it: a hint whose moves do not fit the
simulated cluster, move a pod that may not move, or pass the budget is counted as a
violation and not applied (all of its moves or none), never skipped silently.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from server.hints.hint import Hint, Move
from server.hints.model import (
    Gpu,
    Node,
    PendingShape,
    Pod,
    Request,
    Snapshot,
    Telemetry,
)
from server.hints.sim.cluster import ClusterState, PlacementError
from server.hints.sim.frag import typical_pods
from server.hints.sim.trace import PodTable, allowed_models

NON_PREEMPTIBLE_QOS = frozenset({"LS"})


def pod_id(instance: int) -> str:
    return f"i{instance}"


def instance_of(pod: str) -> int:
    """Returns: the instance behind an engine pod id (``ValueError`` if it is not ours)."""
    if not pod.startswith("i") or not pod[1:].isdigit():
        raise ValueError(f"not a simulator pod id: {pod!r}")
    return int(pod[1:])


def request_of(pods: PodTable, spec: int) -> Request:
    return Request(
        cpu_milli=int(pods.cpu_milli[spec]),
        memory_mib=int(pods.memory_mib[spec]),
        num_gpu=int(pods.num_gpu[spec]),
        gpu_milli=int(pods.gpu_milli[spec]),
        gpu_models=allowed_models(pods.gpu_spec[spec]),
    )


@lru_cache(maxsize=8)
def requests_of(pods: PodTable) -> tuple[Request, ...]:
    """Returns: every pod spec's request, computed once per table."""
    return tuple(request_of(pods, i) for i in range(len(pods)))


def typical_demand(pods: PodTable) -> tuple[PendingShape, ...]:
    """Returns: the workload's typical pods (FGD's 95 % of shapes) as pending shapes, weighted
    by count per 10,000 pods: the demand that keeps arriving in a trace replay."""
    out: dict[Request, int] = {}
    memory_of = _memory_by_shape(pods)
    for t in typical_pods(pods):
        request = Request(
            cpu_milli=t.cpu_milli,
            memory_mib=memory_of.get((t.cpu_milli, t.gpu_milli, t.num_gpu, t.gpu_spec), 0),
            num_gpu=t.num_gpu,
            gpu_milli=t.gpu_milli,
            gpu_models=allowed_models(t.gpu_spec),
        )
        out[request] = out.get(request, 0) + max(1, round(t.weight * 10_000))
    return tuple(PendingShape(r, c) for r, c in out.items())


def _memory_by_shape(pods: PodTable) -> dict[tuple[int, int, int, str], int]:
    """Typical pods leave memory aside; each shape gets the commonest memory of its pods."""
    seen: dict[tuple[int, int, int, str], Counter[int]] = {}
    for i in range(len(pods)):
        key = (int(pods.cpu_milli[i]), int(pods.gpu_milli[i]), int(pods.num_gpu[i]),
               pods.gpu_spec[i])  # fmt: skip
        seen.setdefault(key, Counter())[int(pods.memory_mib[i])] += 1
    return {key: counts.most_common(1)[0][0] for key, counts in seen.items()}


def failed_demand(state: ClusterState) -> tuple[PendingShape, ...]:
    """Returns: the shapes of the arrivals that found no place, with their counts."""
    counts: Counter[Request] = Counter(
        request_of(state.pods, state.pod_of(k)) for k in state.unplaced()
    )
    return tuple(PendingShape(r, c) for r, c in sorted(counts.items(), key=lambda kv: -kv[1]))


def preemptible(qos: str, fixed: frozenset[str] = NON_PREEMPTIBLE_QOS) -> bool:
    return qos not in fixed


@dataclass(frozen=True)
class SimSnapshot:
    """The engine's snapshot of a cluster state and the maps back to the simulator."""

    snapshot: Snapshot
    node_index: dict[str, int]
    fixed_qos: frozenset[str] = NON_PREEMPTIBLE_QOS


def to_snapshot(
    state: ClusterState,
    pending: Iterable[PendingShape] = (),
    telemetry: Telemetry | None = None,
    now_s: float = 0.0,
    instances: Iterable[int] | None = None,
    fixed_qos: frozenset[str] = NON_PREEMPTIBLE_QOS,
) -> SimSnapshot:
    """Returns: the engine's view of ``state``: every node with its free CPU, memory and GPU
    milli, and the placed instances (or those of ``instances``) as pods; pods of a QoS class
    in ``fixed_qos`` are not preemptible."""
    table, specs = state.nodes, state.pods
    nodes = tuple(
        Node(
            name=table.names[n],
            cpu_milli=int(table.cpu_milli[n]),
            cpu_milli_free=int(state.cpu_free[n]),
            memory_mib=int(table.memory_mib[n]),
            memory_mib_free=int(state.memory_free[n]),
            gpus=tuple(
                Gpu(index=g, model=table.model[n], free_milli=int(state.gpu_free[n, g]))
                for g in range(int(table.num_gpu[n]))
            ),
        )
        for n in range(len(table))
    )
    chosen = range(state.instance_count) if instances is None else instances
    pods = []
    requests = requests_of(specs)
    for k in chosen:
        node = state.node_of(k)
        if node is None:
            continue
        spec = state.pod_of(k)
        pods.append(
            Pod(
                id=pod_id(k),
                request=requests[spec],
                node=table.names[node],
                gpus=state.gpus_of(k),
                preemptible=preemptible(specs.qos[spec], fixed_qos),
                qos=specs.qos[spec],
            )
        )
    snapshot = Snapshot(
        nodes=nodes,
        pods=tuple(pods),
        pending=tuple(pending),
        telemetry=telemetry or Telemetry(),
        now_s=now_s,
    )
    return SimSnapshot(snapshot, {name: n for n, name in enumerate(table.names)}, fixed_qos)


@dataclass
class Applied:
    """What playing hints back did: moves and releases applied, pods touched, violations."""

    hints: int = 0
    moves: int = 0
    releases: int = 0
    moved: set[int] = field(default_factory=set)
    released: list[int] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)


def apply_hints(
    state: ClusterState,
    view: SimSnapshot,
    hints: Sequence[Hint],
    max_moves: int | None = None,
    max_releases: int | None = None,
    applied: Applied | None = None,
) -> Applied:
    """Applies each hint's moves to ``state`` in order, a hint all or none.

    A hint is a violation, counted and not applied, when a move names a pod or node the
    simulator does not know, a pod not where the move says, a pod that may not move, a pod
    already moved in this call, a target that does not hold it, or when it would pass
    ``max_moves`` / ``max_releases`` (None: no cap).
    """
    out = applied or Applied()
    touched: set[int] = set()
    for hint in hints:
        problem = _apply_one(state, view, hint, touched, out, max_moves, max_releases)
        if problem is not None:
            out.violations.append(f"{hint.kind.value} {hint.id}: {problem}")
        else:
            out.hints += 1
    return out


def _apply_one(
    state: ClusterState,
    view: SimSnapshot,
    hint: Hint,
    touched: set[int],
    out: Applied,
    max_moves: int | None,
    max_releases: int | None,
) -> str | None:
    moves = [m for m in hint.actions if not m.is_release]
    releases = len(hint.actions) - len(moves)
    if max_moves is not None and out.moves + len(moves) > max_moves:
        return f"{len(moves)} moves past the budget of {max_moves}"
    if max_releases is not None and out.releases + releases > max_releases:
        return f"{releases} releases past the budget of {max_releases}"
    done: list[tuple[int, int, tuple[int, ...]]] = []  # (instance, origin node, origin GPUs)
    problem = None
    for move in hint.actions:
        try:
            problem = _apply_move(state, view, move, touched, done)
        except (PlacementError, ValueError) as exc:
            problem = f"{move.pod}: {exc}"
        if problem is not None:
            break
    if problem is not None:
        for k, origin, gpus in reversed(done):
            if state.node_of(k) is not None:
                state.evict(k)
            state.place(k, origin, gpus)
        return problem
    for k, _, _ in done:
        touched.add(k)
        if state.node_of(k) is None:
            out.releases += 1
            out.released.append(k)
        else:
            out.moves += 1
            out.moved.add(k)
    return None


def _apply_move(
    state: ClusterState,
    view: SimSnapshot,
    move: Move,
    touched: set[int],
    done: list[tuple[int, int, tuple[int, ...]]],
) -> str | None:
    """Applies one move (raising ``PlacementError`` when it does not fit). Returns: the
    problem that kept it from being tried, or None."""
    k = instance_of(move.pod)
    problem = _check(state, view, move.pod, k, move.from_node, move.from_gpus, touched)
    if problem is not None:
        return problem
    origin, gpus = state.node_of(k), state.gpus_of(k)
    assert origin is not None  # _check saw it placed
    if move.to_node is None:
        state.evict(k)
    else:
        target = view.node_index.get(move.to_node)
        if target is None:
            return f"unknown target node {move.to_node}"
        state.move(k, target, move.to_gpus)
    done.append((k, origin, gpus))
    return None


def _check(
    state: ClusterState,
    view: SimSnapshot,
    pod: str,
    k: int,
    from_node: str,
    from_gpus: tuple[int, ...],
    touched: set[int],
) -> str | None:
    if not 0 <= k < state.instance_count:
        return f"unknown pod {pod}"
    if k in touched:
        return f"pod {pod} moved twice"
    node = state.node_of(k)
    if node is None or view.node_index.get(from_node) != node or state.gpus_of(k) != from_gpus:
        return f"pod {pod} is not on {from_node} {from_gpus}"
    qos = state.pods.qos[state.pod_of(k)]
    if not preemptible(qos, view.fixed_qos):
        return f"pod {pod} is not preemptible ({qos})"
    return None
