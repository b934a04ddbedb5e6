"""Rollup buckets and step aggregation: boundaries, counter resets, and the acceptance property
that answers computed from raw samples, 1-minute buckets and 1-hour buckets agree."""

from __future__ import annotations

from dataclasses import dataclass
from itertools import pairwise

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.rollup.buckets import (
    AGGREGATIONS,
    Buckets,
    aggregate,
    combine,
    grid,
    last_at_or_before,
    merge,
    rollup,
)

MINUTE = 60_000
HOUR = 3_600_000
DAY = 86_400_000
T0 = 1_800_000_000_000  # a multiple of a day: minute and hour boundaries fall on round numbers
EXACT = ("min", "max", "count", "last")  # copied, never summed: must agree bit for bit

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def cols(b: Buckets) -> dict[str, list[float]]:
    return {"end_ms": b.end_ms.tolist(), **{n: getattr(b, n).tolist() for n in Buckets.COLUMNS}}


def total_increase(values: FloatArray) -> float:
    """Reference: the whole stream's reset-adjusted increase, one sample at a time."""
    total = 0.0
    for prev, cur in pairwise(values.tolist()):
        total += cur - prev if cur >= prev else cur
    return total


# -- rollup by hand -------------------------------------------------------------------------------


def test_sample_at_a_bucket_end_belongs_to_that_bucket_not_the_next() -> None:
    b = rollup([MINUTE, MINUTE + 1, 2 * MINUTE], [1.0, 2.0, 4.0], MINUTE)
    assert b.end_ms.dtype == np.int64
    assert cols(b) == {
        "end_ms": [MINUTE, 2 * MINUTE],
        "count": [1.0, 2.0],
        "sum": [1.0, 6.0],
        "min": [1.0, 2.0],
        "max": [1.0, 4.0],
        "first": [1.0, 2.0],
        "last": [1.0, 4.0],
        "inc": [0.0, 2.0],
    }


def test_origin_shifts_the_bucket_grid() -> None:
    b = rollup([30_000, 30_001, 90_000, 90_001], [1.0, 2.0, 3.0, 4.0], MINUTE, origin_ms=30_000)
    assert b.end_ms.tolist() == [30_000, 90_000, 150_000]
    assert b.count.tolist() == [1.0, 2.0, 1.0]


def test_timestamps_before_the_origin_and_negative_ones_use_the_same_grid() -> None:
    b = rollup([-MINUTE, -1, 0, 1], [1.0, 2.0, 3.0, 4.0], MINUTE, origin_ms=10 * MINUTE)
    assert b.end_ms.tolist() == [-MINUTE, 0, MINUTE]
    assert b.count.tolist() == [1.0, 2.0, 1.0]


def test_empty_input_gives_no_buckets() -> None:
    b = rollup(np.empty(0, dtype=np.int64), np.empty(0), MINUTE)
    assert len(b) == 0
    assert b.end_ms.dtype == np.int64
    assert all(len(c) == 0 and c.dtype == np.float64 for c in b.columns())
    assert len(combine(b, HOUR)) == 0
    assert aggregate(b, "increase", HOUR, 5.0).tolist() == []


def test_single_sample() -> None:
    b = rollup([T0 + 5], [7.5], MINUTE)
    assert cols(b) == {
        "end_ms": [T0 + MINUTE],
        **{n: [1.0 if n == "count" else 0.0 if n == "inc" else 7.5] for n in Buckets.COLUMNS},
    }


def test_gaps_leave_no_empty_buckets() -> None:
    b = rollup([10_000, 20_000, 3 * MINUTE + 1, 3 * MINUTE + 2], [1.0, 2.0, 3.0, 5.0], MINUTE)
    assert b.end_ms.tolist() == [MINUTE, 4 * MINUTE]
    assert b.sum.tolist() == [3.0, 8.0]


