"""Range-vector functions (``rate``, ``*_over_time``, ...) over one shared windowing core.

Input: a ``Matrix`` (raw samples of each series, with each step's window as index bounds).
Output: a ``Vector`` over the same step grid. ``Windows`` flattens every (series, step) window of
the matrix into numpy arrays, so each function runs as a handful of array operations for all
series and steps at once; order-dependent accumulations (Prometheus' Kahan/Neumaier sums,
Welford variance, counter-reset corrections) walk the k-th sample of every window in lockstep,
which keeps Prometheus' exact addition order. Semantics follow ``promql/functions.go``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from server.promql.values import (
    BoolArray,
    FloatArray,
    IntArray,
    Matrix,
    Vector,
    VectorSeries,
)


@dataclass(frozen=True)
class Windows:
    """Every window of a matrix, flattened: window ``w`` holds samples ``lo[w] .. lo[w]+n[w]-1``
    of ``ts``/``values`` (all series concatenated). Windows are ordered series-major, shape
    ``(num_series, num_steps)`` once reshaped."""

    ts: IntArray
    values: FloatArray
    lo: IntArray
    n: IntArray
    num_series: int
    num_steps: int
    range_ms: int
    window_end_ms: IntArray  # per window (repeated for each series)

    @classmethod
    def of(cls, matrix: Matrix) -> Windows:
        series = matrix.series
        sizes = np.array([len(s.ts) for s in series], dtype=np.int64)
        offsets = np.cumsum(sizes) - sizes
        # One sentinel sample at the end, so gathering from an empty window never fails.
        ts = np.concatenate([*(s.ts for s in series), np.zeros(1)]).astype(np.int64)
        values = np.concatenate([*(s.values for s in series), np.full(1, np.nan)])
        lo = [s.starts + off for s, off in zip(series, offsets, strict=True)]
        n = [s.ends - s.starts for s in series]
        empty = np.zeros(0, dtype=np.int64)
        return cls(
            ts=ts,
            values=values.astype(np.float64),
            lo=np.concatenate([empty, *lo]).astype(np.int64),
            n=np.concatenate([empty, *n]).astype(np.int64),
            num_series=len(series),
            num_steps=len(matrix.window_end_ms),
            range_ms=matrix.range_ms,
            window_end_ms=np.tile(np.asarray(matrix.window_end_ms, dtype=np.int64), len(series)),
        )

    @property
    def max_n(self) -> int:
        return int(self.n.max()) if len(self.n) else 0

    def index(self, k: int | IntArray) -> IntArray:
        """Returns: the flat index of each window's k-th sample (clipped where it has none)."""
        result: IntArray = np.clip(self.lo + k, 0, len(self.values) - 1)
        return result

    def first(self) -> tuple[IntArray, FloatArray]:
        """Returns: timestamp and value of each window's first sample."""
        i = self.index(0)
        return self.ts[i], self.values[i]

    def last(self) -> tuple[IntArray, FloatArray]:
        """Returns: timestamp and value of each window's last sample."""
        i = self.index(self.n - 1)
        return self.ts[i], self.values[i]


def to_vector(
    matrix: Matrix,
    values: FloatArray,
    present: BoolArray,
) -> Vector:
    """Returns: one output series per input series with any present step, keeping its labels and
    drop flag (the engine flags the name for removal where the function drops it);
    ``values``/``present`` are flat per window."""
    shape = (len(matrix.series), len(matrix.window_end_ms))
    values2 = values.reshape(shape)
    present2 = present.reshape(shape)
    out: list[VectorSeries] = []
    for i, series in enumerate(matrix.series):
        if not present2[i].any():
            continue
        row = np.where(present2[i], values2[i], np.nan)
        out.append(VectorSeries(series.labels, row, present2[i].copy(), series.drop_name))
    return Vector(out)


