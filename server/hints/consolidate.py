"""consolidate: low-utilization work packed so whole nodes are freed, to power down (watts).

Stage: hints kind. Input: nodes whose allocated GPU share is below
``Policy.consolidate_below_share`` and whose allocated GPUs' measured utilization is below
``consolidate_max_util_pct`` (requests and usage together, reference §1.6). Output: per such
node, the moves that empty it onto the fullest other nodes (best fit), proposed only when every
pod has a place (KAI's Consolidate) and the cluster keeps ``consolidate_keep_free_gpus`` whole
free GPUs elsewhere. The gain is the freed node's idle draw: Slurm's power saving
(``SuspendTime``/``SuspendProgram``) is the natural sink for the advice.
"""

from __future__ import annotations

from collections.abc import Iterator

from server.hints.hint import Evidence, Gain, Hint, Kind, Move, Remedy, Subject, make_hint
from server.hints.model import MILLI
from server.hints.planner import Round, restart_of
from server.hints.relocate import relocate, tightest


def propose(round_: Round) -> Iterator[Hint]:
    """Yields one hint per node that can be emptied, least allocated first."""
    state, policy = round_.state, round_.policy
    emptied: set[str] = set()
    for name in sorted(state.nodes, key=lambda n: (_share(round_, n), round_.node_rank[n])):
        node = state.nodes[name]
        share = _share(round_, name)
        if not node.gpus or not node.schedulable or not state.pods_on[name]:
            continue
        if share >= policy.consolidate_below_share:
            break
        util = _util(round_, name)
        if util is not None and util >= policy.consolidate_max_util_pct:
            continue
        pods = sorted((state.pod(p) for p in state.pods_on[name]), key=lambda p: p.id)
        if any(p.gang is not None and set(round_.gang_of(p)) - set(pods) for p in pods):
            continue  # a gang spread over other nodes is not moved for packing
        moves = relocate(round_, pods, emptied | {name}, tightest(round_))
        if moves is None or not _keeps_floor(round_, moves, emptied | {name}):
            continue
        hint = _hint(round_, name, share, util, moves)
        yield hint
        if round_.accepted and round_.accepted[-1] is hint:
            emptied.add(name)


def _share(round_: Round, name: str) -> float:
    free = round_.state.gpu_free[name]
    return 1 - sum(free.values()) / (MILLI * len(free)) if free else 1.0


def _util(round_: Round, name: str) -> float | None:
    """Returns: mean measured utilization of the node's allocated GPUs, None without data."""
    state, windows = round_.state, round_.snapshot.gpu_window
    used = [i for i, free in state.gpu_free[name].items() if free < MILLI]
    values = [windows[(name, i)].util_pct for i in used if (name, i) in windows]
    return sum(values) / len(values) if values else None


def _keeps_floor(round_: Round, moves: tuple[Move, ...], off: set[str]) -> bool:
    floor = round_.policy.consolidate_keep_free_gpus
    if floor == 0:
        return True
    state = round_.state
    state.apply_all(moves)
    try:
        whole = sum(
            1
            for name, free in state.gpu_free.items()
            if name not in off and state.nodes[name].schedulable
            for f in free.values()
            if f >= MILLI
        )
    finally:
        for move in reversed(moves):
            state.undo(move)
    return whole >= floor


def _hint(
    round_: Round, name: str, share: float, util: float | None, moves: tuple[Move, ...]
) -> Hint:
    policy, windows = round_.policy, round_.snapshot.gpu_window
    node = round_.state.nodes[name]
    watts = policy.host_idle_watts
    for gpu in node.gpus:
        window = windows.get((name, gpu.index))
        idle_now = round_.state.gpu_free[name][gpu.index] >= MILLI
        watts += window.power_watts if window is not None and idle_now else policy.gpu_idle_watts
    evidence = [Evidence("snapshot:node_gpu_allocated_share", 0.0, share,
                         policy.consolidate_below_share, node=name)]  # fmt: skip
    if util is not None:
        window_s = max((w.window_s for (n, _), w in windows.items() if n == name), default=0.0)
        evidence.append(Evidence("DCGM_FI_DEV_GPU_UTIL", window_s, util,
                                 policy.consolidate_max_util_pct, node=name))  # fmt: skip
    text = (
        f"{name} holds {share:.0%} of its GPUs"
        + (f" at {util:.0f} % utilization" if util is not None else "")
        + f": move its {len(moves)} pods ("
        + ", ".join(f"{m.pod} to {m.to_node}" for m in moves)
        + f") and power it down, saving about {watts:.0f} W"
    )
    return make_hint(
        Kind.CONSOLIDATE,
        Subject(node=name),
        Remedy.MOVE,
        moves,
        tuple(evidence),
        Gain(gpus_usable=float(len(node.gpus)), watts=watts),
        restart_of(round_.snapshot, policy, moves),
        0.7 if util is not None else 0.5,
        text,
    )