@pytest.mark.parametrize(
    ("ts", "values", "width"),
    [
        ([1, 1], [1.0, 2.0], MINUTE),
        ([2, 1], [1.0, 2.0], MINUTE),
        ([1, 2], [1.0], MINUTE),
        ([1, 2], [1.0, 2.0], 0),
    ],
)
def test_rollup_refuses_bad_input(ts: list[int], values: list[float], width: int) -> None:
    with pytest.raises(ValueError):
        rollup(ts, values, width)


# -- counter resets -------------------------------------------------------------------------------


def test_counter_reset_inside_a_bucket_counts_the_new_value() -> None:
    b = rollup([1, 2, 3, 4], [10.0, 15.0, 3.0, 5.0], MINUTE)
    assert b.inc.tolist() == [5.0 + 3.0 + 2.0]
    assert aggregate(b, "increase", MINUTE, None).tolist() == [10.0]


def test_counter_reset_across_a_boundary() -> None:
    b = rollup([1, 2, MINUTE + 1, MINUTE + 2], [10.0, 15.0, 3.0, 5.0], MINUTE)
    assert b.inc.tolist() == [5.0, 2.0]  # the boundary delta is not in either bucket's inc
    assert aggregate(b, "increase", MINUTE, None).tolist() == [5.0, 3.0 + 2.0]
    assert combine(b, 2 * MINUTE).inc.tolist() == [5.0 + 3.0 + 2.0]


def test_equal_values_are_no_reset() -> None:
    b = rollup([1, MINUTE + 1], [4.0, 4.0], MINUTE)
    assert aggregate(b, "increase", MINUTE, 4.0).tolist() == [0.0, 0.0]


def test_increase_bridges_empty_windows_from_the_last_non_empty_one() -> None:
    b = rollup([1, 2, 3 * MINUTE], [10.0, 15.0, 20.0], MINUTE)
    assert b.end_ms.tolist() == [MINUTE, 3 * MINUTE]
    assert aggregate(b, "increase", MINUTE, None).tolist() == [5.0, 5.0]
    assert combine(b, 3 * MINUTE).inc.tolist() == [10.0]


def test_previous_last_adds_the_delta_into_the_first_window() -> None:
    b = rollup([1, 2], [10.0, 15.0], MINUTE)
    assert aggregate(b, "increase", MINUTE, 8.0).tolist() == [7.0]
    assert aggregate(b, "increase", MINUTE, 100.0).tolist() == [15.0]  # reset before the window
    assert aggregate(b, "rate", MINUTE, 8.0).tolist() == [7.0 / 60.0]


# -- aggregate, merge, columns, slice, grid -------------------------------------------------------


def test_aggregations_by_hand() -> None:
    b = rollup([1, 2, 3, MINUTE + 1], [2.0, 8.0, 5.0, 1.0], MINUTE)
    # Increase: 2->8 is +6 and 8->5 a reset (+5) in the first window; 5->1 across the boundary
    # is a reset (+1) in the second.
    expected = {
        "avg": [5.0, 1.0],
        "min": [2.0, 1.0],
        "max": [8.0, 1.0],
        "sum": [15.0, 1.0],
        "count": [3.0, 1.0],
        "last": [5.0, 1.0],
        "increase": [11.0, 1.0],
        "rate": [11.0 / 60.0, 1.0 / 60.0],
    }
    assert {a: aggregate(b, a, MINUTE, None).tolist() for a in AGGREGATIONS} == expected


def test_aggregate_returns_a_new_array() -> None:
    b = rollup([1], [3.0], MINUTE)
    aggregate(b, "max", MINUTE, None)[0] = 99.0
    assert b.max.tolist() == [3.0]


def test_aggregate_refuses_unknown_names_and_rates_over_no_time() -> None:
    b = rollup([1], [3.0], MINUTE)
    with pytest.raises(ValueError, match="unknown aggregation 'median'"):
        aggregate(b, "median", MINUTE, None)
    with pytest.raises(ValueError, match="step_ms"):
        aggregate(b, "rate", 0, None)