def kahan_inc(
    inc: FloatArray, total: FloatArray, comp: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Prometheus' ``kahansum.Inc`` (Neumaier), element-wise: returns the new sum and compensation;
    the compensation resets to 0 once the sum is infinite."""
    t = total + inc
    big = np.abs(total) >= np.abs(inc)
    comp = np.where(big, comp + ((total - t) + inc), comp + ((inc - t) + total))
    comp = np.where(np.isinf(t), 0.0, comp)
    return t, comp


def _lockstep(w: Windows, start: int = 0) -> list[tuple[int, BoolArray, FloatArray, IntArray]]:
    """Returns: for k = start .. max_n-1, (k, active, value, ts) of every window's k-th sample."""
    out = []
    for k in range(start, w.max_n):
        active = k < w.n
        i = w.index(k)
        out.append((k, active, w.values[i], w.ts[i]))
    return out


# --- rate family --------------------------------------------------------------------------------


def extrapolated_rate(matrix: Matrix, is_counter: bool, is_rate: bool) -> Vector:
    """``rate``/``increase``/``delta``: the change over the window, extrapolated towards the
    window edges (by at most half an average sample interval past 1.1 of it), counters
    corrected for resets and not extrapolated below zero."""
    w = Windows.of(matrix)
    present = w.n >= 2
    with np.errstate(all="ignore"):
        t0, v0 = w.first()
        t1, v1 = w.last()
        result = v1 - v0
        if is_counter:
            for _k, active, value, _ts in _lockstep(w, 1):
                prev = w.values[w.index(_k - 1)]
                reset = active & (value < prev)
                result = np.where(reset, result + prev, result)
        range_start = w.window_end_ms - w.range_ms
        to_start = (t0 - range_start) / 1000.0
        to_end = (w.window_end_ms - t1) / 1000.0
        sampled = (t1 - t0) / 1000.0
        average = sampled / np.maximum(w.n - 1, 1)
        threshold = average * 1.1
        to_start = np.where(to_start >= threshold, average / 2, to_start)
        if is_counter:
            to_zero = np.where((result > 0) & (v0 >= 0), sampled * (v0 / result), to_start)
            to_start = np.where(to_zero < to_start, to_zero, to_start)
        to_end = np.where(to_end >= threshold, average / 2, to_end)
        factor = np.where(sampled != 0, (sampled + to_start + to_end) / sampled, 1.0)
        if is_rate:
            factor = factor / (w.range_ms / 1000.0)
        values = result * factor
    return to_vector(matrix, values, present)


def instant_value(matrix: Matrix, is_rate: bool) -> Vector:
    """``irate``/``idelta``: from the last two samples of each window."""
    w = Windows.of(matrix)
    with np.errstate(all="ignore"):
        i1 = w.index(w.n - 1)
        i0 = w.index(w.n - 2)
        v0, v1 = w.values[i0], w.values[i1]
        interval = w.ts[i1] - w.ts[i0]
        present = (w.n >= 2) & (interval != 0)
        # A drop means a counter reset: the increase is the last value itself.
        rise = np.where(v1 < v0, v1, v1 - v0) if is_rate else v1 - v0
        result = rise / (interval / 1000.0) if is_rate else rise
    return to_vector(matrix, result, present)


# --- accumulations ------------------------------------------------------------------------------


def sum_over_time(matrix: Matrix) -> Vector:
    w = Windows.of(matrix)
    total = np.zeros(len(w.n))
    comp = np.zeros(len(w.n))
    with np.errstate(all="ignore"):
        for _k, active, value, _ts in _lockstep(w):
            new_total, new_comp = kahan_inc(value, total, comp)
            total = np.where(active, new_total, total)
            comp = np.where(active, new_comp, comp)
        result = np.where(np.isinf(total), total, total + comp)
    return to_vector(matrix, result, w.n >= 1)


def avg_over_time(matrix: Matrix) -> Vector:
    """Kahan-summed direct mean; a window whose running sum would overflow switches to the
    incremental mean from that sample on, as Prometheus does."""
    w = Windows.of(matrix)
    size = len(w.n)
    with np.errstate(all="ignore"):
        _, first = w.first()
        total = first.copy()
        comp = np.zeros(size)
        mean = np.zeros(size)
        incremental = np.zeros(size, dtype=bool)
        for k, active, value, _ts in _lockstep(w, 1):
            count = float(k + 1)
            new_total, new_comp = kahan_inc(value, total, comp)
            direct = active & ~incremental & ~np.isinf(new_total)
            switch = active & ~incremental & np.isinf(new_total)
            total = np.where(direct, new_total, total)
            comp = np.where(direct, new_comp, comp)
            mean = np.where(switch, total / (count - 1), mean)
            comp = np.where(switch, comp / (count - 1), comp)
            incremental = incremental | switch
            step = active & incremental
            q = (count - 1) / count
            inc_mean, inc_comp = kahan_inc(value / count, q * mean, q * comp)
            mean = np.where(step, inc_mean, mean)
            comp = np.where(step, inc_comp, comp)
        count_all = w.n.astype(np.float64)
        result = np.where(incremental, mean + comp, total / count_all + comp / count_all)
    return to_vector(matrix, result, w.n >= 1)


def _compare_over_time(
    matrix: Matrix, better: Callable[[FloatArray, FloatArray], BoolArray], timestamp: bool
) -> Vector:
    w = Windows.of(matrix)
    with np.errstate(all="ignore"):
        best_t, best = w.first()
        for _k, active, value, ts in _lockstep(w, 1):
            take = active & (better(value, best) | np.isnan(best))
            best = np.where(take, value, best)
            best_t = np.where(take, ts, best_t)
    result = best_t / 1000.0 if timestamp else best
    return to_vector(matrix, result, w.n >= 1)


def max_over_time(matrix: Matrix) -> Vector:
    return _compare_over_time(matrix, np.greater, False)


def min_over_time(matrix: Matrix) -> Vector:
    return _compare_over_time(matrix, np.less, False)


def ts_of_max_over_time(matrix: Matrix) -> Vector:
    return _compare_over_time(matrix, np.greater_equal, True)


def ts_of_min_over_time(matrix: Matrix) -> Vector:
    return _compare_over_time(matrix, np.less_equal, True)


def count_over_time(matrix: Matrix) -> Vector:
    w = Windows.of(matrix)
    return to_vector(matrix, w.n.astype(np.float64), w.n >= 1)


def present_over_time(matrix: Matrix) -> Vector:
    w = Windows.of(matrix)
    return to_vector(matrix, np.ones(len(w.n)), w.n >= 1)


def last_over_time(matrix: Matrix) -> Vector:
    w = Windows.of(matrix)
    return to_vector(matrix, w.last()[1], w.n >= 1)


def first_over_time(matrix: Matrix) -> Vector:
    w = Windows.of(matrix)
    return to_vector(matrix, w.first()[1], w.n >= 1)


def ts_of_last_over_time(matrix: Matrix) -> Vector:
    w = Windows.of(matrix)
    return to_vector(matrix, w.last()[0] / 1000.0, w.n >= 1)


def ts_of_first_over_time(matrix: Matrix) -> Vector:
    w = Windows.of(matrix)
    return to_vector(matrix, w.first()[0] / 1000.0, w.n >= 1)


def variance_over_time(matrix: Matrix, stddev: bool) -> Vector:
    """Population variance by Welford's method with Kahan-compensated mean and sum of squares."""
    w = Windows.of(matrix)
    size = len(w.n)
    mean, c_mean = np.zeros(size), np.zeros(size)
    aux, c_aux = np.zeros(size), np.zeros(size)
    with np.errstate(all="ignore"):
        for k, active, value, _ts in _lockstep(w):
            count = float(k + 1)
            delta = value - (mean + c_mean)
            new_mean, new_c_mean = kahan_inc(delta / count, mean, c_mean)
            new_aux, new_c_aux = kahan_inc(delta * (value - (new_mean + new_c_mean)), aux, c_aux)
            mean = np.where(active, new_mean, mean)
            c_mean = np.where(active, new_c_mean, c_mean)
            aux = np.where(active, new_aux, aux)
            c_aux = np.where(active, new_c_aux, c_aux)
        variance = (aux + c_aux) / w.n
        result = np.sqrt(variance) if stddev else variance
    return to_vector(matrix, result, w.n >= 1)


def changes(matrix: Matrix) -> Vector:
    w = Windows.of(matrix)
    count = np.zeros(len(w.n))
    for k, active, value, _ts in _lockstep(w, 1):
        prev = w.values[w.index(k - 1)]
        changed = active & (value != prev) & ~(np.isnan(value) & np.isnan(prev))
        count += changed
    return to_vector(matrix, count, w.n >= 1)


def resets(matrix: Matrix) -> Vector:
    w = Windows.of(matrix)
    count = np.zeros(len(w.n))
    for k, active, value, _ts in _lockstep(w, 1):
        prev = w.values[w.index(k - 1)]
        count += active & (value < prev)
    return to_vector(matrix, count, w.n >= 1)


# --- regression ---------------------------------------------------------------------------------


def _linear_regression(w: Windows, intercept_ms: IntArray) -> tuple[FloatArray, FloatArray]:
    """Least squares of value on ``(t - intercept_ms)/1000`` per window, Kahan-summed; a constant
    series has slope 0 (NaN if the constant is infinite)."""
    size = len(w.n)
    zeros = [np.zeros(size) for _ in range(8)]
    sx, cx, sy, cy, sxy, cxy, sx2, cx2 = zeros
    _, init_y = w.first()
    const_y = np.ones(size, dtype=bool)
    with np.errstate(all="ignore"):
        for k, active, value, ts in _lockstep(w):
            if k > 0:
                const_y &= ~(active & (value != init_y))
            x = (ts - intercept_ms) / 1e3
            nsx, ncx = kahan_inc(x, sx, cx)
            nsy, ncy = kahan_inc(value, sy, cy)
            nsxy, ncxy = kahan_inc(x * value, sxy, cxy)
            nsx2, ncx2 = kahan_inc(x * x, sx2, cx2)
            sx, cx = np.where(active, nsx, sx), np.where(active, ncx, cx)
            sy, cy = np.where(active, nsy, sy), np.where(active, ncy, cy)
            sxy, cxy = np.where(active, nsxy, sxy), np.where(active, ncxy, cxy)
            sx2, cx2 = np.where(active, nsx2, sx2), np.where(active, ncx2, cx2)
        n = w.n.astype(np.float64)
        sx, sy, sxy, sx2 = sx + cx, sy + cy, sxy + cxy, sx2 + cx2
        cov_xy = sxy - sx * sy / n
        var_x = sx2 - sx * sx / n
        slope = cov_xy / var_x
        intercept = sy / n - slope * sx / n
        inf_const = const_y & np.isinf(init_y)
        slope = np.where(const_y, np.where(inf_const, np.nan, 0.0), slope)
        intercept = np.where(const_y, np.where(inf_const, np.nan, init_y), intercept)
    return slope, intercept


def deriv(matrix: Matrix) -> Vector:
    w = Windows.of(matrix)
    slope, _ = _linear_regression(w, w.first()[0])
    return to_vector(matrix, slope, w.n >= 2)


def predict_linear(matrix: Matrix, steps_ms: IntArray, duration_s: FloatArray) -> Vector:
    """Regression intercept at the *evaluation* time (not shifted by offset), plus slope times
    ``duration_s`` (per step)."""
    w = Windows.of(matrix)
    at = np.tile(np.asarray(steps_ms, dtype=np.int64), w.num_series)
    slope, intercept = _linear_regression(w, at)
    duration = np.tile(np.asarray(duration_s, dtype=np.float64), w.num_series)
    with np.errstate(all="ignore"):
        result = slope * duration + intercept
    return to_vector(matrix, result, w.n >= 2)


# --- per-window sorts (quantile, median) ---------------------------------------------------------


def quantile_sorted(q: float, values: FloatArray) -> float:
    """Prometheus' ``quantile`` over values sorted ascending with NaN first; q outside [0, 1]
    gives -Inf/+Inf, NaN gives NaN; interpolates between the two closest ranks."""
    n = len(values)
    if n == 0 or math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    rank = q * (n - 1)
    lower = max(0, math.floor(rank))
    upper = min(n - 1, lower + 1)
    weight = rank - math.floor(rank)
    return float(values[lower] * (1 - weight) + values[upper] * weight)


def sort_nan_first(values: FloatArray) -> FloatArray:
    """Returns: ``values`` sorted ascending with NaN before everything (Prometheus' heap order)."""
    nan = np.isnan(values)
    return np.concatenate([values[nan], np.sort(values[~nan])])


def _per_window(matrix: Matrix, fn: Callable[[FloatArray, int], float]) -> Vector:
    """Applies ``fn(window_values, step_index)`` to each non-empty window (a Python loop; for the
    order-statistic functions only)."""
    w = Windows.of(matrix)
    out = np.full(len(w.n), np.nan)
    with np.errstate(all="ignore"):
        for flat in np.flatnonzero(w.n >= 1):
            lo = int(w.lo[flat])
            out[flat] = fn(w.values[lo : lo + int(w.n[flat])], int(flat % max(w.num_steps, 1)))
    return to_vector(matrix, out, w.n >= 1)


def quantile_over_time(q: FloatArray, matrix: Matrix) -> Vector:
    return _per_window(matrix, lambda v, step: quantile_sorted(float(q[step]), sort_nan_first(v)))


def mad_over_time(matrix: Matrix) -> Vector:
    """Median absolute deviation from the median; any NaN in the window gives NaN."""

    def mad(values: FloatArray, _step: int) -> float:
        if np.isnan(values).any():
            return math.nan
        median = quantile_sorted(0.5, np.sort(values))
        return quantile_sorted(0.5, np.sort(np.abs(values - median)))

    return _per_window(matrix, mad)


def double_exponential_smoothing(matrix: Matrix, sf: float, tf: float) -> Vector:
    """Holt's linear smoothing of each window (needs two samples); returns the last level."""
    w = Windows.of(matrix)
    size = len(w.n)
    with np.errstate(all="ignore"):
        _, s1 = w.first()
        s0 = np.zeros(size)
        b = w.values[w.index(1)] - s1
        for k, active, value, _ts in _lockstep(w, 1):
            x = sf * value
            if k > 1:
                b = np.where(active, tf * (s1 - s0) + (1 - tf) * b, b)
            y = (1 - sf) * (s1 + b)
            s0, s1 = np.where(active, s1, s0), np.where(active, x + y, s1)
    return to_vector(matrix, s1, w.n >= 2)


def absent_over_time_mask(matrix: Matrix) -> BoolArray:
    """Returns: per step, whether no series has any sample in its window."""
    any_present = np.zeros(len(matrix.window_end_ms), dtype=bool)
    for series in matrix.series:
        any_present |= series.ends > series.starts
    result: BoolArray = ~any_present
    return result
