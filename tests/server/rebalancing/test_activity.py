"""A job's activity from its GPUs' utilization grid: the idle run under way, the idle gaps that
ended in work, the duty cycle, and nothing read after the snapshot's clock."""

from __future__ import annotations

import numpy as np
import pytest

from server.rebalancing.activity import UtilGrid, job_activity, runs

STEP = 60.0
NOW = 1_800_010_800.0  # three hours after START below
START = NOW - 3 * 3600.0
IDLE_BELOW = 10.0


def grid(*rows: list[float], end: float = NOW) -> UtilGrid:
    steps = len(rows[0])
    ends = end - STEP * np.arange(steps - 1, -1, -1, dtype=np.float64)
    return UtilGrid(STEP, ends, np.array(rows, dtype=np.float64))


def minutes(*spans: tuple[int, float]) -> list[float]:
    """(minutes, utilization) spans, oldest first, one value per minute."""
    return [value for count, value in spans for _ in range(count)]


def test_a_job_idle_two_hours_after_one_hour_of_work() -> None:
    util = minutes((60, 85.0), (120, 0.0))
    activity = job_activity("j", grid(util), START, NOW, 1800.0, IDLE_BELOW)
    assert activity is not None
    assert activity.idle_s == pytest.approx(7200.0)
    assert activity.resumed_gaps_s == ()
    assert activity.running_s == pytest.approx(3 * 3600.0)
    assert activity.duty_cycle == pytest.approx(1 / 3)
    assert activity.gpu_util_pct == pytest.approx(0.0)


def test_earlier_idle_runs_that_resumed_are_the_learned_gaps() -> None:
    util = minutes((20, 70.0), (20, 1.0), (20, 70.0), (20, 0.0), (20, 70.0), (20, 2.0), (60, 90.0))
    activity = job_activity("j", grid(util), START, NOW, 1800.0, IDLE_BELOW)
    assert activity is not None
    assert activity.resumed_gaps_s == pytest.approx((1200.0, 1200.0, 1200.0))
    assert activity.idle_s == 0.0
    assert activity.duty_cycle == pytest.approx(120 / 180)
    assert activity.gpu_util_pct == pytest.approx(90.0)


def test_an_idle_run_under_way_is_not_a_resumed_gap() -> None:
    util = minutes((30, 80.0), (20, 0.0), (40, 80.0), (90, 0.0))
    activity = job_activity("j", grid(util), START, NOW, 1800.0, IDLE_BELOW)
    assert activity is not None
    assert activity.resumed_gaps_s == pytest.approx((1200.0,))
    assert activity.idle_s == pytest.approx(5400.0)


def test_no_sample_after_now_is_used() -> None:
    # The grid runs an hour past the snapshot's clock, and the job is busy there.
    util = minutes((60, 85.0), (120, 0.0), (60, 99.0))
    ahead = grid(util, end=NOW + 3600.0)
    activity = job_activity("j", ahead, START, NOW, 1800.0, IDLE_BELOW)
    assert activity is not None
    assert activity.idle_s == pytest.approx(7200.0)
    assert activity.gpu_util_pct == pytest.approx(0.0)
    assert activity.duty_cycle == pytest.approx(1 / 3)


def test_steps_before_the_job_started_are_not_its_own() -> None:
    util = minutes((60, 95.0), (120, 0.0))  # the GPU was busy for someone else first
    activity = job_activity("j", grid(util), NOW - 7200.0, NOW, 1800.0, IDLE_BELOW)
    assert activity is not None
    assert activity.idle_s == pytest.approx(7200.0)
    assert activity.running_s == pytest.approx(7200.0)
    assert activity.duty_cycle == pytest.approx(0.0)


def test_one_busy_gpu_keeps_a_job_active() -> None:
    busy = minutes((180, 60.0))
    idle = minutes((180, 0.0))
    activity = job_activity("j", grid(busy, idle), START, NOW, 1800.0, IDLE_BELOW)
    assert activity is not None
    assert activity.idle_s == 0.0
    assert activity.gpu_util_pct == pytest.approx(30.0)  # the mean over both GPUs


def test_missing_steps_neither_start_nor_end_a_run() -> None:
    util = minutes((60, 80.0), (60, 0.0), (10, float("nan")), (50, 0.0))
    found, _, known_s = runs(grid(util), START, NOW, IDLE_BELOW)
    assert [(r.idle, r.length_s) for r in found] == [(False, 3600.0), (True, 7200.0)]
    assert known_s == pytest.approx(170 * 60.0)


def test_a_job_with_no_reading_in_the_window_has_no_activity() -> None:
    util = minutes((150, 80.0), (30, float("nan")))
    assert job_activity("j", grid(util), START, NOW, 1800.0, IDLE_BELOW) is None
