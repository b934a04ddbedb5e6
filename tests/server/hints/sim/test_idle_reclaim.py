from __future__ import annotations

import math

import numpy as np
import pytest

from server.hints.sim.activity import Activity, ActivityTracker, long_idle, on_off
from server.hints.sim.idle_reclaim import (
    CULLER_GPU_PCT,
    CULLER_MIN,
    Release,
    culler_picks,
    run_s3,
    score,
)
from server.hints.sim.synthetic import synthetic_trace


def series(*runs: tuple[int, float]) -> np.ndarray:
    """A series from (minutes, utilization %) runs."""
    return np.concatenate([np.full(n, value) for n, value in runs])


def test_the_activity_at_a_minute_never_reads_later_minutes() -> None:
    # idle for 40 minutes, then busy; a second pod the other way round
    past = series((40, 0.0), (20, 80.0))
    other = series((30, 60.0), (30, 0.0))
    full = Activity(np.stack([past, other]), ("a", "b"))
    # the same past with a different future: what the tracker says at minute 40 must not change
    changed = full.util.copy()
    changed[0, 40:], changed[1, 40:] = 0.0, 90.0
    seen, blind = ActivityTracker(full), ActivityTracker(Activity(changed, full.labels))
    seen.advance(40)
    blind.advance(40)
    for row in (0, 1):
        assert seen.job_activity(row, "p") == blind.job_activity(row, "p")
    now = seen.job_activity(0, "p")
    assert now.idle_s == 40 * 60 and now.running_s == 40 * 60
    assert now.resumed_gaps_s == () and now.duty_cycle == 0.0
    seen.advance(45)
    later = seen.job_activity(0, "p")
    assert later.idle_s == 0 and later.resumed_gaps_s == (40 * 60.0,)
    assert later.duty_cycle == pytest.approx(5 / 45)
    assert later.gpu_util_pct == pytest.approx(80.0)  # the mean over the minutes just read


def test_the_tracker_reports_the_first_active_minute_and_the_end_of_a_job() -> None:
    util = np.array([[0.0, 0.0, 50.0, 0.0, math.nan, math.nan]])
    tracker = ActivityTracker(Activity(util, ("a",)))
    assert tracker.advance(2).tolist() == [-1]
    assert tracker.advance(4).tolist() == [2]
    assert not tracker.ended[0]
    tracker.advance(5)
    assert tracker.ended[0]


def test_long_idle_marks_only_runs_of_thirty_minutes() -> None:
    util = series((29, 0.0), (1, 50.0), (30, 2.0), (5, 70.0))[None, :]
    mask = long_idle(util, 30)
    assert mask[0, :29].sum() == 0 and mask[0, 30:60].all() and not mask[0, 60:].any()


def test_active_five_minutes_after_a_reclaim_is_false_and_twenty_is_not() -> None:
    soon = series((40, 0.0), (5, 0.0), (10, 60.0))  # released at 40, active at 45
    late = series((40, 0.0), (20, 0.0), (10, 60.0))  # released at 40, active at 60
    never = series((40, 0.0), (30, 0.0))
    util = np.full((3, 70), math.nan)
    for row, s in enumerate((soon, late, never)):
        util[row, : len(s)] = s
    activity = Activity(util, ("soon", "late", "never"))
    shares = np.array([1.0, 0.5, 1.0])
    result = score([Release(0, 40), Release(1, 40), Release(2, 40)], activity, shares, 120.0)
    assert result.releases == 3 and result.resumed == 2
    assert result.false_reclaims == 1
    # idle-allocated: 45 + 60 x 0.5 + 70 minutes; reclaimed: 5 + 20 x 0.5 + 30 minutes
    assert result.idle_gpu_h == pytest.approx((45 + 30 + 70) / 60)
    assert result.reclaimed_gpu_h == pytest.approx((5 + 10 + 30) / 60)
    # nothing ran since the checkpoint at minute 30: only the restarts are lost
    assert result.lost_gpu_h == pytest.approx((1.0 + 0.5) * 120 / 3600)


def test_work_since_the_last_checkpoint_is_lost_when_an_active_job_is_released() -> None:
    util = series((35, 80.0), (10, 80.0))[None, :]
    result = score([Release(0, 40)], Activity(util, ("busy",)), np.array([1.0]), 0.0)
    assert result.false_reclaims == 1
    assert result.lost_gpu_h == pytest.approx(10 / 60)  # minutes 30..39 since the checkpoint
    assert result.reclaimed_gpu_h == 0


def test_the_culler_acts_after_thirty_minutes_below_ten_percent() -> None:
    util = np.stack(
        [
            series((30, 8.0), (10, 50.0)),  # 8 %: below the culler's 10 % for 30 minutes
            series((29, 0.0), (11, 50.0)),  # only 29 minutes
            series((15, 0.0), (1, 30.0), (24, 0.0)),  # a burst resets the clock
            series((40, 12.0)),  # above 10 % all along
        ]
    )
    tracker = ActivityTracker(Activity(util, ("a", "b", "c", "d")), below_pct=CULLER_GPU_PCT)
    tracker.advance(30)
    candidates = np.arange(4, dtype=np.int64)
    assert culler_picks(tracker, candidates, CULLER_MIN).tolist() == [0]
    tracker.advance(40)
    assert culler_picks(tracker, candidates, CULLER_MIN).tolist() == []


def test_on_off_activity_has_the_asked_idle_share() -> None:
    activity = on_off(200, 24 * 60, 0.3, np.random.default_rng(1))
    idle = float((activity.util < 5).mean())
    assert 0.2 < idle < 0.4
    assert ((activity.util == 0) | (activity.util >= 20)).all()


def test_s3_scores_the_engine_and_the_culler_on_the_same_series() -> None:
    nodes, pods = synthetic_trace(4, nodes=20, pods=150)
    run = run_s3(nodes, pods, "onoff-0.5", 4, minutes=180)
    assert run.gpu_pods > 0 and run.rounds == 180 // 5 - 1
    dcmon, culler = run.scores["dcmon"], run.scores["culler"]
    assert dcmon.idle_gpu_h == culler.idle_gpu_h > 0
    assert culler.releases > 0 and 0 < culler.reclaimed_pct <= 100
    assert run.violations == 0