def test_merge_orders_the_union_and_refuses_overlaps() -> None:
    a = rollup([1, 2 * MINUTE + 1], [1.0, 3.0], MINUTE)
    b = rollup([MINUTE + 1, 4 * MINUTE], [2.0, 4.0], MINUTE)
    merged = merge(a, b)
    assert merged.end_ms.tolist() == [MINUTE, 2 * MINUTE, 3 * MINUTE, 4 * MINUTE]
    assert merged.last.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert cols(merge(a, Buckets.empty())) == cols(a)
    with pytest.raises(ValueError, match=f"ending at {2 * MINUTE}"):
        merge(merged, rollup([2 * MINUTE], [9.0], MINUTE))


def test_columns_round_trip() -> None:
    b = rollup([1, 2, MINUTE + 5, 5 * MINUTE], [4.0, 1.0, 2.5, -3.0], MINUTE)
    again = Buckets.from_columns(b.end_ms, b.columns())
    assert cols(again) == cols(b)
    assert [c.tolist() for c in b.columns()] == [cols(b)[n] for n in Buckets.COLUMNS]


def test_from_columns_refuses_wrong_shapes() -> None:
    with pytest.raises(ValueError, match="expected 7 columns"):
        Buckets.from_columns([1], [[1.0]] * 6)
    with pytest.raises(ValueError, match="equal length"):
        Buckets.from_columns([1, 2], [[1.0, 2.0]] * 6 + [[1.0]])
    with pytest.raises(ValueError, match="strictly increasing"):
        Buckets.from_columns([2, 1], [[1.0, 2.0]] * 7)


def test_slice_is_left_open_right_closed_on_bucket_ends() -> None:
    b = rollup([m * MINUTE for m in range(1, 6)], [1.0, 2.0, 3.0, 4.0, 5.0], MINUTE)
    assert b.slice(MINUTE, 4 * MINUTE).end_ms.tolist() == [2 * MINUTE, 3 * MINUTE, 4 * MINUTE]
    assert b.slice(MINUTE - 1, MINUTE).end_ms.tolist() == [MINUTE]
    assert len(b.slice(5 * MINUTE, 10 * MINUTE)) == 0


def test_last_at_or_before() -> None:
    b = rollup([1, MINUTE, 3 * MINUTE], [1.0, 2.0, 3.0], MINUTE)
    assert last_at_or_before(b, 0) is None
    assert last_at_or_before(b, MINUTE) == 2.0
    assert last_at_or_before(b, 2 * MINUTE) == 2.0
    assert last_at_or_before(b, 3 * MINUTE) == 3.0


def test_grid() -> None:
    assert grid(T0 + 90_000, T0 + 10 * MINUTE + 5, 5 * MINUTE, MINUTE) == (
        T0 + MINUTE,
        T0 + 6 * MINUTE,
    )
    assert grid(1234, 5000, 1000, 1) == (1234, 4234)
    assert grid(T0 + 5, T0 + 5, MINUTE, MINUTE) == (T0, T0)
    with pytest.raises(ValueError, match="not a multiple"):
        grid(0, HOUR, 90_000, MINUTE)
    with pytest.raises(ValueError, match="before"):
        grid(HOUR, 0, MINUTE, MINUTE)
    with pytest.raises(ValueError, match="positive"):
        grid(0, HOUR, 0, 1)


# -- against a straightforward reference ----------------------------------------------------------


