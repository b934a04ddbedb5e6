"""Rollup buckets: one series' raw samples into fixed-width time buckets, and step aggregation.

Stage: storage -> api. Input: int64 millisecond timestamps and float64 values of one series;
output: ``Buckets`` columns (stored as rollups), then one value per query step.

A bucket of width ``w`` ending at ``e`` (``e = origin + k*w``) holds the samples with
``e - w < ts <= e``: left-open, right-closed, like a Prometheus range window. A bucket keeps
enough state (count, sum, min, max, first, last, inner increase) that coarser buckets and every
aggregation over step windows come out of finer buckets as they would out of the raw samples.

Counters follow Prometheus: a value below its predecessor means the counter restarted at 0, so
that delta is the new value itself. Unlike Prometheus' ``increase()``, nothing is extrapolated to
the window edges: an increase is the exact sum of the deltas between samples, so consecutive
windows add up to the whole increase.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Final, TypeAlias

import numpy as np
import numpy.typing as npt

Int64Array: TypeAlias = npt.NDArray[np.int64]
FloatArray: TypeAlias = npt.NDArray[np.float64]

AGGREGATIONS: Final = ("avg", "min", "max", "sum", "count", "last", "rate", "increase")
STALE_NAN_BITS: Final = 0x7FF0000000000002
"""Prometheus' stale marker (remote-written series store them): not a sample, left out."""


@dataclass(frozen=True, eq=False)  # eq=False: comparing numpy columns has no single truth value
class Buckets:
    """Columns of equal length, one entry per non-empty bucket, ordered by ``end_ms``.

    ``inc`` is the reset-adjusted counter increase between consecutive samples inside the bucket;
    the delta from the previous bucket's last sample is left to ``combine`` and ``aggregate``.
    """

    end_ms: Int64Array
    count: FloatArray
    sum: FloatArray
    min: FloatArray
    max: FloatArray
    first: FloatArray
    last: FloatArray
    inc: FloatArray
    COLUMNS: ClassVar[tuple[str, ...]] = ("count", "sum", "min", "max", "first", "last", "inc")

    def __post_init__(self) -> None:
        if self.end_ms.ndim != 1 or any(c.shape != self.end_ms.shape for c in self.columns()):
            raise ValueError("bucket columns must be one-dimensional and of equal length")
        if np.any(self.end_ms[1:] <= self.end_ms[:-1]):
            raise ValueError("bucket ends must be strictly increasing")

    def __len__(self) -> int:
        return len(self.end_ms)

    def columns(self) -> list[FloatArray]:
        """The value columns in ``COLUMNS`` order (the block codec's layout)."""
        return [getattr(self, name) for name in self.COLUMNS]

    @classmethod
    def from_columns(cls, end_ms: npt.ArrayLike, columns: Sequence[npt.ArrayLike]) -> Buckets:
        """Inverse of ``columns()``: ends plus value columns in ``COLUMNS`` order."""
        if len(columns) != len(cls.COLUMNS):
            raise ValueError(f"expected {len(cls.COLUMNS)} columns, got {len(columns)}")
        values = [np.asarray(c, dtype=np.float64) for c in columns]
        return cls(np.asarray(end_ms, dtype=np.int64), *values)

    @classmethod
    def empty(cls) -> Buckets:
        return cls.from_columns(np.empty(0), [np.empty(0)] * len(cls.COLUMNS))

    def select(self, keep: npt.NDArray[np.bool_]) -> Buckets:
        """The buckets where ``keep`` is true."""
        return Buckets(self.end_ms[keep], *(c[keep] for c in self.columns()))

    def slice(self, start_ms: int, end_ms: int) -> Buckets:
        """Buckets whose end lies in (start_ms, end_ms].

        Left-open, right-closed like the buckets themselves: with both bounds on this bucket
        grid, these are exactly the buckets holding the samples with start_ms < ts <= end_ms.
        """
        lo = int(np.searchsorted(self.end_ms, start_ms, side="right"))
        hi = int(np.searchsorted(self.end_ms, end_ms, side="right"))
        return Buckets(self.end_ms[lo:hi], *(c[lo:hi] for c in self.columns()))


def rollup(
    ts_ms: npt.ArrayLike, values: npt.ArrayLike, width_ms: int, origin_ms: int = 0
) -> Buckets:
    """Raw samples (timestamps strictly increasing) into buckets of width_ms aligned at origin_ms.
    Stale markers are left out; NaN and +-Inf values count as samples (and make sums NaN/Inf).

    A raw sample is a bucket of one, so this is ``combine`` over those: one code path for both.
    """
    ts = np.asarray(ts_ms, dtype=np.int64)
    v = np.asarray(values, dtype=np.float64)
    if ts.ndim != 1 or ts.shape != v.shape:
        raise ValueError("timestamps and values must be one-dimensional and of equal length")
    if np.any(ts[1:] <= ts[:-1]):
        raise ValueError("timestamps must be strictly increasing")
    markers = v.view(np.uint64) == np.uint64(STALE_NAN_BITS)
    if markers.any():
        ts, v = ts[~markers], v[~markers]
    samples = Buckets(ts, np.ones_like(v), v, v, v, v, v, np.zeros_like(v))
    return combine(samples, width_ms, origin_ms)


