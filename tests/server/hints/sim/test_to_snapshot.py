from __future__ import annotations

import numpy as np

from server.hints import engine
from server.hints.hint import Gain, Hint, Kind, Move, Remedy, Subject, make_hint
from server.hints.policy import Policy
from server.hints.sim.cluster import ClusterState
from server.hints.sim.replay import replay
from server.hints.sim.synthetic import synthetic_trace
from server.hints.sim.to_snapshot import (
    apply_hints,
    failed_demand,
    instance_of,
    pod_id,
    to_snapshot,
    typical_demand,
)
from server.hints.sim.trace import PodTable
from tests.server.hints.sim.tables import node_table, pod_table

# node 0: 2 x T4, 16 cores; node 1: 4 x V100, 32 cores; node 2: 8 x G2 with 8 cores only
NODES = node_table(
    [(16_000, 65_536, 2, "T4"), (32_000, 131_072, 4, "V100M16"), (8_000, 65_536, 8, "G2")]
)
# 0: half a GPU; 1: two whole GPUs, V100 only; 2: CPU-only, 12 cores; 3: one GPU, 2 cores
PODS = pod_table(
    [
        (4_000, 8_192, 1, 500, ""),
        (8_000, 16_384, 2, 1000, "V100M16|V100M32"),
        (12_000, 4_096, 0, 0, ""),
        (2_000, 4_096, 1, 1000, ""),
    ]
)


def with_qos(pods: PodTable, qos: tuple[str, ...]) -> PodTable:
    return PodTable(pods.names, pods.cpu_milli, pods.memory_mib, pods.num_gpu, pods.gpu_milli,
                    pods.gpu_spec, qos)  # fmt: skip


def move_hint(*moves: Move) -> Hint:
    return make_hint(Kind.DEFRAGMENT, Subject(pod=moves[0].pod), Remedy.MOVE, tuple(moves), (),
                     Gain(), 0.0, 0.9, "test")  # fmt: skip


def placed() -> ClusterState:
    state = ClusterState(NODES, with_qos(PODS, ("BE", "LS", "BE", "BE")))
    state.place(state.add(0), 0, (1,))
    state.place(state.add(1), 1, (0, 2))
    state.place(state.add(2), 0, ())
    state.add(3)  # arrived, never placed
    return state


def test_a_placed_pod_appears_on_its_node_with_its_gpus_and_request() -> None:
    view = to_snapshot(placed())
    snap = view.snapshot
    assert [p.id for p in snap.pods] == ["i0", "i1", "i2"]  # the unplaced one is no pod
    share, pair, cpu_only = snap.pods
    assert (share.node, share.gpus, share.request.gpu_milli) == ("node-0", (1,), 500)
    assert (pair.node, pair.gpus, pair.request.num_gpu) == ("node-1", (0, 2), 2)
    assert pair.request.gpu_models == frozenset({"V100M16", "V100M32"})
    assert cpu_only.request.num_gpu == 0 and cpu_only.gpus == ()
    assert [p.preemptible for p in snap.pods] == [True, False, True]  # LS stays
    node0 = snap.node_by_name["node-0"]
    assert node0.cpu_milli_free == 0 and node0.memory_mib_free == 65_536 - 8_192 - 4_096
    assert [(g.model, g.free_milli) for g in node0.gpus] == [("T4", 1000), ("T4", 500)]
    assert [g.free_milli for g in snap.node_by_name["node-1"].gpus] == [0, 1000, 0, 1000]
    assert view.node_index == {"node-0": 0, "node-1": 1, "node-2": 2}
    assert instance_of(pod_id(7)) == 7


def test_applying_a_move_updates_both_nodes_and_the_next_snapshot() -> None:
    state = placed()
    view = to_snapshot(state)
    hint = move_hint(Move("i0", "node-0", "node-1", (1,), (1,)))
    applied = apply_hints(state, view, [hint])
    assert applied.violations == [] and applied.moves == 1 and applied.moved == {0}
    assert state.node_of(0) == 1 and state.gpus_of(0) == (1,)
    assert state.gpu_free[0, :2].tolist() == [1000, 1000]
    assert state.cpu_free[0] == 16_000 - 12_000
    assert state.gpu_free[1, :4].tolist() == [0, 500, 0, 1000]
    after = to_snapshot(state).snapshot
    assert after.pod_by_id["i0"].node == "node-1"
    # the engine's own apply agrees with the simulator's
    assert engine.apply(view.snapshot, [hint]) == after


