"""drain, relieve_hot, reclaim_idle and consolidate on hand-made clusters with known answers."""

from __future__ import annotations

from server.hints.engine import apply, rebalance
from server.hints.hint import Kind, Move, Remedy
from server.hints.model import (
    ClockEvent,
    Failure,
    FailureKind,
    GpuWindow,
    JobActivity,
    Telemetry,
)
from server.hints.policy import Policy
from tests.server.hints.builders import cluster, gpu_node, pod

HOUR = 3600.0


def only(kind: Kind, **kwargs: object) -> Policy:
    return Policy(kinds=(kind,), **kwargs)  # type: ignore[arg-type]


# -- drain -----------------------------------------------------------------------------------


def test_a_gpu_with_xid_79_is_cordoned_and_its_job_moved_to_a_healthy_gpu() -> None:
    xid = Failure(FailureKind.FATAL_XID, "79", "DCGM_FI_DEV_XID_ERRORS", 79)
    snapshot = cluster(
        [gpu_node("a", gpus=2, failures={1: (xid,)}), gpu_node("b", gpus=2)],
        [pod("job", "a", gpus=(1,)), pod("other", "b", gpus=(0,))],
    )
    (hint,) = rebalance(snapshot, only(Kind.DRAIN))
    assert hint.kind is Kind.DRAIN and hint.remedy is Remedy.CORDON
    assert (hint.subject.node, hint.subject.gpu) == ("a", 1)
    (move,) = hint.actions
    assert move.pod == "job" and move.from_gpus == (1,)
    assert (move.to_node, move.to_gpus) != ("a", (1,))  # never back onto the failing GPU
    assert hint.confidence == 0.95
    assert [(e.series, e.value) for e in hint.evidence] == [("DCGM_FI_DEV_XID_ERRORS", 79)]
    assert "fatal_xid 79" in hint.reason


def test_a_non_preemptible_job_on_a_failing_gpu_stays_and_the_cordon_is_still_advised() -> None:
    ecc = Failure(FailureKind.ECC_UNCORRECTABLE, series="DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", value=3)
    snapshot = cluster(
        [gpu_node("a", gpus=2, failures={0: (ecc,)}), gpu_node("b", gpus=2)],
        [pod("db", "a", gpus=(0,), preemptible=False)],
    )
    (hint,) = rebalance(snapshot, only(Kind.DRAIN))
    assert hint.actions == () and "db stay" in hint.reason


def test_a_gang_member_on_a_failing_gpu_moves_with_its_whole_gang() -> None:
    xid = Failure(FailureKind.FATAL_XID, "79")
    snapshot = cluster(
        [gpu_node("a", gpus=2, failures={0: (xid,)}), gpu_node("b", gpus=4)],
        [pod("w0", "a", gpus=(0,), gang="g"), pod("w1", "a", gpus=(1,), gang="g")],
    )
    (hint,) = rebalance(snapshot, only(Kind.DRAIN))
    assert sorted(hint.moved_pods) == ["w0", "w1"]


# -- relieve_hot -----------------------------------------------------------------------------


def hot_window(node: str, gpu: int, celsius: float, thermal: float) -> GpuWindow:
    return GpuWindow(
        node, gpu, 600.0, util_pct=95, power_watts=690, temperature_celsius=celsius,
        clock_event_share={ClockEvent.HW_THERMAL_SLOWDOWN: thermal},
    )  # fmt: skip


