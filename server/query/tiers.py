"""PromQL over the rollup tiers: documented samples past the raw retention, and exact answers.

Stage: storage -> promql (inside the query source). Input: a series' rollup buckets (left-open,
right-closed ``(e - w, e]``, see ``server/rollup/buckets.py``); output: samples the engine reads
like raw ones, or per-step values of a range function.

**Documented samples.** Raw samples are kept for the raw retention, 1-minute buckets longer,
1-hour buckets longest. A selector whose range reaches past the raw horizon reads, for that
part, one sample per bucket at the bucket's end time, from the finest tier that still holds
it. The history is cut on bucket boundaries so the parts tile it without overlap (``Cuts``):

- raw samples with ``ts > raw_after``, where ``raw_after`` is the first 1-minute bucket end at
  or after the raw horizon (the bucket ending there was rolled up from all its samples);
- 1-minute buckets ending in ``(minute_after, raw_after]``;
- 1-hour buckets ending at or before ``hour_until`` (``<= minute_after``, on the hour grid).

A gauge's sample is the bucket's ``last`` value. A counter's is a counter rebuilt from the
buckets' increases (each bucket's inner increase plus the reset-adjusted delta from the previous
bucket's last value): it never decreases, ends at the true ``last`` of the newest bucket read,
and steps back from there by the increases, so without resets it equals each bucket's ``last``
and before a reset it is shifted down (to about 0 just before the newest reset, below 0 further
back). ``rate()`` and ``increase()`` over it see exactly the true increase between bucket ends,
and across the boundary into raw samples the engine's own reset rule gives the true delta from
the bucket's last value to the first raw one; only their rule not to extrapolate below zero may
shorten a window that starts right before a reset. A series is a counter when the metric catalog
marks it monotonic (counters and the few ever-growing untyped metrics); a metric the catalog
does not know (remote-written) is a counter when its name ends in ``_total``, ``_count``,
``_sum`` or ``_bucket`` (Prometheus' naming conventions). Instant selectors keep the 5-minute
lookback, so on the 1-hour tier a plain selector answers only within 5 minutes after each hour;
``last_over_time(x[1h])``, or ``rate()`` over more than an hour, answers at any step.

**Exact answers.** ``sum_``, ``avg_``, ``min_``, ``max_``, ``count_``, ``last_``, ``first_`` and
``present_over_time(x[r])`` come straight from the buckets of the coarsest tier whose width ``w``
divides ``r`` and every evaluation time (offset applied), and which holds every window: then the
buckets ``(e - w, e]`` with ``t - r < e <= t`` tile each window ``(t - r, t]`` exactly, and the
answer equals the one from raw samples up to float rounding of sums. This is also used inside
the raw retention, reading one bucket instead of every sample of it; past it, the answer is the
one the raw samples would have given, not one over documented samples. Buckets holding a NaN or
infinite value (NaN values, stored stale markers) make the query fall back to samples.
"""

from __future__ import annotations

from collections.abc import Container, Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np

from agent.wire.catalog import Catalog
from server.promql.values import BoolArray, FloatArray, IntArray
from server.rollup.buckets import Buckets, aggregate, merge
from server.storage.reader import Reader
from server.storage.runs import EMPTY, Samples
from server.storage.series_index import IndexedSeries
from server.storage.tiers import Tier

COUNTER_SUFFIXES: Final = ("_total", "_count", "_sum", "_bucket")
EXACT_FUNCTIONS: Final = frozenset(
    {
        "sum_over_time",
        "avg_over_time",
        "min_over_time",
        "max_over_time",
        "count_over_time",
        "last_over_time",
        "first_over_time",
        "present_over_time",
    }
)


def is_counter(metric: str, catalog: Catalog) -> bool:
    """Returns: whether the metric's samples only grow between resets: the catalog's
    ``monotonic`` when it knows the metric, else Prometheus' naming conventions."""
    spec = catalog.get(metric)
    if spec is not None:
        return spec.monotonic
    return metric.endswith(COUNTER_SUFFIXES)


@dataclass(frozen=True)
class Cuts:
    """Where each tier's part of the history ends (ms, see the module docstring)."""

    raw_after_ms: int
    minute_after_ms: int
    hour_until_ms: int


def cuts(raw_horizon_ms: int, minute_horizon_ms: int, minute_ms: int, hour_ms: int) -> Cuts:
    """Returns: the cuts for these horizons (the oldest timestamps each tier keeps) and bucket
    widths; a tier that holds nothing beyond the finer one gets an empty part."""
    raw_after = _ceil(raw_horizon_ms, minute_ms)
    # The oldest 1m bucket kept ends at or after its horizon; it holds samples after this.
    minute_from = _ceil(minute_horizon_ms, minute_ms) - minute_ms
    hour_until = min(_ceil(minute_from, hour_ms), raw_after - raw_after % hour_ms)
    minute_after = min(max(minute_from, hour_until), raw_after)
    return Cuts(raw_after, minute_after, hour_until)


def reader_cuts(reader: Reader) -> Cuts:
    """Returns: the cuts at the reader's clock."""
    plan = reader.plan
    assert plan.minute.bucket_ms is not None and plan.hour.bucket_ms is not None
    return cuts(
        reader.horizon_ms(plan.raw),
        reader.horizon_ms(plan.minute),
        plan.minute.bucket_ms,
        plan.hour.bucket_ms,
    )