def test_a_release_frees_the_pod_s_capacity() -> None:
    state = placed()
    view = to_snapshot(state)
    free = (Move("i0", "node-0", None, (1,)),)
    release = make_hint(Kind.RECLAIM_IDLE, Subject(pod="i0"), Remedy.RELEASE, free, (), Gain(),
                        0.0, 0.9, "idle")  # fmt: skip
    applied = apply_hints(state, view, [release])
    assert applied.releases == 1 and applied.released == [0]
    assert state.node_of(0) is None and state.gpu_free[0, 1] == 1000


def test_a_hint_that_does_not_fit_is_a_violation_and_changes_nothing() -> None:
    state = placed()
    view = to_snapshot(state)
    before = (state.cpu_free.copy(), state.gpu_free.copy())
    hints = [
        # node 2 has 8 cores free, the CPU-only pod asks for 12
        move_hint(Move("i2", "node-0", "node-2", (), ())),
        # the LS pod may not move
        move_hint(Move("i1", "node-1", "node-1", (0, 2), (1, 3))),
        # the first move fits, the second does not: neither is applied
        move_hint(
            Move("i0", "node-0", "node-2", (1,), (0,)),
            Move("i2", "node-0", "node-2", (), ()),
        ),
        # not where the hint says
        move_hint(Move("i0", "node-1", "node-2", (1,), (0,))),
        move_hint(Move("i9", "node-0", "node-2", (), ())),
    ]
    applied = apply_hints(state, view, hints)
    assert len(applied.violations) == len(hints)
    assert "not preemptible" in applied.violations[1]
    assert applied.moves == 0 and applied.hints == 0
    assert np.array_equal(state.cpu_free, before[0])
    assert np.array_equal(state.gpu_free, before[1])
    assert state.node_of(0) == 0 and state.gpus_of(0) == (1,)


def test_moves_past_the_budget_are_violations() -> None:
    state = placed()
    view = to_snapshot(state)
    hints = [
        move_hint(Move("i0", "node-0", "node-2", (1,), (0,))),
        move_hint(Move("i2", "node-0", "node-1", (), ())),
    ]
    applied = apply_hints(state, view, hints, max_moves=1)
    assert applied.moves == 1 and len(applied.violations) == 1
    assert "budget" in applied.violations[0]
    assert state.node_of(2) == 0


def test_demand_is_the_typical_mix_or_the_failed_arrivals() -> None:
    state = placed()
    assert [(s.request.num_gpu, s.request.gpu_milli, s.count) for s in failed_demand(state)] == [
        (1, 1000, 1)
    ]
    mix = typical_demand(PODS)
    assert sum(s.count for s in mix) == 10_000
    assert {s.request.memory_mib for s in mix} == {8_192, 16_384, 4_096}


def test_the_engine_s_plan_on_a_replayed_cluster_applies_without_violations() -> None:
    nodes, pods = synthetic_trace(10, nodes=40, pods=300)
    seen = {}

    def hook(state: ClusterState, _: object) -> None:
        view = to_snapshot(state, typical_demand(pods))
        hints = engine.rebalance(view.snapshot, Policy(max_moves_per_round=30), seed=10)
        used = state.used_gpu_milli
        seen["applied"] = apply_hints(state, view, hints, max_moves=30)
        seen["hints"] = hints
        assert state.used_gpu_milli == used  # moves keep every pod's allocation
        demand = view.snapshot.pending
        assert engine.apply(view.snapshot, hints) == to_snapshot(state, demand).snapshot

    replay(nodes, pods, "bestfit", 10, 1.3, hooks={1.0: hook})
    applied = seen["applied"]
    assert applied.violations == []
    assert applied.moves > 0
    assert applied.moves == sum(len(h.actions) for h in seen["hints"])  # type: ignore[attr-defined]
