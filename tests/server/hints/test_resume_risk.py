"""The resume-risk estimate behind reclaim_idle, on idle runs whose answer is known."""

from __future__ import annotations

import pytest

from server.hints.engine import rebalance
from server.hints.hint import Kind
from server.hints.model import JobActivity, Telemetry
from server.hints.policy import Policy
from server.hints.resume_risk import ResumeModel, wilson_upper
from tests.server.hints.builders import cluster, gpu_node, pod

MIN = 60.0


def test_kaplan_meier_risk_over_runs_that_all_ended() -> None:
    model = ResumeModel.fit([10 * MIN, 20 * MIN, 30 * MIN], [], floor_s=0.0)
    # idle 15 min: two runs lasted longer (20, 30), one of them ended within 10 more minutes
    risk = model.risk(15 * MIN, 10 * MIN, prior_weight=0.0)
    assert risk.estimate == pytest.approx(0.5)
    assert risk.at_risk == 2
    # idle 25 min: the one run left lasted to 30: it ended within the horizon
    assert model.risk(25 * MIN, 10 * MIN).estimate == pytest.approx(1.0)


def test_runs_still_under_way_inside_the_window_are_no_evidence() -> None:
    # a whole fleet idle for 65 minutes, for the first time: nobody has lived through 60..70
    model = ResumeModel.fit([], [65 * MIN] * 50, floor_s=30 * MIN)
    assert model.seen_through(60 * MIN, 10 * MIN) == 0
    assert model.risk(60 * MIN, 10 * MIN).upper == 1.0
    # once runs have lasted past the window, they are
    longer = ResumeModel.fit([], [float(m) * MIN for m in range(80, 180)], floor_s=30 * MIN)
    assert longer.seen_through(60 * MIN, 10 * MIN) == 100


def test_copies_of_one_run_count_once() -> None:
    one = ResumeModel.fit([], [100 * MIN], floor_s=0.0)
    copies = ResumeModel.fit([], [100 * MIN] * 500, floor_s=0.0)
    assert one.seen_through(60 * MIN, 10 * MIN) == copies.seen_through(60 * MIN, 10 * MIN) == 1


def test_wilson_upper_bound() -> None:
    assert wilson_upper(0.0, 0, 1.645) == 1.0
    assert wilson_upper(0.0, 52, 1.645) < 0.05 < wilson_upper(0.0, 50, 1.645)
    assert wilson_upper(0.5, 100, 1.645) == pytest.approx(0.58, abs=0.01)


def fleet(target: JobActivity, others: list[JobActivity]) -> object:
    return cluster(
        [gpu_node("a")],
        [pod(target.pod, "a", gpus=(0, 1))],
        telemetry=Telemetry(jobs=(target, *others)),
    )


def quiet_fleet(resumed_after_min: list[float]) -> list[JobActivity]:
    """Jobs that each resumed once after an idle run of the given length."""
    return [
        JobActivity(f"j{i}", 600, 50.0, 30.0, idle_s=0.0, running_s=48 * 3600,
                    resumed_gaps_s=(m * MIN,))
        for i, m in enumerate(resumed_after_min)
    ]  # fmt: skip


IDLE_1H = JobActivity("idle", 600, 0.0, 1.0, idle_s=60 * MIN, running_s=10 * 3600)
POLICY = Policy(kinds=(Kind.RECLAIM_IDLE,))


def test_a_job_idle_an_hour_where_hour_long_runs_always_went_on_is_released() -> None:
    # 120 distinct runs that lasted 3-5 h before resuming: an hour of idle predicts more
    history = quiet_fleet([180.0 + m for m in range(120)])
    (hint,) = rebalance(fleet(IDLE_1H, history), POLICY)  # type: ignore[arg-type]
    assert hint.kind is Kind.RECLAIM_IDLE and hint.confidence >= 0.95
    assert "risk of resuming at most" in hint.reason


def test_a_job_idle_an_hour_where_such_runs_ended_soon_is_kept() -> None:
    # the same fleet, but a third of its hour-long runs ended within the next 10 minutes
    history = quiet_fleet([180.0 + m for m in range(80)] + [62.0 + (m % 8) for m in range(40)])
    assert rebalance(fleet(IDLE_1H, history), POLICY) == []  # type: ignore[arg-type]


def test_a_job_whose_own_long_runs_resumed_is_kept_whatever_the_fleet_says() -> None:
    history = quiet_fleet([180.0 + m for m in range(120)])
    own = JobActivity("idle", 600, 0.0, 1.0, idle_s=60 * MIN, running_s=10 * 3600,
                      resumed_gaps_s=(65 * MIN, 66 * MIN, 68 * MIN))  # fmt: skip
    assert rebalance(fleet(own, history), POLICY) == []  # type: ignore[arg-type]
