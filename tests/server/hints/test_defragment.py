"""defragment on hand-made clusters where the right move is known."""

from __future__ import annotations

from server.hints.engine import apply, rebalance
from server.hints.hint import Kind, Move, Remedy
from server.hints.policy import Policy
from server.hints.state import WorkingState
from tests.server.hints.builders import cluster, cpu_node, gpu_node, pod, shape

DEFRAG = Policy(kinds=(Kind.DEFRAGMENT,))


def test_a_cpu_only_pod_starving_a_gpu_node_moves_off_for_a_pending_8_gpu_job() -> None:
    # gpu-a has 8 free GPUs but a CPU-only pod holds 80 of its 96 cores: the 8-GPU job
    # (32 cores) fits nowhere. cpu-1 has the cores to spare.
    snapshot = cluster(
        [gpu_node("gpu-a"), gpu_node("gpu-b"), cpu_node("cpu-1", cpu_milli=128_000)],
        [
            pod("etl", "gpu-a", cpu_milli=80_000),
            pod("train", "gpu-b", cpu_milli=32_000, gpus=tuple(range(8))),
        ],
        pending=(shape(8, 32_000),),
    )
    assert WorkingState(snapshot).fits(snapshot.pending[0].request, "gpu-a") is None
    (hint,) = rebalance(snapshot, DEFRAG)
    assert hint.kind is Kind.DEFRAGMENT and hint.remedy is Remedy.MOVE
    assert hint.actions == (Move("etl", "gpu-a", "cpu-1", (), ()),)
    assert hint.gain.gpus_usable == 8.0
    assert "8 GPUs, 32 CPU" in hint.reason
    assert hint.cost.moves == 1 and hint.cost.restart_s == 120.0
    after = apply(snapshot, [hint])
    assert WorkingState(after).fits(snapshot.pending[0].request, "gpu-a") == tuple(range(8))


def test_a_non_preemptible_blocker_stays() -> None:
    snapshot = cluster(
        [gpu_node("gpu-a"), cpu_node("cpu-1")],
        [pod("etl", "gpu-a", cpu_milli=80_000, preemptible=False)],
        pending=(shape(8, 32_000),),
    )
    assert rebalance(snapshot, DEFRAG) == []


def test_no_move_without_a_target_that_holds_it() -> None:
    snapshot = cluster(
        [gpu_node("gpu-a"), cpu_node("cpu-1", cpu_milli=8_000)],
        [pod("etl", "gpu-a", cpu_milli=80_000)],
        pending=(shape(8, 32_000),),
    )
    assert rebalance(snapshot, DEFRAG) == []


def test_lone_gpu_shares_are_packed_to_free_a_whole_gpu() -> None:
    # Two half-GPU pods on different GPUs of a full node; a whole-GPU job waits.
    snapshot = cluster(
        [gpu_node("gpu-a", gpus=2)],
        [
            pod("a", "gpu-a", cpu_milli=2_000, gpus=(0,), gpu_milli=500),
            pod("b", "gpu-a", cpu_milli=2_000, gpus=(1,), gpu_milli=500),
        ],
        pending=(shape(1, 4_000),),
    )
    (hint,) = rebalance(snapshot, DEFRAG)
    (move,) = hint.actions
    assert move.from_node == move.to_node == "gpu-a"
    assert {move.from_gpus, move.to_gpus} == {(0,), (1,)}
    assert hint.gain.gpus_usable == 1.0
    two = cluster(
        [gpu_node("gpu-a", gpus=2), gpu_node("gpu-b", gpus=1)],
        [
            pod("a", "gpu-a", cpu_milli=2_000, gpus=(0,), gpu_milli=500),
            pod("b", "gpu-a", cpu_milli=2_000, gpus=(1,), gpu_milli=700),
            pod("c", "gpu-b", cpu_milli=2_000, gpus=(0,), gpu_milli=500),
        ],
        pending=(shape(1, 4_000, count=3),),
    )
    (hint,) = rebalance(two, DEFRAG)
    (move,) = hint.actions
    assert move.to_node == "gpu-b" and move.to_gpus == (0,)
    assert hint.gain.gpus_usable == 1.0


def test_nothing_to_do_on_a_cluster_without_stranding() -> None:
    snapshot = cluster(
        [gpu_node("gpu-a"), cpu_node("cpu-1")],
        [pod("train", "gpu-a", cpu_milli=32_000, gpus=(0, 1, 2, 3))],
        pending=(shape(4, 32_000),),
    )
    assert rebalance(snapshot, DEFRAG) == []
