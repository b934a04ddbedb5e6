"""The planner's rules one at a time, the engine's order, ids and seed, and apply."""

from __future__ import annotations

import pytest

from server.hints.engine import apply, plan, rebalance
from server.hints.hint import Gain, Hint, Kind, Move, Remedy, Subject, hint_id, make_hint
from server.hints.model import Failure, FailureKind, JobActivity, Snapshot, SnapshotError, Telemetry
from server.hints.planner import Round, violations
from server.hints.policy import Policy, PolicyError
from server.hints.state import PlanError
from tests.server.hints.builders import cluster, cpu_node, gpu_node, pod, shape


def moving(*moves: Move, confidence: float = 0.9) -> Hint:
    return make_hint(
        Kind.DEFRAGMENT, Subject(), Remedy.MOVE, moves, (), Gain(), 0.0, confidence, "test"
    )


def two_nodes() -> Snapshot:
    return cluster(
        [gpu_node("a", gpus=2), gpu_node("b", gpus=2, cpu_milli=8_000)],
        [
            pod("free", "a", gpus=(0,)),
            pod("pinned", "a", gpus=(1,), preemptible=False),
            pod("g0", "b", gpus=(0,), cpu_milli=2_000, gang="g"),
            pod("g1", "b", gpus=(1,), cpu_milli=2_000, gang="g"),
        ],
    )


@pytest.mark.parametrize(
    ("hint", "reason"),
    [
        (moving(Move("pinned", "a", "b", (1,), (0,))), "not movable"),
        (moving(Move("g0", "b", "a", (0,), (0,))), "gang split"),
        (moving(Move("free", "a", "b", (0,), (0,))), "capacity"),  # b's GPU 0 is taken
        (moving(Move("free", "b", "a", (0,), (1,))), "capacity"),  # not where it says
        (moving(Move("free", "a", None, (0,)), Move("free", "a", None, (0,))), "pod twice"),
        (moving(Move("free", "a", None, (0,)), confidence=0.1), "confidence"),
    ],
)
def test_the_planner_rejects_each_broken_rule(hint: Hint, reason: str) -> None:
    snapshot = two_nodes()
    round_ = Round(snapshot, Policy())
    assert not round_.admit(hint)
    assert dict(round_.rejected) == {reason: 1}
    assert round_.accepted == [] and round_.state.to_snapshot() == snapshot


def test_budgets_cap_moves_per_round_and_per_node() -> None:
    snapshot = cluster(
        [gpu_node("a", gpus=4), gpu_node("b", gpus=4), gpu_node("c", gpus=4)],
        [pod(f"p{i}", "a", gpus=(i,), cpu_milli=1_000) for i in range(4)],
    )
    hints = [moving(Move(f"p{i}", "a", "b" if i % 2 else "c", (i,), (i,))) for i in range(4)]
    round_ = Round(snapshot, Policy(max_moves_per_round=3))
    assert [round_.admit(h) for h in hints] == [True, True, True, False]
    assert round_.rejected["budget"] == 1
    per_node = Round(snapshot, Policy(max_moves_per_node=2))
    assert [per_node.admit(h) for h in hints] == [True, True, False, False]
    assert violations(snapshot, hints, Policy(max_moves_per_node=2)) == ["node a: 4 moves over 2"]


def test_a_pod_moves_at_most_once_per_round() -> None:
    snapshot = cluster([gpu_node("a", gpus=2), gpu_node("b", gpus=2)], [pod("p", "a", gpus=(0,))])
    round_ = Round(snapshot, Policy())
    assert round_.admit(moving(Move("p", "a", "b", (0,), (0,))))
    assert not round_.admit(moving(Move("p", "b", "a", (0,), (0,))))
    assert round_.rejected["not movable"] == 1


def test_a_gang_moved_whole_is_admitted() -> None:
    snapshot = cluster(
        [gpu_node("a", gpus=2), gpu_node("b", gpus=2)],
        [pod("g0", "a", gpus=(0,), gang="g"), pod("g1", "a", gpus=(1,), gang="g")],
    )
    whole = moving(Move("g0", "a", "b", (0,), (0,)), Move("g1", "a", "b", (1,), (1,)))
    round_ = Round(snapshot, Policy())
    assert round_.admit(whole)
    assert violations(snapshot, [whole], Policy()) == []