@given(
    st.lists(
        st.tuples(st.integers(1, 3 * MINUTE), st.floats(-1e6, 1e6, allow_nan=False)), max_size=40
    ),
    st.integers(1, 5).map(lambda k: k * 30_000),
    st.integers(-3 * MINUTE, 3 * MINUTE),
)
def test_rollup_matches_a_per_sample_reference(
    gaps_and_values: list[tuple[int, float]], width: int, origin: int
) -> None:
    ts = np.cumsum([g for g, _ in gaps_and_values], dtype=np.int64)
    values = np.array([v for _, v in gaps_and_values], dtype=np.float64)
    expected: dict[int, list[float]] = {}
    for t, v in zip(ts.tolist(), values.tolist(), strict=True):
        end = origin + -((origin - t) // width) * width  # ceil to the grid, bucket (end-w, end]
        assert end - width < t <= end
        expected.setdefault(end, []).append(v)
    b = rollup(ts, values, width, origin)
    assert b.end_ms.tolist() == sorted(expected)
    for i, members in enumerate(expected.values()):
        assert b.count[i] == len(members)
        assert (b.min[i], b.max[i]) == (min(members), max(members))
        assert (b.first[i], b.last[i]) == (members[0], members[-1])
        assert b.sum[i] == pytest.approx(sum(members), rel=1e-12, abs=1e-6)
        assert b.inc[i] == pytest.approx(total_increase(np.array(members)), rel=1e-12, abs=1e-6)


# -- the acceptance property: raw, 1-minute and 1-hour paths agree --------------------------------


@dataclass(frozen=True)
class Stream:
    ts: IntArray
    values: FloatArray


@st.composite
def streams(draw: st.DrawFn) -> Stream:
    """Samples on a 10 s grid with jitter, random and long gaps, up to two days; gauge or counter.

    Sizes and shapes come from hypothesis, the bulk from a seeded numpy generator (fast for
    17,000 samples).
    """
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    slots = draw(st.one_of(st.integers(0, 50), st.sampled_from([360, 2_000, 8_640, 17_280])))
    start = T0 + draw(st.integers(0, DAY // 1000)) * draw(st.sampled_from([1, 1000, 10_000]))
    jitter = draw(st.sampled_from([0, 1, 4_999]))
    ts = start + np.arange(slots, dtype=np.int64) * 10_000
    if jitter:
        ts += rng.integers(-jitter, jitter + 1, slots)
    keep = rng.random(slots) >= draw(st.sampled_from([0.0, 0.1, 0.6]))
    for _ in range(draw(st.integers(0, 3))):
        at, length = rng.integers(0, slots + 1), rng.integers(0, slots // 3 + 1)
        keep[at : at + length] = False
    ts = ts[keep]
    n = len(ts)
    if draw(st.booleans()):  # gauge: arbitrary floats, sometimes integral so that ties occur
        values = rng.normal(draw(st.floats(-1e6, 1e6)), draw(st.sampled_from([1e-3, 1.0, 1e5])), n)
        if draw(st.booleans()):
            values = np.round(values)
    else:  # counter: monotonic, with occasional resets to a small value
        steps = rng.exponential(draw(st.sampled_from([1.0, 1e6])), n)
        steps[rng.random(n) < 0.3] = 0.0
        reset = rng.random(n) < draw(st.sampled_from([0.0, 0.001, 0.05]))
        reset[:1] = True
        seg = np.cumsum(reset) - 1
        seg_start = np.flatnonzero(reset)
        climbed = np.cumsum(steps)
        base = rng.uniform(0.0, 10.0, len(seg_start))
        base[:1] = rng.uniform(0.0, 1e9)
        values = climbed - climbed[seg_start][seg] + base[seg]
    return Stream(ts, values.astype(np.float64))


def check_close(name: str, got: FloatArray, want: FloatArray, atol: FloatArray) -> None:
    if name in EXACT:
        np.testing.assert_array_equal(got, want, err_msg=name)
    else:
        bad = np.abs(got - want) > atol + 1e-9 * np.abs(want)
        assert not bad.any(), f"{name}: {got[bad][:5]} != {want[bad][:5]}"


@settings(max_examples=150, deadline=None)
@given(
    streams(),
    st.one_of(
        st.integers(1, 24 * 60).map(lambda k: (k * MINUTE, MINUTE)),
        st.integers(1, 48).map(lambda k: (k * HOUR, HOUR)),
    ),
    st.floats(-0.1, 1.1),
    st.floats(-0.1, 1.1),
)
def test_raw_minute_and_hour_paths_agree(
    stream: Stream, step_and_align: tuple[int, int], a: float, b: float
) -> None:
    step, align = step_and_align
    ts, values = stream.ts, stream.values
    lo, hi = (int(ts[0]), int(ts[-1])) if len(ts) else (T0, T0 + DAY)
    start, end = sorted(lo + int(f * (hi - lo)) for f in (a, b))
    first, last = grid(start, end, step, align)
    window_start = first - step

    # (1) raw samples straight into step windows.
    inside = (ts > window_start) & (ts <= last)
    before = values[ts <= window_start]
    raw = rollup(ts[inside], values[inside], step, first)
    raw_previous = float(before[-1]) if len(before) else None
    abs_sum = rollup(ts[inside], np.abs(values[inside]), step, first).sum
    # Each window's increase also sums the delta from the sample before it.
    edge = np.abs(np.concatenate(([raw_previous or 0.0], raw.last[:-1])))[: len(raw)]
    # previous_last counted once: the windows' increases add up to the increase from the
    # sample before the first window through the last one.
    spanned = np.concatenate((before[-1:], values[inside]))
    increases = aggregate(raw, "increase", step, raw_previous)
    tolerance = 1e-9 * (1.0 + 2 * float(np.abs(spanned).sum()))
    assert abs(float(increases.sum()) - total_increase(spanned)) <= tolerance
    # (2) through 1-minute buckets; (3) through 1-hour buckets when the grid allows.
    minute = rollup(ts, values, MINUTE)
    paths = [(minute, "1-minute")]
    if align == HOUR:
        paths.append((combine(minute, HOUR), "1-hour"))

    for buckets, label in paths:
        steps = combine(buckets.slice(window_start, last), step, first)
        previous = last_at_or_before(buckets, window_start)
        assert previous == raw_previous, label
        np.testing.assert_array_equal(steps.end_ms, raw.end_ms, err_msg=label)
        assert steps.end_ms.size == 0 or first <= steps.end_ms[0] <= steps.end_ms[-1] <= last
        for name in AGGREGATIONS:
            want = aggregate(raw, name, step, raw_previous)
            got = aggregate(steps, name, step, previous)
            # Sums in a different order: error bounded by the magnitudes summed.
            scale = {"avg": abs_sum / raw.count, "sum": abs_sum}.get(name, 2 * abs_sum + edge)
            check_close(f"{label} {name}", got, want, 1e-9 * scale)


@settings(max_examples=60, deadline=None)
@given(streams(), st.integers(1, 24 * 60).map(lambda k: k * MINUTE))
def test_step_increases_add_up_to_the_total_increase(stream: Stream, step: int) -> None:
    want = total_increase(stream.values)
    scale = 1e-9 * (1.0 + 2 * float(np.abs(stream.values).sum()))
    raw = rollup(stream.ts, stream.values, step)
    via_minutes = combine(rollup(stream.ts, stream.values, MINUTE), step)
    for buckets in (raw, via_minutes):
        increases = aggregate(buckets, "increase", step, None)
        assert abs(float(increases.sum()) - want) <= scale
        rates = aggregate(buckets, "rate", step, None)
        np.testing.assert_allclose(rates * (step / 1000), increases, rtol=1e-12)


def test_stale_markers_are_not_samples_of_a_bucket() -> None:
    stale = float(np.array([0x7FF0000000000002], dtype=np.uint64).view(np.float64)[0])
    buckets = rollup([1000, 2000, 3000], [1.0, 2.0, stale], 60_000)
    assert (buckets.count.tolist(), buckets.last.tolist(), buckets.sum.tolist()) == (
        [2.0],
        [2.0],
        [3.0],
    )
