"""The function table: every PromQL function by name, with its argument types and its code.

Input: the engine's evaluated arguments (registry.py describes the contract). Output: a Vector
or Scalar over the step grid. Argument types, optional arguments and the experimental flag
mirror Prometheus' ``promql/parser/functions.go``; the code lives in functions_range.py (window
functions), functions_instant.py (everything per sample) and functions_histogram.py. Functions
that only make sense for native histograms, or need data dcmon does not keep (start
timestamps, info metrics), raise UnsupportedError rather than answer wrongly.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from server.promql import functions_histogram as fh
from server.promql import functions_instant as fi
from server.promql import functions_range as fr
from server.promql.errors import EvalError, UnsupportedError
from server.promql.plan import Call, ValueType
from server.promql.registry import EvalContext, FunctionImpl, FunctionSpec
from server.promql.values import Matrix, Scalar, String, Value, Vector

S, V, M, STR = ValueType.SCALAR, ValueType.VECTOR, ValueType.MATRIX, ValueType.STRING


def _vector(args: list[Value], i: int) -> Vector:
    value = args[i]
    if not isinstance(value, Vector):
        raise EvalError(f"expected an instant vector as argument {i + 1}")
    return value


def _matrix(args: list[Value], i: int) -> Matrix:
    value = args[i]
    if not isinstance(value, Matrix):
        raise EvalError(f"expected a range vector as argument {i + 1}")
    return value


def _scalar(args: list[Value], i: int) -> np.ndarray:
    value = args[i]
    if not isinstance(value, Scalar):
        raise EvalError(f"expected a scalar as argument {i + 1}")
    return value.values


def _string(args: list[Value], i: int) -> str:
    value = args[i]
    if not isinstance(value, String):
        raise EvalError(f"expected a string as argument {i + 1}")
    return value.value


def _first_scalar(args: list[Value], i: int) -> float:
    """A parameter Prometheus reads once, at the first step (smoothing factors)."""
    return float(_scalar(args, i)[0])


def _on_matrix(fn: Callable[[Matrix], Vector]) -> FunctionImpl:
    return lambda ctx, call, args: fn(_matrix(args, 0))


def _on_vector(fn: fi.FloatFunc) -> FunctionImpl:
    return lambda ctx, call, args: fi.map_values(_vector(args, 0), fn)


def _unsupported(name: str, why: str) -> FunctionImpl:
    def impl(ctx: EvalContext, call: Call, args: list[Value]) -> Value:
        raise UnsupportedError(f"function {name}() is not supported: {why}")

    return impl


def _constant(fn: Callable[[EvalContext], float]) -> FunctionImpl:
    return lambda ctx, call, args: Scalar(np.full(ctx.num_steps, fn(ctx)))


def _date(name: str) -> FunctionImpl:
    def impl(ctx: EvalContext, call: Call, args: list[Value]) -> Value:
        vector = _vector(args, 0) if args else None
        return fi.date_function(name, ctx.steps_ms, vector)

    return impl


def _absent(ctx: EvalContext, call: Call, args: list[Value]) -> Value:
    missing = ~fi.any_present(_vector(args, 0), ctx.num_steps)
    return fi.absent_vector(fi.absent_labels(call.args[0]), missing)


def _absent_over_time(ctx: EvalContext, call: Call, args: list[Value]) -> Value:
    missing = fr.absent_over_time_mask(_matrix(args, 0))
    return fi.absent_vector(fi.absent_labels(call.args[0]), missing)


def _sort(descending: bool) -> FunctionImpl:
    return lambda ctx, call, args: fi.sort_by_value(_vector(args, 0), descending)


def _sort_by_label(descending: bool) -> FunctionImpl:
    def impl(ctx: EvalContext, call: Call, args: list[Value]) -> Value:
        names = [_string(args, i) for i in range(1, len(args))]
        return fi.sort_by_label(_vector(args, 0), names, descending)

    return impl


def _smoothing(ctx: EvalContext, call: Call, args: list[Value]) -> Value:
    sf, tf = _first_scalar(args, 1), _first_scalar(args, 2)
    if not 0 < sf < 1:
        raise EvalError(f"invalid smoothing factor. Expected: 0 < sf < 1, got: {sf:f}")
    if not 0 < tf < 1:
        raise EvalError(f"invalid trend factor. Expected: 0 < tf < 1, got: {tf:f}")
    return fr.double_exponential_smoothing(_matrix(args, 0), sf, tf)


def _scalar_pair(fn: Callable[[np.ndarray, np.ndarray], np.ndarray]) -> FunctionImpl:
    return lambda ctx, call, args: Scalar(fn(_scalar(args, 0), _scalar(args, 1)))


FUNCTIONS: dict[str, FunctionSpec] = {}
"""Every function by name: a constant table, filled once below."""


def _add(
    name: str,
    arg_types: tuple[ValueType, ...],
    impl: FunctionImpl,
    returns: ValueType = V,
    variadic: int = 0,
    drops_name: bool = True,
    experimental: bool = False,
    at_unsafe: bool = False,
) -> None:
    FUNCTIONS[name] = FunctionSpec(
        name, arg_types, returns, impl, variadic, drops_name, experimental, at_unsafe
    )


def _time(ctx: EvalContext, call: Call, args: list[Value]) -> Value:
    return Scalar(ctx.steps_ms / 1000.0)


for _name, _fn in fi.MATH.items():
    _add(_name, (V,), _on_vector(_fn))
for _name in fi.DATE_FUNCTIONS:
    _add(_name, (V,), _date(_name), variadic=1, at_unsafe=True)

_add("rate", (M,), _on_matrix(lambda m: fr.extrapolated_rate(m, True, True)))
_add("increase", (M,), _on_matrix(lambda m: fr.extrapolated_rate(m, True, False)))
_add("delta", (M,), _on_matrix(lambda m: fr.extrapolated_rate(m, False, False)))
_add("irate", (M,), _on_matrix(lambda m: fr.instant_value(m, True)))
_add("idelta", (M,), _on_matrix(lambda m: fr.instant_value(m, False)))
_add("deriv", (M,), _on_matrix(fr.deriv))
_add(
    "predict_linear",
    (M, S),
    lambda ctx, call, args: fr.predict_linear(_matrix(args, 0), ctx.steps_ms, _scalar(args, 1)),
    at_unsafe=True,
)
_add("resets", (M,), _on_matrix(fr.resets))
_add("changes", (M,), _on_matrix(fr.changes))
_add("sum_over_time", (M,), _on_matrix(fr.sum_over_time))
_add("avg_over_time", (M,), _on_matrix(fr.avg_over_time))
_add("min_over_time", (M,), _on_matrix(fr.min_over_time))
_add("max_over_time", (M,), _on_matrix(fr.max_over_time))
_add("count_over_time", (M,), _on_matrix(fr.count_over_time))
_add("stddev_over_time", (M,), _on_matrix(lambda m: fr.variance_over_time(m, True)))
_add("stdvar_over_time", (M,), _on_matrix(lambda m: fr.variance_over_time(m, False)))
_add("present_over_time", (M,), _on_matrix(fr.present_over_time))
_add("last_over_time", (M,), _on_matrix(fr.last_over_time), drops_name=False)
_add("first_over_time", (M,), _on_matrix(fr.first_over_time), drops_name=False)
_add(
    "quantile_over_time",
    (S, M),
    lambda ctx, call, args: fr.quantile_over_time(_scalar(args, 0), _matrix(args, 1)),
)
_add("absent_over_time", (M,), _absent_over_time, drops_name=False)
_add("mad_over_time", (M,), _on_matrix(fr.mad_over_time), experimental=True)
_add("ts_of_min_over_time", (M,), _on_matrix(fr.ts_of_min_over_time), experimental=True)
_add("ts_of_max_over_time", (M,), _on_matrix(fr.ts_of_max_over_time), experimental=True)
_add("ts_of_first_over_time", (M,), _on_matrix(fr.ts_of_first_over_time), experimental=True)
_add("ts_of_last_over_time", (M,), _on_matrix(fr.ts_of_last_over_time), experimental=True)
_add("double_exponential_smoothing", (M, S, S), _smoothing, experimental=True)

_add(
    "clamp",
    (V, S, S),
    lambda ctx, call, args: fi.clamp(_vector(args, 0), _scalar(args, 1), _scalar(args, 2)),
)
_add(
    "clamp_min",
    (V, S),
    lambda ctx, call, args: fi.clamp(
        _vector(args, 0), _scalar(args, 1), np.full(ctx.num_steps, math.inf)
    ),
)
_add(
    "clamp_max",
    (V, S),
    lambda ctx, call, args: fi.clamp(
        _vector(args, 0), np.full(ctx.num_steps, -math.inf), _scalar(args, 1)
    ),
)
_add(
    "round",
    (V, S),
    lambda ctx, call, args: fi.round_to(
        _vector(args, 0), _scalar(args, 1) if len(args) > 1 else np.ones(ctx.num_steps)
    ),
    variadic=1,
)
_add("pi", (), _constant(lambda ctx: math.pi), returns=S, drops_name=False)
_add("time", (), _time, returns=S, drops_name=False, at_unsafe=True)
_add(
    "timestamp",
    (V,),
    lambda ctx, call, args: fi.timestamp(_vector(args, 0), ctx.steps_ms),
    at_unsafe=True,
)
_add(
    "scalar",
    (V,),
    lambda ctx, call, args: fi.scalar_of(_vector(args, 0), ctx.num_steps),
    returns=S,
    drops_name=False,
)
_add(
    "vector",
    (S,),
    lambda ctx, call, args: fi.vector_of(Scalar(_scalar(args, 0))),
    drops_name=False,
)
_add("sort", (V,), _sort(False), drops_name=False)
_add("sort_desc", (V,), _sort(True), drops_name=False)
_add(
    "sort_by_label",
    (V, STR),
    _sort_by_label(False),
    variadic=-1,
    drops_name=False,
    experimental=True,
)
_add(
    "sort_by_label_desc",
    (V, STR),
    _sort_by_label(True),
    variadic=-1,
    drops_name=False,
    experimental=True,
)
_add(
    "label_replace",
    (V, STR, STR, STR, STR),
    lambda ctx, call, args: fi.label_replace(
        _vector(args, 0), _string(args, 1), _string(args, 2), _string(args, 3), _string(args, 4)
    ),
    drops_name=False,
)
_add(
    "label_join",
    (V, STR, STR, STR),
    lambda ctx, call, args: fi.label_join(
        _vector(args, 0),
        _string(args, 1),
        _string(args, 2),
        [_string(args, i) for i in range(3, len(args))],
    ),
    variadic=-1,
    drops_name=False,
)
_add("absent", (V,), _absent, drops_name=False)
_add(
    "histogram_quantile",
    (S, V),
    lambda ctx, call, args: fh.histogram_quantile(_scalar(args, 0), _vector(args, 1)),
)
_add("min_of", (S, S), _scalar_pair(fi.go_min), returns=S, drops_name=False, experimental=True)
_add("max_of", (S, S), _scalar_pair(fi.go_max), returns=S, drops_name=False, experimental=True)
_add(
    "start",
    (),
    _constant(lambda ctx: ctx.start_ms / 1000),
    returns=S,
    experimental=True,
    at_unsafe=True,
)
_add(
    "end",
    (),
    _constant(lambda ctx: ctx.end_ms / 1000),
    returns=S,
    experimental=True,
    at_unsafe=True,
)
_add(
    "range",
    (),
    _constant(lambda ctx: (ctx.end_ms - ctx.start_ms) / 1000),
    returns=S,
    experimental=True,
    at_unsafe=True,
)
_add(
    "step",
    (),
    _constant(lambda ctx: ctx.step_ms / 1000),
    returns=S,
    experimental=True,
    at_unsafe=True,
)

_NATIVE_ONLY = "it reads native histograms, which dcmon does not store"
for _name in ("histogram_count", "histogram_sum", "histogram_avg"):
    _add(_name, (V,), _unsupported(_name, _NATIVE_ONLY))
for _name in ("histogram_stddev", "histogram_stdvar"):
    _add(_name, (V,), _unsupported(_name, _NATIVE_ONLY))
_add("histogram_fraction", (S, S, V), _unsupported("histogram_fraction", _NATIVE_ONLY))
_add(
    "histogram_quantiles",
    (V, STR, S, S),
    _unsupported("histogram_quantiles", _NATIVE_ONLY),
    variadic=9,
    experimental=True,
)
_add(
    "info",
    (V, V),
    _unsupported("info", "dcmon keeps no info metrics to join"),
    variadic=1,
    experimental=True,
)
_add(
    "start_timestamp",
    (V,),
    _unsupported("start_timestamp", "dcmon stores no start timestamps"),
    experimental=True,
)