def test_safety_kinds_run_first_and_later_kinds_see_their_moves() -> None:
    # GPU 0 of "a" fails; drain moves its job to "b", the only healthy GPUs. Then, on that
    # state, "b" has 7 free GPUs but 12 free cores: defragment moves the CPU-only pod off it
    # so the pending 4-GPU job fits there.
    xid = Failure(FailureKind.FATAL_XID, "79")
    snapshot = cluster(
        [
            gpu_node("a", gpus=1, failures={0: (xid,)}, cpu_milli=8_000),
            gpu_node("b", gpus=8),
            cpu_node("c", cpu_milli=128_000),
        ],
        [pod("job", "a", gpus=(0,)), pod("etl", "b", cpu_milli=80_000)],
        pending=(shape(4, 32_000),),
    )
    result = plan(snapshot, Policy())
    assert [h.kind for h in result.accepted] == [Kind.DRAIN, Kind.DEFRAGMENT]
    assert violations(snapshot, result.accepted, Policy()) == []
    after = apply(snapshot, result.accepted)
    assert after.pod_by_id["job"].node == "b" and after.pod_by_id["etl"].node == "c"
    assert after.node_by_name["b"].cpu_milli_free == 92_000


def test_ids_are_stable_for_the_same_advice_and_differ_for_other_advice() -> None:
    move = Move("p", "a", "b", (0,), (1,))
    same = hint_id(Kind.DEFRAGMENT, Subject(node="a"), Remedy.MOVE, (move,))
    assert same == hint_id(Kind.DEFRAGMENT, Subject(node="a"), Remedy.MOVE, (move,))
    assert len(same) == 16
    other = Move("p", "a", "c", (0,), (1,))
    assert same != hint_id(Kind.DEFRAGMENT, Subject(node="a"), Remedy.MOVE, (other,))
    assert same != hint_id(Kind.CONSOLIDATE, Subject(node="a"), Remedy.MOVE, (move,))


def test_the_seed_breaks_ties_between_equal_targets() -> None:
    # Four identical target nodes: which one gets the CPU-only pod is the seed's choice.
    snapshot = cluster(
        [gpu_node("a"), *(cpu_node(f"c{i}", cpu_milli=128_000) for i in range(4))],
        [pod("etl", "a", cpu_milli=80_000)],
        pending=(shape(8, 32_000),),
    )
    targets = {rebalance(snapshot, Policy(), seed)[0].actions[0].to_node for seed in range(12)}
    assert len(targets) > 1
    assert rebalance(snapshot, Policy(), 3) == rebalance(snapshot, Policy(), 3)


def test_apply_refuses_a_move_that_does_not_fit_and_leaves_its_input_alone() -> None:
    snapshot = two_nodes()
    with pytest.raises(PlanError):
        apply(snapshot, [moving(Move("free", "a", "b", (0,), (0,)))])
    released = apply(snapshot, [moving(Move("free", "a", None, (0,)))])
    assert released.pod_by_id["free"].node is None
    assert released.node_by_name["a"].gpu(0).free_milli == 1000
    assert snapshot.node_by_name["a"].gpu(0).free_milli == 0


def test_bad_snapshots_and_policies_are_refused() -> None:
    with pytest.raises(SnapshotError):
        cluster([gpu_node("a")], [pod("p", "nowhere")])
    with pytest.raises(SnapshotError):
        cluster([gpu_node("a", gpus=1)], [pod("p", "a", gpus=(3,))])
    with pytest.raises(PolicyError):
        Policy(idle_threshold_s=-1)
    with pytest.raises(PolicyError):
        Policy(min_confidence=1.5)


def test_reclaim_takes_releases_from_their_own_budget_not_from_moves() -> None:
    snapshot = cluster(
        [gpu_node("a")],
        [pod("idle", "a", gpus=(0,))],
        telemetry=Telemetry(jobs=(JobActivity("idle", 600, 0, 0, 7200, 7200),)),
    )
    (hint,) = rebalance(snapshot, Policy(max_moves_per_round=0))
    assert hint.kind is Kind.RECLAIM_IDLE
    assert rebalance(snapshot, Policy(max_releases_per_round=0)) == []
