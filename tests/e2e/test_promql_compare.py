"""The differential test's answer comparison on hand-made answers: what counts as agreeing."""

from __future__ import annotations

import math
from typing import Any

from tests.e2e.promql_compare import close, differences, order_differences, series_count


def _vector(*items: tuple[dict[str, str], float, str]) -> dict[str, Any]:
    return {
        "resultType": "vector",
        "result": [{"metric": m, "value": [t, v]} for m, t, v in items],
    }


def _matrix(metric: dict[str, str], *points: tuple[float, str]) -> dict[str, Any]:
    return {
        "resultType": "matrix",
        "result": [{"metric": metric, "values": [[t, v] for t, v in points]}],
    }


def test_values_agree_within_the_relative_tolerance_and_nan_only_with_nan() -> None:
    assert close(1.0, 1.0 + 1e-10)
    assert not close(1.0, 1.0 + 1e-8)
    assert close(1e300, 1e300 * (1 + 5e-10))
    assert close(math.nan, math.nan)
    assert not close(math.nan, 0.0)
    assert not close(0.0, math.nan)
    assert close(math.inf, math.inf)
    assert not close(math.inf, -math.inf)
    assert not close(math.inf, 1e308)
    assert not close(0.0, 1e-300)  # zero agrees only with zero


def test_equal_answers_have_no_differences_in_any_order() -> None:
    a = _vector(({"a": "1"}, 10.0, "1"), ({"a": "2"}, 10.0, "NaN"))
    b = _vector(({"a": "2"}, 10.0, "NaN"), ({"a": "1"}, 10.0, "1.0000000000001"))
    assert differences(a, b) == []
    assert series_count(a) == 2


def test_series_only_on_one_side_are_named() -> None:
    a = _vector(({"a": "1"}, 10.0, "1"))
    b = _vector(({"a": "2"}, 10.0, "1"))
    assert differences(a, b) == ['only in dcmon: {"a": "1"}', 'only in Prometheus: {"a": "2"}']


def test_points_at_other_times_or_values_differ() -> None:
    times = differences(_matrix({}, (1.0, "1"), (2.0, "1")), _matrix({}, (1.0, "1")))
    assert times == ["{}: 2 vs 1 points; times only in dcmon [2.0], only in Prometheus []"]
    values = differences(_matrix({}, (1.0, "1"), (2.0, "3")), _matrix({}, (1.0, "1"), (2.0, "4")))
    assert values == ["{} at 2.000: 3.0 vs 4.0"]
    stale = differences(_vector(({}, 5.0, "1")), _vector(({}, 6.0, "1")))
    assert stale and "points" in stale[0]


def test_result_types_scalars_and_strings_are_compared() -> None:
    scalar = {"resultType": "scalar", "result": [5.0, "2"]}
    assert differences(scalar, {"resultType": "scalar", "result": [5.0, "2"]}) == []
    assert differences(scalar, {"resultType": "scalar", "result": [5.0, "3"]}) != []
    assert differences(scalar, _vector(({}, 5.0, "2"))) == ["result type scalar vs vector"]
    text = {"resultType": "string", "result": [5.0, "x"]}
    assert differences(text, {"resultType": "string", "result": [5.0, "y"]}) != []


def test_many_differences_are_cut_to_the_limit_with_a_count() -> None:
    a = _vector(*(({"i": str(i)}, 1.0, "1") for i in range(6)))
    out = differences(a, _vector(), limit=3)
    assert len(out) == 4 and out[-1] == "... 3 more"


def test_order_matters_only_where_asked() -> None:
    a = _vector(({"a": "1"}, 1.0, "1"), ({"a": "2"}, 1.0, "2"))
    b = _vector(({"a": "2"}, 1.0, "2"), ({"a": "1"}, 1.0, "1"))
    assert differences(a, b) == []
    assert order_differences(a, a) == []
    assert order_differences(a, b) != []
