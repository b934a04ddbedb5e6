"""Per-sample functions, labels, absent, sorting and histogram_quantile on hand-made vectors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from server.promql import functions_histogram as fh
from server.promql import functions_instant as fi
from server.promql import plan
from server.promql.errors import EvalError
from server.promql.functions import FUNCTIONS
from server.promql.values import Vector, VectorSeries


def vec(*rows: tuple[dict[str, str], float]) -> Vector:
    return Vector(
        [
            VectorSeries(tuple(sorted(labels.items())), np.array([value]), np.array([True]))
            for labels, value in rows
        ]
    )


def values(vector: Vector) -> list[float]:
    return [float(s.values[0]) for s in vector.series if s.present[0]]


def test_go_min_max_let_infinity_beat_nan() -> None:
    nan, inf = np.array([math.nan]), np.array([math.inf])
    assert fi.go_max(nan, inf).tolist() == [math.inf]
    assert fi.go_min(nan, -inf).tolist() == [-math.inf]
    assert math.isnan(fi.go_min(nan, inf)[0])


def test_clamp() -> None:
    v = vec(({"a": "1"}, -5.0), ({"a": "2"}, 5.0), ({"a": "3"}, math.nan))
    clamped = fi.clamp(v, np.array([-1.0]), np.array([1.0]))
    assert values(clamped)[:2] == [-1.0, 1.0]
    assert math.isnan(values(clamped)[2])
    assert values(fi.clamp(v, np.array([2.0]), np.array([1.0]))) == []  # max < min: nothing


def test_round_halves_go_up() -> None:
    v = vec(({"a": "1"}, -2.5), ({"a": "2"}, 2.5), ({"a": "3"}, 1.25))
    assert values(fi.round_to(v, np.array([1.0]))) == [-2.0, 3.0, 1.0]
    assert values(fi.round_to(v, np.array([0.1]))) == pytest.approx([-2.5, 2.5, 1.3])


def test_date_parts() -> None:
    # 2006-01-02 22:04:05 UTC, a Monday; 2016-02-29 is in a leap year.
    seconds = np.array([1136239445.9, 1456790399.0, -1.0])
    assert fi.date_part("year", seconds).tolist() == [2006, 2016, 1969]
    assert fi.date_part("month", seconds).tolist() == [1, 2, 12]
    assert fi.date_part("day_of_month", seconds).tolist() == [2, 29, 31]
    assert fi.date_part("day_of_week", seconds).tolist() == [1, 1, 3]
    assert fi.date_part("hour", seconds).tolist() == [22, 23, 23]
    assert fi.date_part("minute", seconds).tolist() == [4, 59, 59]
    assert fi.date_part("day_of_year", seconds).tolist() == [2, 60, 365]
    assert fi.date_part("days_in_month", seconds).tolist() == [31, 29, 31]
    assert math.isnan(fi.date_part("year", np.array([math.nan]))[0])


def test_label_replace_expands_like_go() -> None:
    v = vec(({"src": "source-value-10", "__name__": "m"}, 1.0))
    out = fi.label_replace(v, "dst", "$1-${2}x-$2x", "src", "source-(.*)-(.*)")
    assert dict(out.series[0].labels)["dst"] == "value-10x-"  # $2x is group "2x": empty
    untouched = fi.label_replace(v, "dst", "x", "src", "nomatch")
    assert untouched.series[0].labels == v.series[0].labels
    deleted = fi.label_replace(v, "src", "", "src", ".*")
    assert "src" not in dict(deleted.series[0].labels)
    with pytest.raises(EvalError, match="invalid regular expression"):
        fi.label_replace(v, "dst", "", "src", "(.*")


def test_label_functions_merge_or_refuse_equal_label_sets() -> None:
    v = vec(({"a": "1", "b": "x"}, 1.0), ({"a": "2", "b": "x"}, 2.0))
    with pytest.raises(EvalError, match="same labelset"):
        fi.label_replace(v, "a", "", "a", ".*")
    joined = fi.label_join(v, "j", "-", ["a", "b", "missing"])
    assert [dict(s.labels)["j"] for s in joined.series] == ["1-x-", "2-x-"]


def test_absent_labels_come_from_equality_matchers() -> None:
    sel = plan.VectorSelector(
        "x",
        (
            plan.Matcher("__name__", plan.MatchOp.EQUAL, "x"),
            plan.Matcher("job", plan.MatchOp.EQUAL, "a"),
            plan.Matcher("job", plan.MatchOp.EQUAL, "b"),
            plan.Matcher("env", plan.MatchOp.EQUAL, "prod"),
            plan.Matcher("dc", plan.MatchOp.RE, "eu.*"),
        ),
    )
    assert fi.absent_labels(sel) == (("env", "prod"),)
    assert fi.absent_labels(plan.NumberLiteral(1.0)) == ()


def test_sorting() -> None:
    v = vec(({"a": "1"}, 2.0), ({"a": "2"}, math.nan), ({"a": "3"}, 1.0))
    assert [dict(s.labels)["a"] for s in fi.sort_by_value(v, False).series] == ["3", "1", "2"]
    assert [dict(s.labels)["a"] for s in fi.sort_by_value(v, True).series] == ["1", "3", "2"]
    names = vec(({"n": "a10"}, 0.0), ({"n": "a9"}, 0.0), ({"n": "b"}, 0.0))
    ordered = fi.sort_by_label(names, ["n"], False)
    assert [dict(s.labels)["n"] for s in ordered.series] == ["a9", "a10", "b"]


def test_histogram_quantile() -> None:
    buckets = vec(
        ({"le": "0.1", "__name__": "h_bucket"}, 10.0),
        ({"le": "0.5", "__name__": "h_bucket"}, 30.0),
        ({"le": "+Inf", "__name__": "h_bucket"}, 40.0),
    )
    out = fh.histogram_quantile(np.array([0.5]), buckets)
    assert out.series[0].labels == (("__name__", "h_bucket"),)
    assert values(out) == [pytest.approx(0.1 + 0.4 * 10 / 20)]
    # A rank in the +Inf bucket answers the highest finite bound.
    assert values(fh.histogram_quantile(np.array([0.99]), buckets)) == [0.5]
    assert values(fh.histogram_quantile(np.array([-1.0]), buckets)) == [-math.inf]
    assert fh.bucket_quantile(0.5, [1.0, 2.0], [1.0, 2.0]) != fh.bucket_quantile(
        0.5, [1.0, math.inf], [1.0, 2.0]
    )
    assert math.isnan(fh.bucket_quantile(0.5, [1.0, 2.0], [1.0, 2.0]))  # no +Inf bucket
    # Non-monotonic counts are raised to the running maximum.
    assert fh.bucket_quantile(0.5, [1.0, 2.0, math.inf], [10.0, 5.0, 10.0]) == 0.5


def test_go_float_parsing_of_le() -> None:
    assert fh.go_parse_float("+Inf") == math.inf
    assert fh.go_parse_float("1e3") == 1000
    assert fh.go_parse_float("0x1p4") == 16
    assert fh.go_parse_float("1_000") is None
    assert fh.go_parse_float(" 1") is None


def test_table_follows_prometheus_signatures() -> None:
    assert FUNCTIONS["round"].variadic == 1
    assert FUNCTIONS["label_join"].variadic == -1
    assert not FUNCTIONS["last_over_time"].drops_name
    assert FUNCTIONS["rate"].drops_name
    assert FUNCTIONS["time"].at_unsafe and FUNCTIONS["predict_linear"].at_unsafe
    assert FUNCTIONS["mad_over_time"].experimental and not FUNCTIONS["rate"].experimental
    assert FUNCTIONS["histogram_quantile"].return_type is plan.ValueType.VECTOR
    assert FUNCTIONS["scalar"].return_type is plan.ValueType.SCALAR
