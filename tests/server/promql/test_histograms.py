"""Native histogram samples through the engine: dropped, counted or refused as in Prometheus."""

from __future__ import annotations

import pytest

from server.promql.engine import Engine
from server.promql.errors import UnsupportedError
from server.promql.seam import MemorySeries
from server.promql.values import Vector


def _engine() -> Engine:
    source = MemorySeries()
    source.add({"__name__": "m", "k": "f"}, [0, 60_000], [-1.0, -2.0])
    # A float, then a histogram sample (its value is ignored).
    source.add({"__name__": "m", "k": "h"}, [0, 60_000], [-3.0, 0.0], [False, True])
    return Engine(source)


def _answer(engine: Engine, expr: str, t_ms: int = 60_000) -> dict[str, float]:
    value = engine.instant(expr, t_ms).value
    assert isinstance(value, Vector)
    return {dict(s.labels).get("k", ""): float(s.values[0]) for s in value.series if s.present[0]}


def test_float_functions_and_aggregations_drop_histogram_samples() -> None:
    engine = _engine()
    assert _answer(engine, "abs(m)") == {"f": 2.0}
    assert _answer(engine, "max(m)") == {"": -2.0}
    # The float sample at 0 is the only float in the window of the histogram series.
    assert _answer(engine, "min_over_time(m[2m])") == {"f": -2.0, "h": -3.0}


def test_presence_only_operations_count_histogram_samples() -> None:
    engine = _engine()
    assert _answer(engine, "count(m)") == {"": 2.0}
    assert _answer(engine, "count_over_time(m[2m])") == {"f": 2.0, "h": 2.0}
    assert _answer(engine, 'm{k="f"} and on() m{k="h"}') == {"f": -2.0}


@pytest.mark.parametrize("expr", ["m", "sum(m)", "m * 2", "rate(m[2m])", "-m", "m[2m]"])
def test_operations_that_would_need_a_histogram_are_refused(expr: str) -> None:
    with pytest.raises(UnsupportedError, match="native histograms"):
        _engine().instant(expr, 60_000)


def test_histogram_samples_outside_the_query_are_harmless() -> None:
    # At 0 the histogram series still holds a float, so even a plain selector answers.
    assert _answer(_engine(), "m", 0) == {"f": -1.0, "h": -3.0}


def test_limitk_and_and_pass_histogram_samples_on_to_the_next_consumer() -> None:
    engine = _engine()
    assert _answer(engine, "count(limitk(5, m))") == {"": 2.0}
    assert _answer(engine, "count(m and m)") == {"": 2.0}
    with pytest.raises(UnsupportedError, match="native histograms"):
        engine.instant("limitk(5, m)", 60_000)
    with pytest.raises(UnsupportedError, match="native histograms"):
        engine.instant("sum(m and m)", 60_000)


def test_a_histogram_paired_with_a_float_is_dropped_unless_it_would_be_scaled() -> None:
    engine = _engine()
    assert _answer(engine, "m > -10") == {"f": -2.0}
    assert _answer(engine, "m == bool -2") == {"f": 1.0}
    assert _answer(engine, "2 / m") == {"f": -1.0}
    for expr in ("m / 2", "2 * m", "m + m"):
        with pytest.raises(UnsupportedError, match="native histograms"):
            engine.instant(expr, 60_000)
