"""The pure parts of PromQL over rollups: exact range functions from buckets equal the engine's
answers from raw samples; the tier cuts tile the history; the rebuilt counter keeps increases."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server.promql.engine import Engine
from server.promql.plan import Matcher
from server.promql.seam import MemorySeries, RawSeries, labels_match
from server.promql.values import IntArray, VectorSeries, make_labels
from server.query import tiers
from server.rollup.buckets import rollup

WIDTH = 60_000
T0 = 1_800_000_000_000  # a multiple of the width
LABELS = make_labels({"__name__": "x", "job": "j"})


class RollupMemory:
    """Series in memory that answer exact range functions from their rollups, as the storage
    source does; ``answered`` counts the calls it answered."""

    def __init__(self, memory: MemorySeries) -> None:
        self._memory = memory
        self.answered = 0

    def select(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> list[RawSeries]:
        return self._memory.select(matchers, start_ms, end_ms)

    def over_time(
        self, function: str, matchers: Sequence[Matcher], range_ms: int, refs_ms: IntArray
    ) -> list[VectorSeries] | None:
        if function not in tiers.EXACT_FUNCTIONS or range_ms % WIDTH or np.any(refs_ms % WIDTH):
            return None
        out = []
        for series in self._memory.select(matchers, -(2**62), 2**62):
            if not labels_match(series.labels, matchers):
                continue
            answer = tiers.over_time(
                function, rollup(series.ts, series.values, WIDTH), refs_ms, range_ms
            )
            if answer is None:
                return None
            if answer[1].any():
                out.append(VectorSeries(series.labels, answer[0], answer[1]))
        self.answered += 1
        return out


def _points(engine: Engine, query: str, start: int, end: int, step: int) -> dict:
    return {
        labels: (ts.tolist(), vs.tolist())
        for labels, ts, vs in engine.range(query, start, end, step).points()
    }


def _assert_same(got: dict, want: dict) -> None:
    assert got.keys() == want.keys()
    for labels, (ts, values) in want.items():
        assert got[labels][0] == ts, labels
        for a, b in zip(got[labels][1], values, strict=True):
            assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12), (labels, a, b)


samples = st.lists(
    st.tuples(st.integers(1, 40_000), st.floats(-1e6, 1e6, allow_nan=False)),
    min_size=1,
    max_size=120,
)


@settings(max_examples=120, deadline=None)
@given(
    data=samples,
    function=st.sampled_from(sorted(tiers.EXACT_FUNCTIONS)),
    extra_buckets=st.integers(0, 5),
    step_buckets=st.integers(1, 4),
    start_bucket=st.integers(-3, 0),
)
def test_exact_functions_from_buckets_equal_the_raw_answers(
    data: list[tuple[int, float]],
    function: str,
    extra_buckets: int,
    step_buckets: int,
    start_bucket: int,
) -> None:
    ts = T0 + np.cumsum([gap for gap, _ in data])
    memory = MemorySeries()
    memory.add(LABELS, ts, [value for _, value in data])
    memory.add({"__name__": "x", "job": "other"}, ts[::2] + 7, [v * 2 for _, v in data[::2]])
    rollups = RollupMemory(memory)
    # Windows at least a step long over a grid past every sample: something is present.
    range_ms = (step_buckets + extra_buckets) * WIDTH
    query = f'{function}(x{{job=~".+"}}[{range_ms}ms])'
    start = T0 + start_bucket * WIDTH
    end, step = start + 100 * WIDTH, step_buckets * WIDTH
    want = _points(Engine(memory), query, start, end, step)
    _assert_same(_points(Engine(rollups), query, start, end, step), want)
    assert rollups.answered == 1
    assert want


@pytest.mark.parametrize(
    ("query", "start_shift", "step"),
    [
        ("max_over_time(x[90s])", 0, WIDTH),  # range not a multiple of the width
        ("max_over_time(x[2m])", 7, WIDTH),  # evaluation times off the bucket ends
        ("max_over_time(x[2m])", 0, 90_000),  # a step that leaves the bucket ends
        ("max_over_time(x[2m] offset 10s)", 0, WIDTH),  # offset moves the windows
        ("stddev_over_time(x[2m])", 0, WIDTH),  # not answered by buckets
        ("rate(x[2m])", 0, WIDTH),
    ],
)
def test_windows_the_buckets_do_not_tile_fall_back_to_raw_samples(
    query: str, start_shift: int, step: int
) -> None:
    memory = MemorySeries()
    ts = T0 + np.arange(1, 200) * 9_000
    memory.add(LABELS, ts, np.sin(np.arange(1, 200)))
    rollups = RollupMemory(memory)
    start = T0 + 3 * WIDTH + start_shift
    want = _points(Engine(memory), query, start, start + 20 * WIDTH, step)
    assert want
    _assert_same(_points(Engine(rollups), query, start, start + 20 * WIDTH, step), want)
    assert rollups.answered == 0


def test_a_nan_in_a_bucket_falls_back() -> None:
    buckets = rollup([1_000, 2_000, 61_000], [1.0, math.nan, 2.0], WIDTH)
    refs = np.array([WIDTH, 2 * WIDTH], dtype=np.int64)
    assert tiers.over_time("max_over_time", buckets, refs, WIDTH) is None
    values, _ = tiers.over_time(
        "count_over_time", rollup([1_000, 61_000], [1.0, 2.0], WIDTH), refs, WIDTH
    ) or (None, None)
    assert values is not None and values.tolist() == [1.0, 1.0]


@pytest.mark.parametrize(
    ("raw_h", "minute_h"),
    [
        (T0 + 7_777, T0 - 10 * 3_600_000 + 123),  # usual: raw < 1m retention by hours
        (T0, T0 - 3_600_000),  # everything on grid
        (T0 + 59_000, T0 - 30 * 60_000),  # less than an hour between the horizons
        (T0, T0 + 3_600_000),  # a 1m retention shorter than the raw one
    ],
)
def test_the_cuts_tile_the_history_on_each_tiers_grid(raw_h: int, minute_h: int) -> None:
    at = tiers.cuts(raw_h, minute_h, WIDTH, 3_600_000)
    assert at.hour_until_ms <= at.minute_after_ms <= at.raw_after_ms
    assert at.raw_after_ms >= raw_h and at.raw_after_ms - raw_h < WIDTH
    assert at.raw_after_ms % WIDTH == 0 and at.minute_after_ms % WIDTH == 0
    assert at.hour_until_ms % 3_600_000 == 0
    if at.minute_after_ms < at.raw_after_ms:
        # The first 1m bucket used is one the 1m tier still keeps (its end >= its horizon).
        assert at.minute_after_ms + WIDTH >= minute_h
        assert at.hour_until_ms == at.minute_after_ms or minute_h > at.hour_until_ms + WIDTH


def _true_increase(values: Sequence[float]) -> float:
    total = 0.0
    for before, after in itertools.pairwise(values):
        total += after - before if after >= before else after
    return total


def test_the_rebuilt_counter_rises_by_the_true_increase_and_ends_at_the_last_value() -> None:
    ts = np.arange(1, 601) * 10_000
    values = np.cumsum(np.full(600, 5.0)) + 1_000
    values[250:] -= values[250] - 3.0  # a restart at sample 250 (to 3), inside a bucket
    values[400:] -= values[400] - 1.0  # and one at 400, at a bucket's first sample
    buckets = rollup(ts, values, WIDTH)
    rebuilt = tiers.rebuilt_counter(buckets)
    assert rebuilt[-1] == values[-1]
    assert np.all(np.diff(rebuilt) >= 0)
    for k in range(1, len(buckets)):
        inside = values[(ts <= buckets.end_ms[k]) & (ts > buckets.end_ms[k - 1] - WIDTH)]
        last_before = values[ts <= buckets.end_ms[k - 1]][-1]
        want = _true_increase(
            [last_before, *values[(ts > buckets.end_ms[k - 1]) & (ts <= buckets.end_ms[k])]]
        )
        assert math.isclose(rebuilt[k] - rebuilt[k - 1], want), (k, inside)
    # Without a reset the rebuilt counter is the buckets' last values.
    plain = rollup(ts, np.cumsum(np.full(600, 5.0)), WIDTH)
    assert np.allclose(tiers.rebuilt_counter(plain), plain.last, rtol=1e-12)
