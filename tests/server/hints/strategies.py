"""Hypothesis strategies: small random clusters in a valid state, policies, proposed hints."""

from __future__ import annotations

from hypothesis import strategies as st

from server.hints.hint import Gain, Hint, Kind, Move, Remedy, Subject, make_hint
from server.hints.model import (
    MILLI,
    ClockEvent,
    Failure,
    FailureKind,
    GpuWindow,
    JobActivity,
    Node,
    PendingShape,
    Pod,
    Request,
    Snapshot,
    Telemetry,
)
from server.hints.policy import Policy
from server.hints.state import WorkingState
from tests.server.hints.builders import cluster, gpu_node

requests = st.one_of(
    st.builds(
        Request,
        st.integers(1, 48).map(lambda c: c * 1000),
        st.integers(1, 64).map(lambda m: m * 1024),
    ),
    st.builds(
        lambda c, share: Request(c * 1000, 8192, 1, share),
        st.integers(1, 16),
        st.sampled_from([100, 250, 300, 500, 700, 1000]),
    ),
    st.builds(
        lambda c, n, models: Request(c * 1000, 16384, n, MILLI, models),
        st.integers(1, 32),
        st.sampled_from([2, 4, 8]),
        st.sampled_from([frozenset(), frozenset({"A"}), frozenset({"B"})]),
    ),
)


@st.composite
def snapshots(draw: st.DrawFn) -> Snapshot:
    """A cluster of 2-6 nodes filled by first fit with random pods, some ganged, some pinned,
    with random failures, heat, idleness and pending demand."""
    nodes: list[Node] = []
    for i in range(draw(st.integers(2, 6))):
        gpus = draw(st.sampled_from([0, 2, 4, 8]))
        failures: dict[int, tuple[Failure, ...]] = {}
        if gpus and draw(st.booleans()) and draw(st.booleans()):
            failures[draw(st.integers(0, gpus - 1))] = (Failure(FailureKind.FATAL_XID, "79"),)
        nodes.append(
            gpu_node(
                f"n{i}", gpus=gpus, cpu_milli=draw(st.sampled_from([16, 32, 64, 96, 128])) * 1000,
                memory_mib=draw(st.sampled_from([64, 256, 512])) * 1024,
                model=draw(st.sampled_from(["A", "B"])), failures=failures,
            )
        )  # fmt: skip
    empty = cluster(nodes, [])
    state = WorkingState(empty)
    pods: list[Pod] = []
    for k in range(draw(st.integers(0, 14))):
        request = draw(requests)
        order = draw(st.permutations([n.name for n in nodes]))
        target = next(((n, g) for n in order if (g := state.fits(request, n)) is not None), None)
        if target is None:
            continue
        gang = draw(st.sampled_from([None, None, "g1", "g2"]))
        pod = Pod(
            id=f"p{k}", request=request, node=target[0], gpus=target[1], gang=gang,
            preemptible=draw(st.booleans()) or draw(st.booleans()),
        )  # fmt: skip
        pods.append(pod)
        state = WorkingState(cluster(nodes, pods))
    windows = []
    for node in nodes:
        for gpu in node.gpus:
            if draw(st.booleans()):
                windows.append(
                    GpuWindow(
                        node.name, gpu.index, 600.0,
                        util_pct=draw(st.floats(0, 100)),
                        power_watts=draw(st.floats(50, 700)),
                        temperature_celsius=draw(st.floats(30, 95)),
                        clock_event_share={
                            ClockEvent.HW_THERMAL_SLOWDOWN: draw(st.floats(0, 1)),
                            ClockEvent.SW_POWER_CAP: draw(st.floats(0, 1)),
                        },
                    )
                )  # fmt: skip
    activities = []
    for pod in pods:
        if draw(st.booleans()):
            running = draw(st.floats(0, 20 * 3600))
            activities.append(
                JobActivity(
                    pod.id, 600.0, draw(st.floats(0, 30)), draw(st.floats(0, 40)),
                    idle_s=draw(st.floats(0, running)), running_s=running,
                    resumed_gaps_s=tuple(draw(st.lists(st.floats(60, 7200), max_size=3))),
                )
            )  # fmt: skip
    pending = tuple(
        PendingShape(r, c)
        for r, c in draw(st.lists(st.tuples(requests, st.integers(1, 5)), max_size=3))
    )
    return cluster(
        nodes, pods, pending=pending,
        telemetry=Telemetry(gpus=tuple(windows), jobs=tuple(activities)),
    )  # fmt: skip


policies = st.builds(
    Policy,
    max_moves_per_round=st.integers(0, 6),
    max_moves_per_node=st.sampled_from([None, 1, 2]),
    max_releases_per_round=st.integers(0, 3),
    min_confidence=st.sampled_from([0.0, 0.2, 0.5]),
    consolidate_below_share=st.sampled_from([0.3, 0.6, 0.9]),
    defrag_min_gain_milli=st.sampled_from([1.0, 50.0]),
)


@st.composite
def proposals(draw: st.DrawFn, snapshot: Snapshot) -> list[Hint]:
    """Arbitrary hints over a snapshot's pods and nodes, most of them breaking something."""
    names = [n.name for n in snapshot.nodes]
    hints = []
    for _ in range(draw(st.integers(0, 6))):
        moves = []
        chosen = draw(st.lists(st.sampled_from(snapshot.pods), max_size=3)) if snapshot.pods else []
        for pod in chosen:
            to = draw(st.sampled_from([*names, None]))
            gpus: tuple[int, ...] = ()
            if to is not None and pod.request.num_gpu:
                indices = [g.index for g in snapshot.node_by_name[to].gpus]
                if len(indices) < pod.request.num_gpu:
                    continue
                gpus = tuple(draw(st.permutations(indices))[: pod.request.num_gpu])
            moves.append(Move(pod.id, pod.node or "", to, pod.gpus, gpus))
        hints.append(
            make_hint(
                draw(st.sampled_from(list(Kind))), Subject(), Remedy.MOVE, tuple(moves), (),
                Gain(), 0.0, draw(st.floats(0, 1)), "proposed",
            )
        )  # fmt: skip
    return hints