def read_rollups(
    reader: Reader,
    series: Sequence[IndexedSeries],
    counters: Container[int],
    start_ms: int,
    end_ms: int,
) -> tuple[dict[int, Samples], int]:
    """Returns: series id -> documented samples in ``[start_ms, end_ms]`` of the part before
    the raw samples (none when the range starts after the raw horizon's cut), and the timestamp
    after which raw samples take over. ``counters`` holds the ids of counter series.

    Raises: SQLAlchemyError from the reader.
    """
    at = reader_cuts(reader)
    found = {item.id: EMPTY for item in series}
    if start_ms > at.raw_after_ms or not series:
        return found, at.raw_after_ms
    plan = reader.plan
    parts: list[dict[int, Buckets]] = []
    if start_ms <= at.hour_until_ms:
        hour_end = min(end_ms, at.hour_until_ms)
        parts.append(reader.buckets(series, plan.hour, start_ms - 1, hour_end))
    if end_ms > at.minute_after_ms and at.minute_after_ms < at.raw_after_ms:
        minute_start = max(start_ms - 1, at.minute_after_ms)
        minute_end = min(end_ms, at.raw_after_ms)
        parts.append(reader.buckets(series, plan.minute, minute_start, minute_end))
    for item in series:
        buckets = merge(*(part[item.id] for part in parts))
        found[item.id] = documented(buckets, item.id in counters)
    return found, at.raw_after_ms


def documented(buckets: Buckets, counter: bool) -> Samples:
    """Returns: one sample per bucket at its end: the last value, or for a counter the counter
    rebuilt from the increases (``rebuilt_counter``)."""
    values = rebuilt_counter(buckets) if counter else buckets.last.copy()
    return buckets.end_ms.copy(), values


def rebuilt_counter(buckets: Buckets) -> FloatArray:
    """Returns: per bucket, a never-decreasing counter that ends at the newest bucket's last
    value and steps back by each bucket's reset-adjusted increase from the bucket before it
    (a non-finite increase counts as none)."""
    if len(buckets) == 0:
        return np.empty(0, dtype=np.float64)
    rises = aggregate(buckets, "increase", 1, None)  # [k]: from bucket k-1's last to k's last
    rises = np.where(np.isfinite(rises), rises, 0.0)
    # after[k]: the increase from bucket k's last to the newest bucket's last.
    after = np.append(np.cumsum(rises[:0:-1])[::-1], 0.0)
    finite = buckets.last[np.isfinite(buckets.last)]
    anchor = float(finite[-1]) if len(finite) else 0.0
    result: FloatArray = anchor - after
    return result


def stitch(front: Samples, raw: Samples) -> Samples:
    """Returns: documented samples followed by raw ones (the cuts keep them apart)."""
    if not len(front[0]):
        return raw
    return np.concatenate([front[0], raw[0]]), np.concatenate([front[1], raw[1]])


# --- exact answers ------------------------------------------------------------------------------


def exact_tier(reader: Reader, range_ms: int, refs_ms: IntArray) -> Tier | None:
    """Returns: the coarsest rollup tier whose buckets tile every window ``(t - range_ms, t]``
    and still hold the oldest one, or None."""
    if len(refs_ms) == 0 or range_ms <= 0:
        return None
    oldest = int(refs_ms.min()) - range_ms
    for tier in (reader.plan.hour, reader.plan.minute):
        width = tier.bucket_ms
        assert width is not None
        if range_ms % width or np.any(refs_ms % width):
            continue
        if oldest + width >= reader.horizon_ms(tier):
            return tier
    return None


def over_time(
    function: str, buckets: Buckets, refs_ms: IntArray, range_ms: int
) -> tuple[FloatArray, BoolArray] | None:
    """Returns: the function's value and presence per window ``(t - range_ms, t]`` from buckets
    that tile the windows, or None when a bucket holds a non-finite value.

    Raises: ValueError for a function outside ``EXACT_FUNCTIONS``.
    """
    if function not in EXACT_FUNCTIONS:
        raise ValueError(f"{function} has no exact answer from rollups")
    if not (np.isfinite(buckets.sum).all() and np.isfinite(buckets.first).all()):
        return None
    lo = np.searchsorted(buckets.end_ms, refs_ms - range_ms, side="right")
    hi = np.searchsorted(buckets.end_ms, refs_ms, side="right")
    present = hi > lo
    if function == "present_over_time":
        return np.ones(len(refs_ms)), present
    if function in ("last_over_time", "first_over_time"):
        column = buckets.last if function == "last_over_time" else buckets.first
        at = np.where(present, hi - 1, 0) if function == "last_over_time" else lo
        padded = np.append(column, np.nan)
        return padded[at], present
    # Reduce each [lo, hi) in one call: reduceat over the interleaved bounds, even positions.
    bounds = np.stack([lo, hi], axis=1).ravel()

    def reduce(ufunc: np.ufunc, column: FloatArray) -> FloatArray:
        result: FloatArray = ufunc.reduceat(np.append(column, 0.0), bounds)[::2]
        return result

    match function:
        case "sum_over_time":
            values = reduce(np.add, buckets.sum)
        case "count_over_time":
            values = reduce(np.add, buckets.count)
        case "avg_over_time":
            with np.errstate(all="ignore"):
                values = reduce(np.add, buckets.sum) / reduce(np.add, buckets.count)
        case "min_over_time":
            values = reduce(np.minimum, buckets.min)
        case _:  # max_over_time
            values = reduce(np.maximum, buckets.max)
    return values, present


def _ceil(value_ms: int, width_ms: int) -> int:
    return -(-value_ms // width_ms) * width_ms