def test_a_node_at_88_c_in_thermal_slowdown_has_its_job_moved_to_a_cool_node() -> None:
    snapshot = cluster(
        [gpu_node("hot"), gpu_node("cool")],
        [pod("train", "hot", gpus=(0, 1))],
        telemetry=Telemetry(
            gpus=(
                hot_window("hot", 0, 88, 0.45),
                hot_window("hot", 1, 86, 0.30),
                GpuWindow("cool", 0, 600.0, temperature_celsius=41),
            )
        ),
    )
    (hint,) = rebalance(snapshot, only(Kind.RELIEVE_HOT))
    assert hint.kind is Kind.RELIEVE_HOT and hint.remedy is Remedy.MOVE
    assert hint.actions == (Move("train", "hot", "cool", (0, 1), (0, 1)),)
    assert hint.confidence > 0.8
    series = {e.series for e in hint.evidence}
    assert "DCGM_FI_DEV_GPU_TEMP" in series
    assert "dcmon_gpu_clocks_event_reason{reason=hw_thermal_slowdown}" in series
    assert hint.gain.gpu_hours == 0.45 * 2


def test_a_hot_job_with_no_cooler_place_is_told_to_reduce_power() -> None:
    snapshot = cluster(
        [gpu_node("hot", gpus=1)],
        [pod("train", "hot", gpus=(0,))],
        telemetry=Telemetry(gpus=(hot_window("hot", 0, 89, 0.5),)),
    )
    (hint,) = rebalance(snapshot, only(Kind.RELIEVE_HOT))
    assert hint.remedy is Remedy.REDUCE_POWER and hint.actions == ()


def test_a_warm_gpu_well_below_slowdown_is_left_alone() -> None:
    snapshot = cluster(
        [gpu_node("warm"), gpu_node("cool")],
        [pod("train", "warm", gpus=(0,))],
        telemetry=Telemetry(gpus=(hot_window("warm", 0, 70, 0.05),)),
    )
    assert rebalance(snapshot, only(Kind.RELIEVE_HOT)) == []


def test_a_busy_gpu_at_its_power_cap_is_not_hot_but_a_hardware_slowdown_is() -> None:
    """SW power cap all window long is how a training GPU normally runs; HW slowdown is not."""

    def capped(reason: ClockEvent) -> Telemetry:
        window = GpuWindow("a", 0, 600.0, util_pct=99, power_watts=700,
                           temperature_celsius=71, clock_event_share={reason: 1.0})  # fmt: skip
        return Telemetry(gpus=(window,))

    nodes = [gpu_node("a"), gpu_node("b")]
    pods = [pod("train", "a", gpus=(0,))]
    at_cap = cluster(nodes, pods, telemetry=capped(ClockEvent.SW_POWER_CAP))
    assert rebalance(at_cap, only(Kind.RELIEVE_HOT)) == []
    slowed = cluster(nodes, pods, telemetry=capped(ClockEvent.HW_SLOWDOWN))
    (hint,) = rebalance(slowed, only(Kind.RELIEVE_HOT))
    assert hint.subject.gpu == 0


# -- reclaim_idle ----------------------------------------------------------------------------


def idle_cluster(activity: JobActivity) -> object:
    return cluster(
        [gpu_node("a")],
        [pod(activity.pod, "a", gpus=(0, 1))],
        telemetry=Telemetry(jobs=(activity,)),
    )


def test_a_job_idle_3_h_with_no_activity_since_start_is_reclaimed() -> None:
    snapshot = idle_cluster(
        JobActivity("stale", 600, 0.0, 1.0, idle_s=3 * HOUR, running_s=3 * HOUR)
    )
    (hint,) = rebalance(snapshot, only(Kind.RECLAIM_IDLE))  # type: ignore[arg-type]
    assert hint.kind is Kind.RECLAIM_IDLE and hint.remedy is Remedy.RELEASE
    assert hint.actions == (Move("stale", "a", None, (0, 1), ()),)
    assert hint.confidence == 0.9
    assert hint.gain.gpus_usable == 2.0
    assert "no activity since it started" in hint.reason
    after = apply(snapshot, [hint])  # type: ignore[arg-type]
    assert after.node_by_name["a"].gpu_milli_free == 8000


