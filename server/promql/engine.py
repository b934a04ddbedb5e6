"""The evaluator: a plan (or PromQL text) and a step grid in, values over the whole grid out.

Each node is evaluated once for all steps of a query (values.py). Selectors read raw samples
through ``SeriesSource`` and resolve, per step, the 5-minute lookback ``(t - δ, t]`` (a stale
newest sample hides the series), ``offset`` and ``@``; range selectors and subqueries produce
windows ``(t - range, t]``; functions come from the function table (registry.py). At the end the
delayed ``__name__`` removal runs and series left with equal labels merge (an overlap is an error).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace

import numpy as np

from server.promql import aggregations, binary, plan
from server.promql.errors import EvalError, ParseError, UnsupportedError
from server.promql.histograms import (
    Policy,
    aggregation_policy,
    function_policy,
    has_histograms,
    operand_policies,
    reattach,
    resolve,
)
from server.promql.parse import parse
from server.promql.registry import Annotations, EvalContext, FunctionSpec, default_functions
from server.promql.seam import RawSeries, SeriesSource, rollup_answer
from server.promql.values import (
    NAME,
    IntArray,
    Matrix,
    MatrixSeries,
    Scalar,
    String,
    Value,
    Vector,
    VectorSeries,
    is_stale,
    without_labels,
)

DEFAULT_LOOKBACK_MS = 300_000
DEFAULT_SUBQUERY_STEP_MS = 60_000
DEFAULT_MAX_SUBQUERY_STEPS = 1_000_000


@dataclass(frozen=True)
class Result:
    """A query's answer: ``value`` covers ``steps_ms`` (one step for an instant query).

    Instant queries give a Vector, Scalar, String or Matrix; range queries a Vector or Scalar
    (``points`` turns either into the sorted matrix the API returns).
    """

    value: Value
    steps_ms: IntArray
    annotations: Annotations

    def points(self) -> list[tuple[tuple[tuple[str, str], ...], IntArray, np.ndarray]]:
        """Returns: (labels, timestamps ms, values) per series, sorted by labels, gaps omitted."""
        value = self.value
        if isinstance(value, Scalar):
            return [((), self.steps_ms, value.values)]
        if not isinstance(value, Vector):
            raise TypeError("points() needs a vector or scalar result")
        rows = [(s.labels, self.steps_ms[s.present], s.values[s.present]) for s in value.series]
        return sorted((r for r in rows if len(r[1])), key=lambda r: r[0])


class Engine:
    """Evaluates PromQL over a ``SeriesSource`` with Prometheus' semantics for float samples."""

    def __init__(
        self,
        source: SeriesSource,
        lookback_ms: int = DEFAULT_LOOKBACK_MS,
        subquery_step_ms: int = DEFAULT_SUBQUERY_STEP_MS,
        functions: Mapping[str, FunctionSpec] | None = None,
        max_subquery_steps: int = DEFAULT_MAX_SUBQUERY_STEPS,
    ) -> None:
        """Args:
        max_subquery_steps: the longest step grid a subquery may ask for; its inner expression
            is evaluated over the whole grid at once, so ``x[1y:1ms]`` would exhaust memory.
        """
        self._source = source
        self._lookback_ms = lookback_ms
        self._subquery_step_ms = subquery_step_ms
        self._max_subquery_steps = max_subquery_steps
        self._functions = default_functions() if functions is None else functions

    def instant(self, expr: plan.Expr | str, t_ms: int) -> Result:
        """Evaluates ``expr`` at ``t_ms``."""
        node = parse(expr) if isinstance(expr, str) else expr
        return self._run(node, t_ms, t_ms, 0)

    def range(self, expr: plan.Expr | str, start_ms: int, end_ms: int, step_ms: int) -> Result:
        """Evaluates ``expr`` at ``start_ms, start_ms + step_ms, ... <= end_ms``."""
        node = parse(expr) if isinstance(expr, str) else expr
        if node.type not in (plan.ValueType.SCALAR, plan.ValueType.VECTOR):
            raise ParseError(
                f'invalid expression type "{_type_name(node.type)}" for range query, '
                "must be Scalar or instant Vector"
            )
        if step_ms <= 0 or end_ms < start_ms:
            raise ParseError("range query needs step > 0 and end >= start")
        return self._run(node, start_ms, end_ms, step_ms)

    def _run(self, node: plan.Expr, start_ms: int, end_ms: int, step_ms: int) -> Result:
        steps = (
            np.array([start_ms], dtype=np.int64)
            if step_ms == 0
            else np.arange(start_ms, end_ms + 1, step_ms, dtype=np.int64)
        )
        ctx = EvalContext(steps, start_ms, end_ms, step_ms, self._lookback_ms, Annotations())
        value = resolve(self._eval(node, ctx), Policy.REFUSE, "in the result")
        if isinstance(value, Vector):
            value = finish_names(value)
        elif isinstance(value, Matrix):
            value = _finish_matrix_names(value)
        return Result(value, steps, ctx.annotations)

    # --- dispatch -------------------------------------------------------------------------

    def _eval(self, node: plan.Expr, ctx: EvalContext) -> Value:  # noqa: PLR0911
        if isinstance(node, plan.NumberLiteral):
            return Scalar(np.full(ctx.num_steps, node.value))
        if isinstance(node, plan.StringLiteral):
            return String(node.value)
        if isinstance(node, plan.VectorSelector):
            return self._vector_selector(node, ctx)
        if isinstance(node, plan.MatrixSelector):
            return self._matrix_selector(node, ctx)
        if isinstance(node, plan.Subquery):
            return self._subquery(node, ctx)
        if isinstance(node, plan.Call):
            return self._call(node, ctx)
        if isinstance(node, plan.Aggregate):
            return self._aggregate(node, ctx)
        if isinstance(node, plan.Binary):
            return self._binary(node, ctx)
        if isinstance(node, plan.Unary):
            return self._unary(node, ctx)
        raise UnsupportedError(f"unsupported plan node {type(node).__name__}")

    # --- selectors ------------------------------------------------------------------------

    def _refs(self, at: plan.At | None, offset_ms: int, ctx: EvalContext) -> IntArray:
        """Returns: per step, the time a selector reads at (``@`` and offset applied)."""
        if at is None:
            return ctx.steps_ms - offset_ms
        pinned = ctx.start_ms if at is plan.AtEdge.START else ctx.end_ms
        if isinstance(at, int):
            pinned = at
        return np.full(ctx.num_steps, pinned - offset_ms, dtype=np.int64)

    def _vector_selector(self, node: plan.VectorSelector, ctx: EvalContext) -> Vector:
        refs = self._refs(node.at, node.offset_ms, ctx)
        lookback = ctx.lookback_ms
        raw = self._source.select(node.matchers, int(refs.min()) - lookback + 1, int(refs.max()))
        if raw and all(series.histogram is None for series in raw):
            return Vector(_latest_samples(raw, refs, lookback))
        out = []
        for series in raw:
            idx = np.searchsorted(series.ts, refs, side="right") - 1
            found = idx >= 0
            safe = np.where(found, idx, 0)
            ts = series.ts[safe]
            values = series.values[safe]
            present = found & (ts > refs - lookback) & ~is_stale(values)
            if present.any():
                hist = None if series.histogram is None else series.histogram[safe] & present
                out.append(VectorSeries(series.labels, values, present, False, ts, hist))
        return Vector(out)

    def _matrix_selector(self, node: plan.MatrixSelector, ctx: EvalContext) -> Matrix:
        sel = node.selector
        refs = self._refs(sel.at, sel.offset_ms, ctx)
        raw = self._source.select(
            sel.matchers, int(refs.min()) - node.range_ms + 1, int(refs.max())
        )
        out: list[MatrixSeries] = []
        for series in raw:
            keep = ~is_stale(series.values)
            hist = None if series.histogram is None else series.histogram[keep]
            windows = _windows(series.labels, series.ts[keep], series.values[keep], refs, node)
            out.extend(replace(w, histogram=hist) for w in windows)
        return Matrix(out, node.range_ms, refs)

    def _subquery(self, node: plan.Subquery, ctx: EvalContext) -> Matrix:
        refs = self._refs(node.at, node.offset_ms, ctx)
        step = node.step_ms or self._subquery_step_ms
        first = int(refs.min()) - node.range_ms
        start = step * (first // step)
        if start <= first:
            start += step
        count = (int(refs.max()) - start) // step + 1
        if count > self._max_subquery_steps:
            raise EvalError(
                f"a subquery's range and step ask for {count} steps; the limit is "
                f"{self._max_subquery_steps} (use a larger subquery step)"
            )
        inner_steps = np.arange(start, int(refs.max()) + 1, step, dtype=np.int64)
        inner_ctx = EvalContext(
            inner_steps, ctx.start_ms, ctx.end_ms, ctx.step_ms, ctx.lookback_ms, ctx.annotations
        )
        if len(inner_steps) == 0:
            return Matrix([], node.range_ms, refs)
        inner = resolve(self._eval(node.expr, inner_ctx), Policy.REFUSE, "in a subquery")
        if isinstance(inner, Scalar):
            inner = Vector([VectorSeries((), inner.values, np.ones(len(inner_steps), bool))])
        if not isinstance(inner, Vector):
            raise ParseError("subquery is only allowed on instant vector or scalar")
        out = []
        for s in inner.series:
            windows = _windows(
                s.labels, inner_steps[s.present], s.values[s.present], refs, node, s.drop_name
            )
            out.extend(windows)
        return Matrix(out, node.range_ms, refs)

    # --- calls, aggregations, operators -----------------------------------------------------

    def _call(self, node: plan.Call, ctx: EvalContext) -> Value:
        spec = self._functions.get(node.name)
        if spec is None:
            raise UnsupportedError(f"function {node.name!r} is not supported")
        policy = function_policy(node.name)
        exact = rollup_answer(self._source, node, lambda at, off: self._refs(at, off, ctx))
        if exact is not None:  # answered exactly from the source's rollups
            result: Value = exact
        else:
            args = [resolve(self._eval(arg, ctx), policy, node.name) for arg in node.args]
            result = spec.impl(ctx, node, args)
        if spec.drops_name and isinstance(result, Vector):
            result = Vector(
                [
                    VectorSeries(s.labels, s.values, s.present, True, s.sample_ts)
                    for s in result.series
                ]
            )
        return result

    def _aggregate(self, node: plan.Aggregate, ctx: EvalContext) -> Vector:
        marked = self._eval(node.expr, ctx)
        vector = resolve(marked, aggregation_policy(node.op), node.op)
        if not isinstance(vector, Vector):
            raise ParseError(f"expected type instant vector in aggregation {node.op}")
        param: Scalar | String | None = None
        if node.param is not None:
            value = self._eval(node.param, ctx)
            if not isinstance(value, Scalar | String):
                raise ParseError(f"expected a scalar or string parameter in {node.op}")
            param = value
        result = aggregations.aggregate(ctx, node.op, vector, param, node.grouping, node.without)
        if aggregation_policy(node.op) is Policy.KEEP and has_histograms(marked):
            assert isinstance(marked, Vector)
            return reattach(result, marked)
        return result

    def _binary(self, node: plan.Binary, ctx: EvalContext) -> Value:
        what = f"operator {node.op}"
        marked, rhs = self._eval(node.lhs, ctx), self._eval(node.rhs, ctx)
        lhs_policy, rhs_policy = operand_policies(node.op, marked, rhs)
        lhs, rhs = resolve(marked, lhs_policy, what), resolve(rhs, rhs_policy, what)
        # and/unless pass left samples through and only look at which right series have one.
        if lhs_policy is Policy.KEEP and isinstance(lhs, Vector) and isinstance(rhs, Vector):
            matching = node.matching or plan.VectorMatching()
            result = binary.set_operation(node.op, lhs, rhs, matching)
            return reattach(result, marked) if isinstance(marked, Vector) else result
        if isinstance(lhs, Scalar) and isinstance(rhs, Scalar):
            return binary.scalar_scalar(node.op, lhs, rhs)
        if isinstance(lhs, Vector) and isinstance(rhs, Scalar):
            return binary.vector_scalar(node.op, lhs, rhs, False, node.return_bool)
        if isinstance(lhs, Scalar) and isinstance(rhs, Vector):
            return binary.vector_scalar(node.op, rhs, lhs, True, node.return_bool)
        if isinstance(lhs, Vector) and isinstance(rhs, Vector):
            matching = node.matching or plan.VectorMatching()
            if node.op in plan.SET_OPS:
                return binary.set_operation(node.op, lhs, rhs, matching)
            return binary.vector_vector(node.op, lhs, rhs, matching, node.return_bool)
        raise ParseError("binary expression must contain only scalar and instant vector types")

    def _unary(self, node: plan.Unary, ctx: EvalContext) -> Value:
        value = self._eval(node.expr, ctx)
        if node.op == "+":
            return value
        value = resolve(value, Policy.REFUSE, "unary minus")
        if isinstance(value, Scalar):
            return Scalar(-value.values)
        if isinstance(value, Vector):
            return Vector(
                [VectorSeries(s.labels, -s.values, s.present, True) for s in value.series]
            )
        raise ParseError("unary expression only allowed on expressions of type scalar or vector")


_LATEST_CHUNK_CELLS = 1 << 20
"""Series x steps evaluated at once by ``_latest_samples`` (bounds its temporary arrays)."""


def _latest_samples(raw: list[RawSeries], refs: IntArray, lookback: int) -> list[VectorSeries]:
    """Returns: per float series, its newest sample at or before each ref within the lookback
    (stale markers end it), as ``_vector_selector``'s loop would, but with one search over
    all series: each series' times are shifted into a band of its own, so one sorted array
    holds them all and one ``searchsorted`` answers every (series, step)."""
    out: list[VectorSeries] = []
    chunk = max(1, _LATEST_CHUNK_CELLS // max(1, len(refs)))
    for first in range(0, len(raw), chunk):
        part = raw[first : first + chunk]
        lengths = np.fromiter((len(s.ts) for s in part), dtype=np.int64, count=len(part))
        if not lengths.any():
            continue
        starts = np.zeros(len(part), dtype=np.int64)
        np.cumsum(lengths[:-1], out=starts[1:])
        all_ts = np.concatenate([s.ts for s in part])
        all_values = np.concatenate([s.values for s in part])
        base = min(int(all_ts.min()), int(refs.min()))
        width = max(int(all_ts.max()), int(refs.max())) - base + 1
        bands = np.arange(len(part), dtype=np.int64) * width
        keys = all_ts - base + np.repeat(bands, lengths)
        wanted = (refs - base)[None, :] + bands[:, None]
        idx = np.searchsorted(keys, wanted, side="right") - 1
        found = idx >= starts[:, None]
        safe = np.where(found, idx, 0)
        ts = all_ts[safe]
        values = all_values[safe]
        present = found & (ts > refs[None, :] - lookback) & ~is_stale(values)
        for row in np.flatnonzero(present.any(axis=1)):
            out.append(VectorSeries(part[row].labels, values[row], present[row], False, ts[row]))
    return out


def _windows(
    labels: tuple[tuple[str, str], ...],
    ts: IntArray,
    values: np.ndarray,
    refs: IntArray,
    node: plan.MatrixSelector | plan.Subquery,
    drop_name: bool = False,
) -> list[MatrixSeries]:
    """Returns: the series with per-step windows ``(ref - range, ref]``, if any is non-empty."""
    starts = np.searchsorted(ts, refs - node.range_ms, side="right").astype(np.int64)
    ends = np.searchsorted(ts, refs, side="right").astype(np.int64)
    if not (ends > starts).any():
        return []
    return [MatrixSeries(labels, ts, values, starts, ends, drop_name)]


def _type_name(value_type: plan.ValueType) -> str:
    return {
        plan.ValueType.MATRIX: "range vector",
        plan.ValueType.VECTOR: "instant vector",
    }.get(value_type, value_type.value)


def finish_names(vector: Vector) -> Vector:
    """Delayed ``__name__`` removal; series whose labels then coincide merge, unless they overlap.

    Raises: EvalError "vector cannot contain metrics with the same labelset" on an overlap.
    """
    merged: dict[tuple[tuple[str, str], ...], VectorSeries] = {}
    order = []
    for s in vector.series:
        labels = without_labels(s.labels, (NAME,)) if s.drop_name else s.labels
        previous = merged.get(labels)
        if previous is None:
            merged[labels] = VectorSeries(labels, s.values, s.present, False, s.sample_ts)
            order.append(labels)
            continue
        if (previous.present & s.present).any():
            raise EvalError("vector cannot contain metrics with the same labelset")
        values = np.where(previous.present, previous.values, s.values)
        merged[labels] = VectorSeries(labels, values, previous.present | s.present)
    return Vector([merged[labels] for labels in order])


def _finish_matrix_names(matrix: Matrix) -> Matrix:
    seen = set()
    out = []
    for s in matrix.series:
        labels = without_labels(s.labels, (NAME,)) if s.drop_name else s.labels
        if labels in seen:
            raise EvalError("vector cannot contain metrics with the same labelset")
        seen.add(labels)
        out.append(MatrixSeries(labels, s.ts, s.values, s.starts, s.ends))
    return Matrix(out, matrix.range_ms, matrix.window_end_ms)
