"""Window functions on hand-made windows: extrapolation bounds, counter resets, window edges,
NaN rules and compensated sums, where a naive implementation goes wrong."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from server.promql import functions_range as fr
from server.promql.values import Matrix, MatrixSeries, Vector

LABELS = (("job", "a"),)


def window(
    ts_s: Sequence[float], values: Sequence[float], end_s: Sequence[float], range_s: float
) -> Matrix:
    """One series; the window of each step is ``(end - range, end]`` (left-open)."""
    ts = (np.asarray(ts_s, dtype=np.float64) * 1000).astype(np.int64)
    ends_ms = (np.asarray(end_s, dtype=np.float64) * 1000).astype(np.int64)
    range_ms = int(range_s * 1000)
    starts = np.searchsorted(ts, ends_ms - range_ms, side="right").astype(np.int64)
    ends = np.searchsorted(ts, ends_ms, side="right").astype(np.int64)
    series = MatrixSeries(LABELS, ts, np.asarray(values, dtype=np.float64), starts, ends)
    return Matrix([series], range_ms, ends_ms)


def only(vector: Vector) -> list[float | None]:
    """Returns: the single series' values per step, None where absent."""
    assert len(vector.series) <= 1
    if not vector.series:
        return []
    s = vector.series[0]
    return [float(v) if p else None for v, p in zip(s.values, s.present, strict=True)]


def test_rate_extrapolates_to_the_window_edges() -> None:
    # Samples every 60 s; the window (0, 300] leaves t=0 out; the first sample is one interval
    # from the start, so the change extrapolates to the whole 300 s.
    m = window(range(0, 301, 60), [0, 60, 120, 180, 240, 300], [300], 300)
    assert only(fr.extrapolated_rate(m, True, False)) == [pytest.approx(300)]
    assert only(fr.extrapolated_rate(m, True, True)) == [pytest.approx(1.0)]


def test_rate_extrapolates_half_an_interval_past_gaps() -> None:
    # Gaps of 100 s and 80 s to the edges exceed 1.1 x the 60 s average: extrapolate only 30 s.
    m = window([100, 160, 220], [1, 2, 3], [300], 300)
    assert only(fr.extrapolated_rate(m, False, False)) == [pytest.approx(2 * 180 / 120)]


def test_counter_resets_add_the_value_before_the_drop() -> None:
    m = window([0, 60, 120, 180], [10, 20, 5, 15], [180], 240)
    # 15 - 10 + 20 (reset), then extrapolated from 180 s to 240 s of range.
    assert only(fr.extrapolated_rate(m, True, False)) == [pytest.approx(25 * 240 / 180)]
    # delta ignores resets.
    assert only(fr.extrapolated_rate(m, False, False)) == [pytest.approx(5 * 240 / 180)]
    assert only(fr.resets(m)) == [1.0]


def test_counter_is_not_extrapolated_below_zero() -> None:
    # Extrapolating 60 s back would go below zero; it stops where the counter would be 0.
    m = window([60, 120], [0.2, 1.2], [120], 120)
    assert only(fr.extrapolated_rate(m, True, False)) == [pytest.approx(1.2)]
    # A gauge has no such limit.
    assert only(fr.extrapolated_rate(m, False, False)) == [pytest.approx(2.0)]


def test_rate_needs_two_samples_and_the_window_is_left_open() -> None:
    # At 120 s with range 60 s, the sample at 60 s is outside (60, 120]: one sample, no rate.
    m = window([0, 60, 120], [0, 1, 2], [120], 60)
    assert only(fr.extrapolated_rate(m, True, True)) == []
    assert only(fr.count_over_time(m)) == [1.0]
    # With 61 s the window (59, 120] holds two samples, extrapolated 1 s back: 1 per 60 s.
    wider = window([0, 60, 120], [0, 1, 2], [120], 61)
    assert only(fr.extrapolated_rate(wider, True, True)) == [pytest.approx(1 / 60)]


def test_irate_and_idelta_use_the_last_two_samples() -> None:
    m = window([0, 10, 20], [5, 10, 2], [20], 60)
    assert only(fr.instant_value(m, True)) == [pytest.approx(0.2)]  # reset: 2 / 10 s
    assert only(fr.instant_value(m, False)) == [-8.0]


def test_sum_over_time_is_compensated() -> None:
    m = window([0, 1, 2], [1e100, 1.0, -1e100], [2], 10)
    assert only(fr.sum_over_time(m)) == [1.0]
    assert only(fr.avg_over_time(m)) == [pytest.approx(1 / 3)]


def test_avg_over_time_survives_overflow() -> None:
    m = window([0, 1, 2], [1.7e308, 1.7e308, 1.7e308], [2], 10)
    assert only(fr.avg_over_time(m)) == [pytest.approx(1.7e308)]


def test_min_max_skip_nan_unless_all_nan() -> None:
    m = window([0, 1, 2, 10, 11], [math.nan, 3, 1, math.nan, math.nan], [2, 11], 5)
    lo = only(fr.min_over_time(m))
    hi = only(fr.max_over_time(m))
    assert lo[0] == 1.0 and hi[0] == 3.0
    assert lo[1] is not None and math.isnan(lo[1])


def test_changes_do_not_count_nan_to_nan() -> None:
    m = window([0, 1, 2, 3, 4], [1, 1, math.nan, math.nan, 2], [4], 10)
    assert only(fr.changes(m)) == [2.0]


def test_deriv_and_predict_linear() -> None:
    m = window([0, 60, 120], [0, 60, 120], [120], 300)
    assert only(fr.deriv(m)) == [pytest.approx(1.0)]
    # The intercept is taken at the evaluation time (150 s here, as with an offset).
    predicted = fr.predict_linear(m, np.array([150_000]), np.array([60.0]))
    assert only(predicted) == [pytest.approx(210.0)]
    constant = window([0, 60], [math.inf, math.inf], [60], 300)
    value = only(fr.deriv(constant))[0]
    assert value is not None and math.isnan(value)


def test_quantile_and_variance_over_time() -> None:
    m = window([0, 1, 2, 3], [4, 1, 3, 2], [3], 10)
    assert only(fr.quantile_over_time(np.array([0.5]), m)) == [2.5]
    assert only(fr.quantile_over_time(np.array([2.0]), m)) == [math.inf]
    assert only(fr.variance_over_time(m, False)) == [pytest.approx(1.25)]
    assert only(fr.variance_over_time(m, True)) == [pytest.approx(math.sqrt(1.25))]
    assert only(fr.mad_over_time(m)) == [1.0]


def test_first_last_and_timestamps() -> None:
    m = window([10, 20, 30], [1, 2, 3], [30], 60)
    assert only(fr.first_over_time(m)) == [1.0]
    assert only(fr.last_over_time(m)) == [3.0]
    assert only(fr.ts_of_first_over_time(m)) == [10.0]
    assert only(fr.ts_of_max_over_time(m)) == [30.0]


def test_empty_windows_give_no_output() -> None:
    m = window([0], [1], [600], 60)
    assert fr.sum_over_time(m).series == []
    assert fr.absent_over_time_mask(m).tolist() == [True]
    empty = Matrix([], 60_000, np.array([0, 60_000], dtype=np.int64))
    assert fr.extrapolated_rate(empty, True, True).series == []
