"""Evaluator behaviour on hand-made data: the edges an off-by-one or a wrong rule would break."""

from __future__ import annotations

import math

import numpy as np
import pytest

from server.promql.engine import Engine, Result
from server.promql.errors import EvalError, UnsupportedError
from server.promql.seam import MemorySeries
from server.promql.values import Vector, stale_nan

MIN = 60_000


def engine_with(*series: tuple[dict[str, str], list[float | None]], every_ms: int = MIN) -> Engine:
    """Series sampled every ``every_ms`` from 0; None is a missing point."""
    source = MemorySeries()
    for labels, points in series:
        ts = [i * every_ms for i, v in enumerate(points) if v is not None]
        source.add(labels, ts, [v for v in points if v is not None])
    return Engine(source, functions={})


def instant(result: Result) -> dict[tuple[tuple[str, str], ...], float]:
    assert isinstance(result.value, Vector)
    return {s.labels: float(s.values[0]) for s in result.value.series if s.present[0]}


def test_lookback_is_left_open() -> None:
    engine = engine_with(({"__name__": "m"}, [1.0]))
    assert instant(engine.instant("m", 5 * MIN - 1)) == {(("__name__", "m"),): 1.0}
    assert instant(engine.instant("m", 5 * MIN)) == {}


def test_stale_marker_hides_the_series_without_looking_further_back() -> None:
    engine = engine_with(({"__name__": "m"}, [1.0, stale_nan()]))
    assert instant(engine.instant("m", 30_000)) == {(("__name__", "m"),): 1.0}
    assert instant(engine.instant("m", MIN)) == {}
    assert instant(engine.instant("m", 2 * MIN)) == {}


def test_ordinary_nan_is_a_value() -> None:
    engine = engine_with(({"__name__": "m"}, [math.nan]))
    (value,) = instant(engine.instant("m", 0)).values()
    assert math.isnan(value)


def test_offset_and_at_move_the_read_time() -> None:
    engine = engine_with(({"__name__": "m"}, [0.0, 1.0, 2.0, 3.0]))
    assert list(instant(engine.instant("m offset 2m", 3 * MIN)).values()) == [1.0]
    assert list(instant(engine.instant("m @ 60", 3 * MIN)).values()) == [1.0]
    result = engine.range("m @ end()", 0, 2 * MIN, MIN)
    ((_, ts, values),) = result.points()
    assert list(ts) == [0, MIN, 2 * MIN]
    assert list(values) == [2.0, 2.0, 2.0]


def test_range_windows_are_left_open() -> None:
    engine = engine_with(({"__name__": "m"}, [0.0, 1.0, 2.0]))
    result = engine.instant("m[1m]", 2 * MIN)
    matrix = result.value
    (series,) = matrix.series  # type: ignore[union-attr]
    window = series.ts[series.starts[0] : series.ends[0]]
    assert list(window) == [2 * MIN]


def test_subquery_grid_is_absolute_and_strictly_after_the_start() -> None:
    engine = engine_with(({"__name__": "m"}, [float(i) for i in range(10)]))
    matrix = engine.instant("m[3m:1m]", 5 * MIN + 30_000).value
    (series,) = matrix.series  # type: ignore[union-attr]
    assert list(series.ts[series.starts[0] : series.ends[0]]) == [3 * MIN, 4 * MIN, 5 * MIN]
    matrix = engine.instant("m[3m:1m]", 5 * MIN).value
    (series,) = matrix.series  # type: ignore[union-attr]
    assert list(series.ts[series.starts[0] : series.ends[0]]) == [3 * MIN, 4 * MIN, 5 * MIN]


def test_without_removes_the_listed_labels_and_the_name() -> None:
    engine = engine_with(
        ({"__name__": "m", "a": "1", "b": "x"}, [1.0]),
        ({"__name__": "m", "a": "2", "b": "x"}, [2.0]),
        ({"__name__": "m", "a": "2", "b": "y"}, [4.0]),
    )
    assert instant(engine.instant("sum without (a) (m)", 0)) == {
        (("b", "x"),): 3.0,
        (("b", "y"),): 4.0,
    }
    assert instant(engine.instant("sum by (__name__) (m)", 0)) == {(("__name__", "m"),): 7.0}
    assert instant(engine.instant("count(m)", 0)) == {(): 3.0}


def test_aggregations() -> None:
    engine = engine_with(*[({"__name__": "m", "i": str(i)}, [float(i)]) for i in range(1, 5)])
    assert instant(engine.instant("avg(m)", 0)) == {(): 2.5}
    assert instant(engine.instant("stdvar(m)", 0)) == {(): 1.25}
    assert instant(engine.instant("quantile(0.5, m)", 0)) == {(): 2.5}
    assert instant(engine.instant("max(m) - min(m)", 0)) == {(): 3.0}
    top = engine.instant("topk(2, m)", 0).value
    assert [s.labels[1][1] for s in top.series] == ["4", "3"]  # type: ignore[union-attr]
    assert instant(engine.instant('count_values("v", m)', 0))[(("v", "2"),)] == 1.0