def test_a_notebook_idle_2_h_that_always_resumed_within_minutes_gets_low_confidence() -> None:
    notebook = JobActivity(
        "notebook", 600, 0.5, 2.0, idle_s=2 * HOUR, running_s=30 * HOUR,
        resumed_gaps_s=(300.0, 600.0, 240.0, 900.0), duty_cycle=0.3,
    )  # fmt: skip
    assert rebalance(idle_cluster(notebook), only(Kind.RECLAIM_IDLE)) == []  # type: ignore[arg-type]
    everything = only(Kind.RECLAIM_IDLE, min_confidence=0.0)
    (hint,) = rebalance(idle_cluster(notebook), everything)  # type: ignore[arg-type]
    assert 0 < hint.confidence < 0.2 and "low confidence" in hint.reason
    # the same idle run without the resumed gaps would be reclaimed with confidence
    alone = JobActivity("notebook", 600, 0.5, 2.0, idle_s=2 * HOUR, running_s=30 * HOUR)
    (sure,) = rebalance(idle_cluster(alone), only(Kind.RECLAIM_IDLE))  # type: ignore[arg-type]
    assert sure.confidence == 0.6


def test_a_job_between_phases_is_never_reclaimed() -> None:
    # idle 50 min, but it has come back after 40-minute gaps before
    phased = JobActivity(
        "phased", 600, 0.0, 1.0, idle_s=3000, running_s=10 * HOUR, resumed_gaps_s=(2400.0,)
    )
    assert rebalance(idle_cluster(phased), only(Kind.RECLAIM_IDLE, min_confidence=0)) == []  # type: ignore[arg-type]


def test_a_busy_or_briefly_idle_job_is_not_reclaimed() -> None:
    busy = JobActivity("busy", 600, 80.0, 50.0, idle_s=0, running_s=5 * HOUR)
    short = JobActivity("short", 600, 0.0, 1.0, idle_s=600, running_s=600)
    cpu_bound = JobActivity("cpu", 600, 0.0, 90.0, idle_s=3 * HOUR, running_s=3 * HOUR)
    for activity in (busy, short, cpu_bound):
        assert rebalance(idle_cluster(activity), only(Kind.RECLAIM_IDLE)) == []  # type: ignore[arg-type]


# -- consolidate -----------------------------------------------------------------------------


def test_two_half_empty_nodes_are_consolidated_freeing_one() -> None:
    snapshot = cluster(
        [gpu_node("a", gpus=4), gpu_node("b", gpus=4)],
        [
            pod("a1", "a", gpus=(0,)),
            pod("b1", "b", gpus=(0,)),
            pod("b2", "b", gpus=(1,)),
        ],
        telemetry=Telemetry(gpus=tuple(GpuWindow(n, 0, 600.0, util_pct=5) for n in "ab")),
    )
    (hint,) = rebalance(snapshot, only(Kind.CONSOLIDATE, consolidate_below_share=0.6))
    assert hint.kind is Kind.CONSOLIDATE and hint.subject.node == "a"
    assert hint.actions == (Move("a1", "a", "b", (0,), (2,)),)
    assert hint.gain.watts == 250 + 4 * 60
    after = apply(snapshot, [hint])
    assert after.pods_by_node["a"] == () and after.node_by_name["a"].gpu_milli_free == 4000


def test_busy_work_or_no_place_for_every_pod_means_no_consolidation() -> None:
    busy = cluster(
        [gpu_node("a", gpus=4), gpu_node("b", gpus=4)],
        [pod("a1", "a", gpus=(0,)), pod("b1", "b", gpus=(0,))],
        telemetry=Telemetry(gpus=tuple(GpuWindow(n, 0, 600.0, util_pct=90) for n in "ab")),
    )
    assert rebalance(busy, only(Kind.CONSOLIDATE)) == []
    full = cluster(
        [gpu_node("a", gpus=4), gpu_node("b", gpus=2)],
        [pod("a1", "a", gpus=(0,)), pod("b1", "b", gpus=(0, 1))],
    )
    assert rebalance(full, only(Kind.CONSOLIDATE, consolidate_below_share=0.6)) == []
