"""Instant-vector and scalar functions: math, clamp, round, dates, time, scalar/vector, sort,
labels and absent.

Input: the evaluated arguments over the whole step grid (values.py). Output: a Vector or Scalar
over the same grid. Element-wise functions are plain numpy expressions on each series' values;
Go's ``math.Min``/``math.Max`` rules (an infinity beats NaN) are spelled out where numpy differs.
Semantics follow ``promql/functions.go``.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Callable, Sequence

import numpy as np

from server.promql import plan
from server.promql.errors import EvalError
from server.promql.values import (
    NAME,
    BoolArray,
    FloatArray,
    IntArray,
    Labels,
    Scalar,
    Vector,
    VectorSeries,
    get_label,
    with_label,
)

FloatFunc = Callable[[FloatArray], FloatArray]


def go_min(a: FloatArray, b: FloatArray) -> FloatArray:
    """Go's ``math.Min``: -Inf wins over NaN, otherwise NaN propagates."""
    result: FloatArray = np.where((a == -np.inf) | (b == -np.inf), -np.inf, np.minimum(a, b))
    return result


def go_max(a: FloatArray, b: FloatArray) -> FloatArray:
    """Go's ``math.Max``: +Inf wins over NaN, otherwise NaN propagates."""
    result: FloatArray = np.where((a == np.inf) | (b == np.inf), np.inf, np.maximum(a, b))
    return result


def map_values(vector: Vector, fn: FloatFunc) -> Vector:
    """Returns: ``vector`` with ``fn`` applied to every value (absent steps stay absent)."""
    with np.errstate(all="ignore"):
        return Vector(
            [VectorSeries(s.labels, fn(s.values), s.present, s.drop_name) for s in vector.series]
        )


def _sgn(v: FloatArray) -> FloatArray:
    result: FloatArray = np.where(v < 0, -1.0, np.where(v > 0, 1.0, v))
    return result


MATH: dict[str, FloatFunc] = {
    "abs": np.abs,
    "ceil": np.ceil,
    "floor": np.floor,
    "exp": np.exp,
    "sqrt": np.sqrt,
    "ln": np.log,
    "log2": np.log2,
    "log10": np.log10,
    "sin": np.sin,
    "cos": np.cos,
    "tan": np.tan,
    "asin": np.arcsin,
    "acos": np.arccos,
    "atan": np.arctan,
    "sinh": np.sinh,
    "cosh": np.cosh,
    "tanh": np.tanh,
    "asinh": np.arcsinh,
    "acosh": np.arccosh,
    "atanh": np.arctanh,
    "deg": lambda v: v * 180 / math.pi,
    "rad": lambda v: v * math.pi / 180,
    "sgn": _sgn,
}


def clamp(vector: Vector, low: FloatArray, high: FloatArray) -> Vector:
    """``Max(low, Min(high, v))`` per step; a step where ``high < low`` has no output."""
    valid = ~(high < low)
    with np.errstate(all="ignore"):
        return Vector(
            [
                VectorSeries(
                    s.labels, go_max(low, go_min(high, s.values)), s.present & valid, s.drop_name
                )
                for s in vector.series
            ]
        )


def round_to(vector: Vector, to_nearest: FloatArray) -> Vector:
    """``floor(v / to + 0.5) * to`` computed with the inverse as Prometheus does: halves go up."""
    with np.errstate(all="ignore"):
        inverse = 1.0 / to_nearest
    return map_values(vector, lambda v: np.floor(v * inverse + 0.5) / inverse)


# --- time and dates -------------------------------------------------------------------------------


def _civil(seconds: IntArray) -> tuple[IntArray, IntArray, IntArray, IntArray]:
    """Returns: (year, month 1-12, day 1-31, day of year 1-366) of Unix seconds, UTC
    (proleptic Gregorian, days counted with floor division as Go's ``time.Unix`` does)."""
    days = np.floor_divide(seconds, 86_400)
    z = days + 719_468
    era = np.floor_divide(z, 146_097)
    doe = z - era * 146_097
    yoe = (doe - doe // 1460 + doe // 36_524 - doe // 146_096) // 365
    doy_march = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy_march + 2) // 153
    day = doy_march - (153 * mp + 2) // 5 + 1
    month = np.where(mp < 10, mp + 3, mp - 9)
    year = yoe + era * 400 + (month <= 2)
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    before = np.array([0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334])[month - 1]
    day_of_year = before + day + (leap & (month > 2))
    return year, month, day, day_of_year


def _days_in_month(year: IntArray, month: IntArray) -> IntArray:
    leap = ((year % 4 == 0) & (year % 100 != 0)) | (year % 400 == 0)
    lengths = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[month - 1]
    result: IntArray = lengths + (leap & (month == 2))
    return result


