"""Native histogram samples: carried as opaque markers, never evaluated.

A source may mark samples as native histograms (``RawSeries.histogram``); selectors carry the
marks on the values they produce (``VectorSeries.histogram`` per step, ``MatrixSeries.histogram``
per sample). Every consumer then resolves them before it sees the value, with the policy
Prometheus 3 follows for that operation (promql/functions.go, promql/engine.go):

- ``DROP``: the operation processes float samples only and skips histograms (math and date
  functions, clamp*, round, scalar, sort*, min/max/stddev/stdvar/quantile/topk/bottomk, and the
  range functions deriv, predict_linear, min/max/stddev/stdvar/quantile/mad_over_time, ...);
- ``COUNT``: only a sample's presence and time matter (count, group, absent, timestamp,
  count/present/absent_over_time, the right side of ``and``/``unless``); the value becomes 0;
- a histogram paired with a float operand is dropped by every operator except ``*`` (and ``/``
  with the histogram on the left), which would scale it: ``operand_policies``;
- ``KEEP``: the operation passes some input samples through unchanged (limitk, limit_ratio, the
  left side of ``and``/``unless``): it runs on the samples with histograms counted, then
  ``reattach`` marks the histogram samples that came through, for the next consumer to resolve;
- ``REFUSE``: anything else, whose answer would be a histogram or need histogram arithmetic
  (sum, rate, arithmetic, comparisons, label_replace, the query's own result, ...): if a
  histogram sample is actually involved, UnsupportedError — never an answer without it.

The evaluator applies ``resolve`` to every argument, so functions, aggregations and operators
only ever see float samples.
"""

from __future__ import annotations

from enum import Enum

import numpy as np

from server.promql.errors import UnsupportedError
from server.promql.functions_instant import DATE_FUNCTIONS, MATH
from server.promql.values import Matrix, MatrixSeries, Scalar, Value, Vector, VectorSeries


class Policy(Enum):
    DROP = "drop"
    COUNT = "count"
    KEEP = "keep"
    REFUSE = "refuse"


_DROP_FUNCTIONS = frozenset(
    {*MATH, *DATE_FUNCTIONS, "clamp", "clamp_min", "clamp_max", "round", "scalar", "sort"}
    | {"sort_desc", "deriv", "predict_linear", "double_exponential_smoothing"}
    | {"min_over_time", "max_over_time", "stddev_over_time", "stdvar_over_time"}
    | {"quantile_over_time", "mad_over_time", "ts_of_min_over_time", "ts_of_max_over_time"}
)
_COUNT_FUNCTIONS = frozenset(
    {"absent", "timestamp", "count_over_time", "present_over_time", "absent_over_time"}
    | {"ts_of_first_over_time", "ts_of_last_over_time"}
)
_DROP_AGGREGATIONS = frozenset({"min", "max", "stddev", "stdvar", "quantile", "topk", "bottomk"})
_COUNT_AGGREGATIONS = frozenset({"count", "group"})
_KEEP_AGGREGATIONS = frozenset({"limitk", "limit_ratio"})


def function_policy(name: str) -> Policy:
    """Returns: how function ``name`` treats histogram samples in its vector/matrix argument."""
    if name in _DROP_FUNCTIONS:
        return Policy.DROP
    if name in _COUNT_FUNCTIONS:
        return Policy.COUNT
    return Policy.REFUSE


def aggregation_policy(op: str) -> Policy:
    """Returns: how aggregation ``op`` treats histogram samples."""
    if op in _DROP_AGGREGATIONS:
        return Policy.DROP
    if op in _COUNT_AGGREGATIONS:
        return Policy.COUNT
    if op in _KEEP_AGGREGATIONS:
        return Policy.KEEP
    return Policy.REFUSE


# Operators that drop a histogram sample paired with a float (engine.go: vectorElemBinop).
_DROPPED_WITH_FLOAT = frozenset({"+", "-", "%", "^", "atan2", "==", "!=", ">", "<", ">=", "<="})