def test_sum_is_compensated() -> None:
    engine = engine_with(
        ({"__name__": "m", "i": "1"}, [1.0]),
        ({"__name__": "m", "i": "2"}, [1e100]),
        ({"__name__": "m", "i": "3"}, [1.0]),
        ({"__name__": "m", "i": "4"}, [-1e100]),
    )
    assert instant(engine.instant("sum(m)", 0)) == {(): 2.0}


def test_arithmetic_drops_the_name_and_filters_keep_it() -> None:
    engine = engine_with(({"__name__": "m", "a": "1"}, [3.0]))
    assert instant(engine.instant("m * 2", 0)) == {(("a", "1"),): 6.0}
    assert instant(engine.instant("m > 1", 0)) == {(("__name__", "m"), ("a", "1")): 3.0}
    assert instant(engine.instant("m > bool 5", 0)) == {(("a", "1"),): 0.0}
    assert instant(engine.instant("1 < m", 0)) == {(("__name__", "m"), ("a", "1")): 3.0}
    assert instant(engine.instant("-m", 0)) == {(("a", "1"),): -3.0}


def test_vector_matching_and_group_left() -> None:
    engine = engine_with(
        ({"__name__": "req", "job": "a", "code": "200"}, [10.0]),
        ({"__name__": "req", "job": "a", "code": "500"}, [2.0]),
        ({"__name__": "cap", "job": "a", "team": "t"}, [5.0]),
    )
    assert instant(engine.instant("req / on(job) group_left(team) cap", 0)) == {
        (("code", "200"), ("job", "a"), ("team", "t")): 2.0,
        (("code", "500"), ("job", "a"), ("team", "t")): 0.4,
    }
    with pytest.raises(EvalError, match="many-to-one matching must be explicit"):
        engine.instant("req / on(job) cap", 0)
    with pytest.raises(EvalError, match="found duplicate series for the match group"):
        engine.instant("cap / on(job) req", 0)


def test_set_operators_per_step() -> None:
    engine = engine_with(
        ({"__name__": "a", "x": "1"}, [1.0, 1.0]),
        ({"__name__": "b", "x": "1"}, [None, 2.0]),
        ({"__name__": "b", "x": "2"}, [3.0, None]),
    )
    result = engine.range("a and b", 0, MIN, MIN)
    assert [list(ts) for _, ts, _ in result.points()] == [[MIN]]
    assert instant(engine.instant("a unless b", 0)) == {(("__name__", "a"), ("x", "1")): 1.0}
    assert set(instant(engine.instant("a or b", 0))) == {
        (("__name__", "a"), ("x", "1")),
        (("__name__", "b"), ("x", "2")),
    }


def test_delayed_name_removal_merges_disjoint_series_and_rejects_overlaps() -> None:
    engine = engine_with(
        ({"__name__": "a", "x": "1"}, [1.0, stale_nan()]),
        ({"__name__": "b", "x": "1"}, [None, 2.0]),
    )
    result = engine.range("-{x='1'}", 0, MIN, MIN)
    ((labels, _ts, values),) = result.points()
    assert labels == (("x", "1"),)
    assert list(values) == [-1.0, -2.0]
    both = engine_with(({"__name__": "a", "x": "1"}, [1.0]), ({"__name__": "b", "x": "1"}, [2.0]))
    with pytest.raises(EvalError, match="same labelset"):
        both.instant("-{x='1'}", 0)


def test_range_query_is_computed_for_every_step() -> None:
    engine = engine_with(({"__name__": "m"}, [0.0, 10.0, 20.0]))
    result = engine.range("m * 2", 0, 8 * MIN, MIN)
    ((_, ts, values),) = result.points()
    # The last sample (at 2m) stays visible for 5 minutes: steps 2m..6m.
    assert list(ts) == [i * MIN for i in range(7)]
    assert np.array_equal(values, [0.0, 20.0, 40.0, 40.0, 40.0, 40.0, 40.0])


def test_unknown_functions_are_unsupported() -> None:
    engine = engine_with(({"__name__": "m"}, [1.0]))
    with pytest.raises(UnsupportedError):
        engine.instant("abs(m)", 0)


def test_avg_switches_to_an_incremental_mean_when_the_sum_would_overflow() -> None:
    big = 9.988465674311579e307
    engine = engine_with(
        *[({"__name__": "m", "i": str(i)}, [v]) for i, v in enumerate([-big, -big, big, big])]
    )
    assert instant(engine.instant("avg(m)", 0)) == {(): 0.0}
    small = engine_with(*[({"__name__": "m", "i": str(i)}, [v]) for i, v in enumerate([2.0, 8.0])])
    assert instant(small.instant("avg(m)", 0)) == {(): 5.0}


def test_a_subquery_grid_past_the_limit_is_refused_before_it_is_built() -> None:
    source = MemorySeries()
    source.add({"__name__": "m"}, [0], [1.0])
    engine = Engine(source, functions={}, max_subquery_steps=1_000)
    assert len(engine.instant("m[1000s:1s]", 1_000_000).value.series) == 1  # 1,000 steps
    with pytest.raises(EvalError, match="1001 steps; the limit is 1000"):
        engine.instant("m[1001s:1s]", 1_000_000)
