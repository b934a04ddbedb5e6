"""defragment: moves that turn stranded capacity into GPUs a pending shape can use.

Stage: hints kind. Input: the round (working state, budget). Output: one hint per move, each
cutting the cluster's fragment (``fragment.FragMeter``, FGD's measure over the demand mix) by at
least ``Policy.defrag_min_gain_milli``.

Greedy, as the FGD simulator's descheduler: each pass ranks the movable pods by how much
fragment their removal frees on their node, and for each in turn picks the target that keeps
the sum lowest; the move is proposed when the sum drops enough. Two cases dominate:
- a CPU-only pod on a GPU node with free GPUs, whose CPU it starves (91 % of BestFit's stranded
  GPUs on the Alibaba v2023 trace, reference §5.6): it goes to a node without idle GPUs, where
  it strands nothing, tightest CPU fit first;
- a GPU share alone on a GPU: it joins another partly used GPU, making a whole one free.
Gang pods are left alone: a gang is moved for safety (drain, relieve_hot), not for packing.
"""

from __future__ import annotations

from collections.abc import Iterator

from server.hints.fragment import FragMeter, demand_shapes, describe
from server.hints.hint import Evidence, Gain, Hint, Kind, Move, Remedy, Subject, make_hint
from server.hints.model import Pod
from server.hints.planner import Round, restart_of

MAX_PASSES = 8


def propose(round_: Round) -> Iterator[Hint]:
    """Yields defragmenting moves; the engine admits each before the next is chosen."""
    policy = round_.policy
    shapes = demand_shapes(round_.snapshot, policy.defrag_typical_popularity)
    if not any(s.request.num_gpu for s in shapes):
        return
    meter = FragMeter(shapes)
    confidence = 0.9 if round_.snapshot.pending else 0.6
    for _ in range(MAX_PASSES):
        if round_.moves_left == 0:
            return
        admitted = 0
        for pod in _candidates(round_, meter):
            if round_.moves_left == 0:
                return
            hint = _best_move(round_, meter, pod, confidence)
            if hint is not None:
                yield hint
                admitted += bool(round_.accepted) and round_.accepted[-1] is hint
        if admitted == 0:
            return


def _candidates(round_: Round, meter: FragMeter) -> list[Pod]:
    """Returns: movable, gang-free pods on GPU nodes, least fragment left behind first.

    A CPU-only pod helps only where its removal frees fragment (it strands nothing where it
    lands at best); a GPU pod also helps by filling stranded GPUs elsewhere, so every one is
    a candidate."""
    state, found = round_.state, []
    for name in sorted(state.nodes, key=round_.node_rank.__getitem__):
        if not state.gpu_free[name] or round_.node_moves_left(name) == 0:
            continue
        before = meter.node_frag(state, name)
        for pod_id in sorted(state.pods_on[name]):
            pod = state.pod(pod_id)
            if pod.gang is not None or not round_.movable(pod):
                continue
            after = meter.frag_after(state, name, pod.request, state.gpus_of(pod_id), -1)
            if after < before or pod.request.num_gpu:
                found.append((pod, after - before, round_.node_rank[name]))
    found.sort(key=lambda item: (item[1], item[2], item[0].id))
    return [pod for pod, _, _ in found[: round_.policy.defrag_candidates]]


Choice = tuple[float, int, int, str, tuple[int, ...]]


def _within(round_: Round, meter: FragMeter, pod: Pod, source: str, before: float) -> Choice | None:
    """Returns: the move to other GPUs of the same node (a share packed onto a partly used
    GPU), scored like a move elsewhere; None for whole-GPU and CPU-only pods."""
    state = round_.state
    if pod.request.num_gpu != 1 or pod.request.gpu_milli >= 1000:
        return None
    held = state.gpus_of(pod.id)
    state.take_off(pod.id)
    try:
        gpus = state.fits(pod.request, source)
        if gpus is None or gpus == held:
            return None
        delta = meter.frag_after(state, source, pod.request, gpus, +1) - before
    finally:
        state.put_back(pod.id, source, held)
    return (delta, state.cpu_free[source], round_.node_rank[source], source, gpus)


def _best_move(round_: Round, meter: FragMeter, pod: Pod, confidence: float) -> Hint | None:
    state, policy = round_.state, round_.policy
    source = state.node_of(pod.id)
    if source is None or not round_.movable(pod) or round_.node_moves_left(source) == 0:
        return None
    held = state.gpus_of(pod.id)
    before_source = meter.node_frag(state, source)
    off = meter.frag_after(state, source, pod.request, held, -1) - before_source
    if off >= 0 and pod.request.num_gpu == 0:
        return None
    best = _within(round_, meter, pod, source, before_source)
    for name in state.nodes:
        if name == source or round_.node_moves_left(name) == 0:
            continue
        gpus = state.fits(pod.request, name)
        if gpus is None:
            continue
        on = meter.frag_after(state, name, pod.request, gpus, +1) - meter.node_frag(state, name)
        # tightest CPU fit, then the seeded node order, break ties
        left = state.cpu_free[name] - pod.request.cpu_milli
        key = (off + on, left, round_.node_rank[name], name, gpus)
        if best is None or key < best:
            best = key
    if best is None or best[0] > -policy.defrag_min_gain_milli:
        return None
    delta, _, _, target, to_gpus = best
    move = Move(pod.id, source, target, held, to_gpus)
    unlocked = meter.usable_shapes(state, source, pod.request, held)
    gpus_usable = -delta / 1000
    shapes_text = "; ".join(describe(r) for r in unlocked[:3]) or "the demand mix"
    reason = (
        f"move pod {pod.id} ({describe(pod.request)}) from {source} to {target}: {source}'s"
        f" free capacity becomes usable by {shapes_text}"
        f" ({gpus_usable:.2f} GPUs less fragment, weighted by the pending mix)"
    )
    evidence = (
        Evidence("snapshot:node_fragment_milli", 0.0, before_source, None, node=source),
        Evidence("snapshot:node_cpu_milli_free", 0.0, state.cpu_free[source], None, node=source),
        Evidence("snapshot:node_gpu_milli_free", 0.0, sum(state.gpu_free[source].values()), None,
                 node=source),
        Evidence("snapshot:pod_cpu_milli_request", 0.0, pod.request.cpu_milli, None, pod=pod.id),
    )  # fmt: skip
    return make_hint(
        Kind.DEFRAGMENT,
        Subject(node=source, pod=pod.id),
        Remedy.MOVE,
        (move,),
        evidence,
        Gain(gpus_usable=gpus_usable, gpu_hours=gpus_usable * policy.gain_horizon_s / 3600),
        restart_of(round_.snapshot, policy, (move,)),
        confidence,
        reason,
    )
