"""Finding new places for a group of pods (a gang, a node's pods) on the round's state.

Stage: hints planning helper for drain, relieve_hot and consolidate. Input: the pods to move,
the nodes they may not go to, and an order of preference over targets. Output: the moves, each
pod on the first target in that order that holds it after the moves before it, or None when
one pod has nowhere to go (then none moves: KAI's Consolidate commits a scenario only when every
evicted pod has somewhere to go). The working state is left as it was; the planner applies.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence

from server.hints.hint import Move
from server.hints.model import Pod
from server.hints.planner import Round

TargetKey = Callable[[str], tuple[float, ...]]


def relocate(
    round_: Round, pods: Sequence[Pod], avoid: Collection[str], key: TargetKey
) -> tuple[Move, ...] | None:
    """Returns: a move per pod to a node outside ``avoid``, or None if one does not fit."""
    state = round_.state
    if len(pods) > round_.moves_left:
        return None
    targets = sorted((n for n in state.nodes if n not in avoid), key=key)
    moves: list[Move] = []
    try:
        for pod in pods:
            source = state.node_of(pod.id)
            if source is None or not round_.movable(pod):
                return None
            held = state.gpus_of(pod.id)
            state.take_off(pod.id)
            for name in targets:
                gpus = state.fits(pod.request, name)
                if gpus is not None and round_.node_moves_left(name) > 0:
                    state.put_on(pod.id, name, gpus)
                    moves.append(Move(pod.id, source, name, held, gpus))
                    break
            else:
                state.put_back(pod.id, source, held)
                return None
        return tuple(moves)
    finally:
        for move in reversed(moves):
            state.undo(move)


def tightest(round_: Round) -> TargetKey:
    """Returns: a key preferring targets with the least free GPU milli, then CPU (best fit,
    which keeps whole GPUs and nodes free), the seeded node order breaking ties."""
    state = round_.state

    def key(name: str) -> tuple[float, ...]:
        free = state.gpu_free[name]
        return (sum(free.values()), state.cpu_free[name], round_.node_rank[name])

    return key