def combine(buckets: Buckets, width_ms: int, origin_ms: int = 0) -> Buckets:
    """Finer buckets into coarser ones of width_ms aligned at origin_ms.

    Requires width_ms to be a multiple of the finer width with the finer grid containing
    origin_ms, so that no finer bucket straddles a coarser boundary. The result equals
    ``rollup`` of the raw samples, up to float rounding of sum and inc.
    """
    _check_positive("width_ms", width_ms)
    n = len(buckets)
    if n == 0:
        return Buckets.empty()
    ends = _bucket_ends(buckets.end_ms, width_ms, origin_ms)
    starts = np.flatnonzero(np.concatenate(([True], ends[1:] != ends[:-1])))
    stops = np.append(starts[1:], n) - 1
    # The delta from one finer bucket's last sample to the next one's first sample belongs to
    # the coarser bucket only when both finer buckets fall into it.
    inc = buckets.inc.copy()
    inc[1:] += _reset_delta(buckets.last[:-1], buckets.first[1:])
    inc[starts] = buckets.inc[starts]
    return Buckets(
        end_ms=ends[starts],
        count=np.add.reduceat(buckets.count, starts),
        sum=np.add.reduceat(buckets.sum, starts),
        min=np.minimum.reduceat(buckets.min, starts),
        max=np.maximum.reduceat(buckets.max, starts),
        first=buckets.first[starts],
        last=buckets.last[stops],
        inc=np.add.reduceat(inc, starts),
    )


def merge(*parts: Buckets) -> Buckets:
    """Union of bucket sets, ordered by end; ValueError when two share an end."""
    if not parts:
        return Buckets.empty()
    ends = np.concatenate([part.end_ms for part in parts])
    order = np.argsort(ends, kind="stable")
    ends = ends[order]
    clash = np.flatnonzero(ends[1:] == ends[:-1])
    if clash.size:
        raise ValueError(f"bucket sets overlap: both have a bucket ending at {int(ends[clash[0]])}")
    columns = zip(*(part.columns() for part in parts), strict=True)
    return Buckets(ends, *(np.concatenate(column)[order] for column in columns))


def aggregate(
    buckets: Buckets, aggregation: str, step_ms: int, previous_last: float | None
) -> FloatArray:
    """One value per bucket, the buckets being the query's step windows (a new array).

    avg = sum / count; min, max, sum, count and last as named. ``increase`` is the
    reset-adjusted increase over the window including the delta from the last sample before it:
    previous_last for the first window (no delta when None), the previous non-empty window's
    last for the others. ``rate`` is increase / (step_ms / 1000), per second.

    Raises:
        ValueError: for an unknown aggregation, or a rate over a step that is not positive.
    """
    match aggregation:
        case "avg":
            return buckets.sum / buckets.count
        case "min" | "max" | "sum" | "count" | "last":
            column: FloatArray = getattr(buckets, aggregation)
            return column.copy()
        case "increase":
            return _increase(buckets, previous_last)
        case "rate":
            _check_positive("step_ms", step_ms)
            return _increase(buckets, previous_last) / (step_ms / 1000.0)
    raise ValueError(f"unknown aggregation {aggregation!r}; expected one of {AGGREGATIONS}")


def last_at_or_before(buckets: Buckets, at_ms: int) -> float | None:
    """Value of the latest sample at or before at_ms: the previous_last of a window starting there.

    Exact when at_ms lies on these buckets' grid, where no bucket straddles it.
    """
    i = int(np.searchsorted(buckets.end_ms, at_ms, side="right"))
    return float(buckets.last[i - 1]) if i else None


def grid(start_ms: int, end_ms: int, step_ms: int, align_ms: int) -> tuple[int, int]:
    """The first and last step-window end for a query answered from buckets of width align_ms.

    The first end is start_ms rounded down to a multiple of align_ms (align_ms=1 for raw data:
    no rounding); the last is end_ms rounded down so that (last - first) is a multiple of
    step_ms. The windows are (t - step_ms, t] for t = first, first + step_ms, ..., last: answer
    them with ``combine(buckets.slice(first - step_ms, last), step_ms, origin_ms=first)``.

    Raises:
        ValueError: when step_ms is not a positive multiple of align_ms, or end_ms < start_ms.
    """
    _check_positive("align_ms", align_ms)
    _check_positive("step_ms", step_ms)
    if step_ms % align_ms:
        raise ValueError(f"step_ms={step_ms} is not a multiple of align_ms={align_ms}")
    if end_ms < start_ms:
        raise ValueError(f"end_ms={end_ms} is before start_ms={start_ms}")
    first = start_ms - start_ms % align_ms
    return first, first + (end_ms - first) // step_ms * step_ms


def _increase(buckets: Buckets, previous_last: float | None) -> FloatArray:
    """Inner increase plus the reset-adjusted delta from the sample before each window."""
    result = buckets.inc.copy()
    if len(buckets) == 0:
        return result
    result[1:] += _reset_delta(buckets.last[:-1], buckets.first[1:])
    if previous_last is not None:
        before = np.array([previous_last], dtype=np.float64)
        result[:1] += _reset_delta(before, buckets.first[:1])
    return result


def _reset_delta(previous: FloatArray, current: FloatArray) -> FloatArray:
    """Counter deltas, Prometheus-style: a drop means a restart from 0, so the delta is current."""
    return np.where(current >= previous, current - previous, current)


def _bucket_ends(ts_ms: Int64Array, width_ms: int, origin_ms: int) -> Int64Array:
    """End of the bucket holding each timestamp: the smallest origin + k*width >= ts."""
    return origin_ms - (origin_ms - ts_ms) // width_ms * width_ms


def _check_positive(name: str, value: int) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