def date_part(name: str, seconds: FloatArray) -> FloatArray:
    """Returns: the named calendar field of Unix seconds (truncated toward zero, as Go's
    ``int64(v)``); NaN and infinities give NaN (Go's conversion is undefined for them)."""
    finite = np.isfinite(seconds) & (np.abs(seconds) < 2**62)
    whole = np.trunc(np.where(finite, seconds, 0)).astype(np.int64)
    year, month, day, day_of_year = _civil(whole)
    secs_of_day = whole - np.floor_divide(whole, 86_400) * 86_400
    fields: dict[str, IntArray] = {
        "year": year,
        "month": month,
        "day_of_month": day,
        "day_of_year": day_of_year,
        "day_of_week": (np.floor_divide(whole, 86_400) + 4) % 7,
        "hour": secs_of_day // 3600,
        "minute": (secs_of_day // 60) % 60,
        "days_in_month": _days_in_month(year, month),
    }
    result: FloatArray = np.where(finite, fields[name].astype(np.float64), np.nan)
    return result


DATE_FUNCTIONS = (
    "day_of_month",
    "day_of_week",
    "day_of_year",
    "days_in_month",
    "hour",
    "minute",
    "month",
    "year",
)


def date_function(name: str, steps_ms: IntArray, vector: Vector | None) -> Vector:
    """A date function of each value, or of the step time (``{}`` labels) without an argument."""
    if vector is None:
        present = np.ones(len(steps_ms), dtype=bool)
        seconds = np.floor_divide(steps_ms, 1000).astype(np.float64)
        return Vector([VectorSeries((), date_part(name, seconds), present)])
    return map_values(vector, lambda v: date_part(name, v))


def timestamp(vector: Vector, steps_ms: IntArray) -> Vector:
    """The sample's own time for a plain selector's samples, else the step time, in seconds."""
    out = []
    for s in vector.series:
        ts = s.sample_ts if s.sample_ts is not None else steps_ms
        out.append(VectorSeries(s.labels, ts / 1000.0, s.present, s.drop_name))
    return Vector(out)


def scalar_of(vector: Vector, num_steps: int) -> Scalar:
    """Per step: the value if exactly one series is present, else NaN."""
    count = np.zeros(num_steps, dtype=np.int64)
    value = np.full(num_steps, np.nan)
    for s in vector.series:
        count += s.present
        value = np.where(s.present, s.values, value)
    return Scalar(np.where(count == 1, value, np.nan))


def vector_of(scalar: Scalar) -> Vector:
    return Vector([VectorSeries((), scalar.values.copy(), np.ones(len(scalar.values), bool))])


# --- sorting (meaningful for instant queries only) ----------------------------------------------


def _first_value(s: VectorSeries) -> float:
    return float(s.values[np.argmax(s.present)]) if s.present.any() else math.nan


def sort_by_value(vector: Vector, descending: bool) -> Vector:
    """Orders series by their value at the (single) step, NaN last either way."""
    numbers = [s for s in vector.series if not math.isnan(_first_value(s))]
    nans = [s for s in vector.series if math.isnan(_first_value(s))]
    numbers.sort(key=_first_value, reverse=descending)
    return Vector(numbers + nans)


_CHUNKS = re.compile(r"\d+|\D+")


def natural_less(a: str, b: str) -> bool:
    """Natural order (facette/natsort, as Prometheus uses): chunks of digits compare as numbers
    when both are digits, other chunks as strings; an equal prefix that ends first is less."""
    chunks_a: list[str] = _CHUNKS.findall(a)
    chunks_b: list[str] = _CHUNKS.findall(b)
    for i, chunk_a in enumerate(chunks_a):
        if i >= len(chunks_b):
            return False
        chunk_b = chunks_b[i]
        if chunk_a.isdigit() and chunk_b.isdigit():
            if int(chunk_a) != int(chunk_b):
                return int(chunk_a) < int(chunk_b)
        elif chunk_a != chunk_b:
            return chunk_a < chunk_b
        if i == len(chunks_a) - 1:
            return True
        if i == len(chunks_b) - 1:
            return False
    return False


def sort_by_label(vector: Vector, names: Sequence[str], descending: bool) -> Vector:
    """Orders by each named label's value in natural order, then by the whole label set."""

    def compare(a: VectorSeries, b: VectorSeries) -> int:
        for name in names:
            va, vb = get_label(a.labels, name), get_label(b.labels, name)
            if va != vb:
                return -1 if natural_less(va, vb) else 1
        return (a.labels > b.labels) - (a.labels < b.labels)

    ordered = sorted(vector.series, key=functools.cmp_to_key(compare), reverse=descending)
    return Vector(ordered)


# --- labels -------------------------------------------------------------------------------------

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_GROUP_REF = re.compile(r"\$(?:\{([^}]*)\}|([a-zA-Z0-9_]+)|(\$))")


def valid_label_name(name: str) -> bool:
    """Prometheus 3 accepts any non-empty UTF-8 name."""
    return name != "" and name.isprintable() and "\ufffd" not in name


def expand_template(template: str, match: re.Match[str]) -> str:
    """Go's ``Regexp.ExpandString``: ``$1``, ``${1}``, ``$name``; the longest name wins (``$1x``
    is group "1x"), unknown groups are empty, ``$$`` is ``$``."""

    def group(ref: re.Match[str]) -> str:
        if ref.group(3):
            return "$"
        name = ref.group(1) if ref.group(1) is not None else ref.group(2)
        if name.isdigit():
            index = int(name)
            return (match.group(index) or "") if index <= (match.re.groups) else ""
        try:
            return match.group(name) or ""
        except IndexError:
            return ""

    return _GROUP_REF.sub(group, template)


def merge_same_labels(series: list[VectorSeries]) -> Vector:
    """Series that end up with equal labels merge where they never share a step.

    Raises: EvalError "vector cannot contain metrics with the same labelset" otherwise.
    """
    merged: dict[Labels, VectorSeries] = {}
    for s in series:
        previous = merged.get(s.labels)
        if previous is None:
            merged[s.labels] = s
            continue
        if (previous.present & s.present).any():
            raise EvalError("vector cannot contain metrics with the same labelset")
        values = np.where(previous.present, previous.values, s.values)
        merged[s.labels] = VectorSeries(
            s.labels, values, previous.present | s.present, previous.drop_name or s.drop_name
        )
    return Vector(list(merged.values()))


def label_replace(vector: Vector, dst: str, replacement: str, src: str, regex: str) -> Vector:
    """Sets ``dst`` to the expanded ``replacement`` where ``regex`` fully matches ``src``."""
    try:
        pattern = re.compile(regex, re.DOTALL)
    except re.error as exc:
        raise EvalError(f"invalid regular expression in label_replace(): {regex}") from exc
    if not valid_label_name(dst):
        raise EvalError(f"invalid destination label name in label_replace(): {dst}")
    out = []
    for s in vector.series:
        match = pattern.fullmatch(get_label(s.labels, src))
        if match is None:
            out.append(s)
            continue
        labels = with_label(s.labels, dst, expand_template(replacement, match))
        drop = False if dst == NAME else s.drop_name
        out.append(VectorSeries(labels, s.values, s.present, drop, s.sample_ts))
    return merge_same_labels(out)


def label_join(vector: Vector, dst: str, separator: str, sources: Sequence[str]) -> Vector:
    """Sets ``dst`` to the source labels' values joined by ``separator``."""
    for name in sources:
        if not valid_label_name(name):
            raise EvalError(f"invalid source label name in label_join(): {name}")
    if not valid_label_name(dst):
        raise EvalError(f"invalid destination label name in label_join(): {dst}")
    out = []
    for s in vector.series:
        joined = separator.join(get_label(s.labels, name) for name in sources)
        drop = False if dst == NAME else s.drop_name
        out.append(
            VectorSeries(with_label(s.labels, dst, joined), s.values, s.present, drop, s.sample_ts)
        )
    return merge_same_labels(out)


# --- absent -------------------------------------------------------------------------------------


def absent_labels(expr: plan.Expr) -> Labels:
    """Labels ``absent`` reports: each label pinned by exactly one ``=`` matcher of a selector
    argument (a second matcher on that label removes it); ``{}`` for any other argument."""
    if isinstance(expr, plan.MatrixSelector):
        expr = expr.selector
    if not isinstance(expr, plan.VectorSelector):
        return ()
    labels: dict[str, str] = {}
    seen: set[str] = set()
    for m in expr.matchers:
        if m.name == NAME:
            continue
        if m.op is plan.MatchOp.EQUAL and m.name not in seen:
            if m.value != "":
                labels[m.name] = m.value
            seen.add(m.name)
        else:
            labels.pop(m.name, None)
    return tuple(sorted(labels.items()))


def absent_vector(labels: Labels, missing: BoolArray) -> Vector:
    """Returns: ``labels`` with value 1 at the steps in ``missing`` (nothing if none)."""
    if not missing.any():
        return Vector([])
    return Vector([VectorSeries(labels, np.ones(len(missing)), missing.copy())])


def any_present(vector: Vector, num_steps: int) -> BoolArray:
    result = np.zeros(num_steps, dtype=bool)
    for s in vector.series:
        result |= s.present
    return result
