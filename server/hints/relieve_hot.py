"""relieve_hot: jobs on GPUs that throttle, or run near their slowdown temperature.

Stage: hints kind. Input: per-GPU telemetry windows (maximum temperature, the share of the
window each clock-event reason held the clocks down) and the GPU's slowdown temperature. A GPU
is hot when, over the window, a thermal or power reason held its clocks for at least
``Policy.throttle_share`` of the time, or its temperature came within ``hot_margin_celsius`` of
slowdown. Output: per pod on a hot GPU (a gang whole), a move to the coolest nodes without hot
GPUs, or when none holds it or it may not move, ``reduce_power`` in place (a lower power limit
or application clocks, which trades a little speed for no throttling).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from server.hints.hint import Evidence, Gain, Hint, Kind, Move, Remedy, Subject, make_hint
from server.hints.model import POWER_EVENTS, THERMAL_EVENTS, GpuWindow
from server.hints.planner import Round, restart_of
from server.hints.relocate import relocate


@dataclass(frozen=True)
class Heat:
    """Why one GPU counts as hot."""

    window: GpuWindow
    slowdown_celsius: float
    near_slowdown: bool
    thermal_share: float
    power_share: float

    @property
    def throttle_share(self) -> float:
        return max(self.thermal_share, self.power_share)


def hot_gpus(round_: Round) -> dict[tuple[str, int], Heat]:
    """Returns: the hot GPUs of the snapshot, keyed by (node, GPU index)."""
    policy, found = round_.policy, {}
    for window in round_.snapshot.telemetry.gpus:
        node = round_.snapshot.node_by_name.get(window.node)
        gpu = next((g for g in node.gpus if g.index == window.gpu), None) if node else None
        if gpu is None:
            continue
        slowdown = gpu.slowdown_celsius or policy.default_slowdown_celsius
        heat = Heat(
            window=window,
            slowdown_celsius=slowdown,
            near_slowdown=window.temperature_celsius >= slowdown - policy.hot_margin_celsius,
            thermal_share=window.share_of(THERMAL_EVENTS),
            power_share=window.share_of(POWER_EVENTS),
        )
        if heat.near_slowdown or heat.throttle_share >= policy.throttle_share:
            found[(window.node, window.gpu)] = heat
    return found


def propose(round_: Round) -> Iterator[Hint]:
    """Yields a hint per pod on a hot GPU, the most throttled first."""
    hot = hot_gpus(round_)
    if not hot:
        return
    state = round_.state
    hot_nodes = {node for node, _ in hot}
    peak: dict[str, float] = {}
    for window in round_.snapshot.telemetry.gpus:
        peak[window.node] = max(peak.get(window.node, 0.0), window.temperature_celsius)

    def coolest(name: str) -> tuple[float, ...]:
        return (peak.get(name, 0.0), sum(state.gpu_free[name].values()), round_.node_rank[name])

    cases = []
    seen: set[str] = set()
    for (node, index), heat in sorted(hot.items(), key=lambda kv: (-kv[1].throttle_share, kv[0])):
        for pod_id in sorted(state.pods_on[node]):
            pod = state.pod(pod_id)
            if index not in state.gpus_of(pod_id) or pod_id in seen:
                continue
            group = round_.gang_of(pod)
            seen.update(p.id for p in group)
            cases.append((node, index, heat, group))
    for node, index, heat, group in cases:
        moves = None
        if all(round_.movable(p) for p in group):
            moves = relocate(round_, group, hot_nodes, coolest)
        yield _hint(round_, node, index, heat, group[0].id, moves)


def _hint(
    round_: Round, node: str, index: int, heat: Heat, pod: str, moves: tuple[Move, ...] | None
) -> Hint:
    policy = round_.policy
    w = heat.window
    confidence = 0.4
    confidence += 0.3 if heat.throttle_share >= policy.throttle_share else 0.0
    confidence += 0.2 if heat.near_slowdown else 0.0
    confidence += 0.1 * min(1.0, heat.throttle_share)
    slowed = max(heat.throttle_share, 0.1 if heat.near_slowdown else 0.0)
    gpus = round_.snapshot.pod_by_id[pod].request.num_gpu
    evidence = [
        Evidence("DCGM_FI_DEV_GPU_TEMP", w.window_s, w.temperature_celsius,
                 heat.slowdown_celsius - policy.hot_margin_celsius, node=node, gpu=index),
        Evidence("DCGM_FI_DEV_POWER_USAGE", w.window_s, w.power_watts, None, node=node, gpu=index),
    ]  # fmt: skip
    evidence += [
        Evidence(f"dcmon_gpu_clocks_event_reason{{reason={event.value}}}", w.window_s, share,
                 policy.throttle_share, node=node, gpu=index)
        for event, share in sorted(w.clock_event_share.items()) if share > 0
    ]  # fmt: skip
    what = (
        f"GPU {index} of {node} reached {w.temperature_celsius:g} °C (slowdown"
        f" {heat.slowdown_celsius:g} °C), clocks held down {heat.throttle_share:.0%} of"
        f" {w.window_s / 60:g} min"
    )
    actions = tuple(moves or ())
    if actions:
        remedy = Remedy.MOVE
        text = f"{what}: move " + ", ".join(f"{m.pod} to {m.to_node}" for m in actions)
    else:
        remedy = Remedy.REDUCE_POWER
        text = f"{what}: no cooler node holds pod {pod}; lower its GPU's power limit or clocks"
    return make_hint(
        Kind.RELIEVE_HOT,
        Subject(node=node, gpu=index, pod=pod),
        remedy,
        actions,
        tuple(evidence),
        Gain(gpu_hours=slowed * gpus * policy.gain_horizon_s / 3600),
        restart_of(round_.snapshot, policy, actions),
        confidence,
        text,
    )