def operand_policies(op: str, lhs: Value, rhs: Value) -> tuple[Policy, Policy]:
    """Returns: the policies for a binary operator's two operands. Only a scalar operand is
    surely a float; two vectors could pair histograms with histograms, so those are refused."""
    if op in ("and", "unless"):
        return Policy.KEEP, Policy.COUNT
    if isinstance(rhs, Scalar) and op in _DROPPED_WITH_FLOAT:
        return Policy.DROP, Policy.REFUSE
    if isinstance(lhs, Scalar) and (op in _DROPPED_WITH_FLOAT or op == "/"):
        return Policy.REFUSE, Policy.DROP
    return Policy.REFUSE, Policy.REFUSE


def has_histograms(value: Value) -> bool:
    """Returns: whether ``value`` carries histogram marks."""
    return isinstance(value, Vector | Matrix) and any(s.histogram is not None for s in value.series)


def reattach(result: Vector, source: Vector) -> Vector:
    """Returns: ``result`` (a subset of ``source``'s samples, same labels) with the histogram
    marks of the samples it kept from ``source``.

    Raises: UnsupportedError if ``source`` holds a label set twice (the marks would be ambiguous).
    """
    marks = {s.labels: s.histogram for s in source.series}
    if len(marks) != len(source.series):
        raise _refuse("a label set twice")
    out = []
    for s in result.series:
        mark = marks.get(s.labels)
        hist = None if mark is None else mark & s.present
        out.append(VectorSeries(s.labels, s.values, s.present, s.drop_name, s.sample_ts, hist))
    return Vector(out)


def resolve(value: Value, policy: Policy, what: str) -> Value:
    """Returns: ``value`` holding float samples only, histogram samples dropped or counted.

    Raises: UnsupportedError naming ``what`` when the policy is REFUSE and a histogram sample
    is present (at some step of a vector, inside some window of a matrix).
    """
    if isinstance(value, Vector) and any(s.histogram is not None for s in value.series):
        return Vector([s for s in (_vector_series(s, policy, what) for s in value.series) if s])
    if isinstance(value, Matrix) and any(s.histogram is not None for s in value.series):
        series = [_matrix_series(s, policy, what) for s in value.series]
        return Matrix(
            [s for s in series if s is not None and bool((s.ends > s.starts).any())],
            value.range_ms,
            value.window_end_ms,
        )
    return value


def _refuse(what: str) -> UnsupportedError:
    return UnsupportedError(f"native histograms are not supported ({what})")


def _vector_series(s: VectorSeries, policy: Policy, what: str) -> VectorSeries | None:
    if s.histogram is None:
        return s
    hist = s.histogram & s.present
    if not hist.any():
        return VectorSeries(s.labels, s.values, s.present, s.drop_name, s.sample_ts)
    if policy is Policy.REFUSE:
        raise _refuse(what)
    if policy is Policy.COUNT or policy is Policy.KEEP:
        values = np.where(hist, 0.0, s.values)
        return VectorSeries(s.labels, values, s.present, s.drop_name, s.sample_ts)
    present = s.present & ~hist
    if not present.any():
        return None
    return VectorSeries(s.labels, s.values, present, s.drop_name, s.sample_ts)


def _matrix_series(s: MatrixSeries, policy: Policy, what: str) -> MatrixSeries | None:
    if s.histogram is None:
        return s
    before = np.concatenate([[0], np.cumsum(s.histogram)])
    in_windows = (before[s.ends] - before[s.starts]) > 0
    if policy is Policy.REFUSE and in_windows.any():
        raise _refuse(what)
    if policy is not Policy.DROP or not in_windows.any():
        values = np.where(s.histogram, 0.0, s.values)
        return MatrixSeries(s.labels, s.ts, values, s.starts, s.ends, s.drop_name)
    keep = ~s.histogram
    kept_before = np.concatenate([[0], np.cumsum(keep)]).astype(np.int64)
    return MatrixSeries(
        s.labels,
        s.ts[keep],
        s.values[keep],
        kept_before[s.starts],
        kept_before[s.ends],
        s.drop_name,
    )
