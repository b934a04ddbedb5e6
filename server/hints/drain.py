"""drain: failing GPUs are cordoned and what runs on them is moved off.

Stage: hints kind. Input: GPUs whose health is failing (fatal XID, uncorrectable ECC, row-remap
failure, lost, failed or fleet-outlier benchmark; classified by the snapshot's builder). Output:
one ``cordon`` hint per failing GPU, with moves for the pods on it that may move (a gang whole,
to healthy GPUs elsewhere). Pods that may not move, or have nowhere to go, stay; the hint still
asks for the cordon, so nothing new lands there, and says who stays.
"""

from __future__ import annotations

from collections.abc import Iterator

from server.hints.hint import Evidence, Gain, Hint, Kind, Move, Remedy, Subject, make_hint
from server.hints.model import Gpu, Health, Pod
from server.hints.planner import Round, restart_of
from server.hints.relocate import relocate, tightest


def propose(round_: Round) -> Iterator[Hint]:
    """Yields a hint per failing GPU, most certain failure first."""
    failing = [
        (node.name, gpu)
        for node in round_.snapshot.nodes
        for gpu in node.gpus
        if gpu.health is Health.FAILING
    ]
    failing.sort(key=lambda item: (-_confidence(round_, item[1]), item[0], item[1].index))
    for node, gpu in failing:
        hint = _hint(round_, node, gpu, with_moves=True)
        yield hint
        if hint.actions and not (round_.accepted and round_.accepted[-1] is hint):
            yield _hint(round_, node, gpu, with_moves=False)  # the cordon alone


def _confidence(round_: Round, gpu: Gpu) -> float:
    return max(round_.policy.confidence_of(f.kind) for f in gpu.failures)


def _hint(round_: Round, node: str, gpu: Gpu, with_moves: bool) -> Hint:
    state, policy = round_.state, round_.policy
    on_gpu = sorted(
        (state.pod(p) for p in state.pods_on[node] if gpu.index in state.gpus_of(p)),
        key=lambda p: p.id,
    )
    moves: list[Move] = []
    stays: list[str] = []
    done: set[str] = set()
    for pod in on_gpu:
        if pod.id in done:
            continue
        group = round_.gang_of(pod)
        done.update(p.id for p in group)
        found = _move_group(round_, group) if with_moves else None
        if found is None:
            stays.extend(p.id for p in group)
        else:
            moves.extend(found)
            for move in found:  # later groups see this one's targets taken
                state.apply(move)
    for move in reversed(moves):
        state.undo(move)
    reasons = ", ".join(f.kind.value + (f" {f.detail}" if f.detail else "") for f in gpu.failures)
    text = f"GPU {gpu.index} of {node} is failing ({reasons}): cordon it"
    if moves:
        text += "; move " + ", ".join(f"{m.pod} to {m.to_node}" for m in moves)
    if stays:
        text += "; " + ", ".join(stays) + " stay (not movable or no healthy target)"
    at_risk = sum(_gpus(state.pod(p)) for p in {pod.id for pod in on_gpu})
    evidence = tuple(
        Evidence(f.series or f.kind.value, 0.0, f.value, None, node=node, gpu=gpu.index)
        for f in gpu.failures
    )
    return make_hint(
        Kind.DRAIN,
        Subject(node=node, gpu=gpu.index),
        Remedy.CORDON,
        tuple(moves),
        evidence,
        Gain(gpu_hours=at_risk * policy.gain_horizon_s / 3600),
        restart_of(round_.snapshot, policy, moves),
        _confidence(round_, gpu),
        text,
    )


def _move_group(round_: Round, group: tuple[Pod, ...]) -> tuple[Move, ...] | None:
    if not all(round_.movable(p) for p in group):
        return None
    return relocate(round_, group, (), tightest(round_))


def _gpus(pod: Pod) -> float:
    return pod.request.num_gpu * pod.request.gpu_milli / 1000
