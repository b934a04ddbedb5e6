"""Prometheus' JSON envelope and value encoding, and the one place errors become responses.

    {"status": "success", "data": ..., "warnings": [...], "infos": [...]}
    {"status": "error", "errorType": "bad_data", "error": "..."}

Empty fields are omitted. Sample values are strings as Go's ``strconv.AppendFloat`` writes them
(``"1"``, ``"1e-07"``, ``"+Inf"``, ``"NaN"``; scalars never in exponent form); timestamps are
float seconds. Range results and range-vector results are sorted by labels.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
from fastapi.responses import JSONResponse

from server.promql.engine import Result
from server.promql.errors import PromQLError
from server.promql.values import Labels, Matrix, Scalar, String, Vector
from server.query.errors import STATUS, ErrorType, QueryError

MAX_ANNOTATIONS = 10


def format_float(value: float, *, scalar: bool = False) -> str:
    """Returns: ``value`` as Prometheus writes a sample value."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    magnitude = abs(value)
    if 1e-4 <= magnitude < 1e16:
        # Python's repr is the same shortest round-trip digits, positional in this range, and
        # twice as fast as numpy's formatter; only a whole number's ".0" differs.
        text = repr(float(value))
        return text[:-2] if text.endswith(".0") else text
    if magnitude == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    if not scalar and ((0 < magnitude < 1e-6) or magnitude >= 1e21):
        return np.format_float_scientific(value, unique=True, trim="-", exp_digits=2)
    return np.format_float_positional(value, unique=True, trim="-")


def format_time(ms: int) -> float | int:
    """Returns: Unix ms as JSON seconds (an integer when whole)."""
    return ms // 1000 if ms % 1000 == 0 else ms / 1000


def metric(labels: Labels) -> dict[str, str]:
    return dict(labels)


class _Pairs:
    """Formats ``[time, "value"]`` pairs, remembering each time and value already formatted
    in this answer: a range answer repeats its steps in every series, and gauges (whole-degree
    temperatures, clocks) repeat their values, so most pairs cost two dict lookups."""

    MAX_REMEMBERED = 1 << 16

    def __init__(self) -> None:
        self._times: dict[int, float | int] = {}
        self._values: dict[float, str] = {}

    def __call__(self, stamps: list[int], values: list[float]) -> list[list[Any]]:
        times, texts = self._times, self._values
        out: list[list[Any]] = []
        append = out.append
        for s, v in zip(stamps, values, strict=True):
            t = times.get(s)
            if t is None:
                t = format_time(s)
                if len(times) < self.MAX_REMEMBERED:
                    times[s] = t
            text = texts.get(v) if v else None  # 0.0 == -0.0 as keys: never remembered
            if text is None:
                text = format_float(v)
                if v and len(texts) < self.MAX_REMEMBERED:
                    texts[v] = text
            append([t, text])
        return out


def _truncate(rows: list[Any], limit: int, warnings: list[str]) -> list[Any]:
    if limit and len(rows) > limit:
        warnings.append("results truncated due to limit")
        return rows[:limit]
    return rows


def query_data(result: Result, *, is_range: bool, limit: int) -> tuple[dict[str, Any], list[str]]:
    """Returns: ``data`` of a query answer and the warnings it adds (truncation)."""
    warnings: list[str] = []
    value = result.value
    t = int(result.steps_ms[-1])
    rows: list[dict[str, Any]]
    if is_range:
        pairs = _Pairs()
        rows = [
            {"metric": metric(labels), "values": pairs(ts.tolist(), vs.tolist())}
            for labels, ts, vs in result.points()
        ]
        return {"resultType": "matrix", "result": _truncate(rows, limit, warnings)}, warnings
    if isinstance(value, Scalar):
        pair: list[Any] = [format_time(t), format_float(float(value.values[0]), scalar=True)]
        return {"resultType": "scalar", "result": pair}, warnings
    if isinstance(value, String):
        return {"resultType": "string", "result": [format_time(t), value.value]}, warnings
    if isinstance(value, Vector):
        rows = [
            {"metric": metric(s.labels), "value": [format_time(t), format_float(s.values[0])]}
            for s in value.series
            if s.present[0]
        ]
        return {"resultType": "vector", "result": _truncate(rows, limit, warnings)}, warnings
    assert isinstance(value, Matrix)
    rows = []
    pairs = _Pairs()
    for series in sorted(value.series, key=lambda s: s.labels):
        lo, hi = int(series.starts[0]), int(series.ends[0])
        if hi > lo:
            stamps, values = series.ts[lo:hi].tolist(), series.values[lo:hi].tolist()
            rows.append({"metric": metric(series.labels), "values": pairs(stamps, values)})
    return {"resultType": "matrix", "result": _truncate(rows, limit, warnings)}, warnings


def annotation_lists(result: Result) -> tuple[list[str], list[str]]:
    """Returns: the query's warnings and infos as Prometheus renders them, at most 10 each."""
    return (
        _capped([f"PromQL warning: {w}" for w in result.annotations.warnings], "warning"),
        _capped([f"PromQL info: {i}" for i in result.annotations.infos], "info"),
    )


def _capped(messages: list[str], kind: str) -> list[str]:
    if len(messages) <= MAX_ANNOTATIONS:
        return messages
    rest = len(messages) - MAX_ANNOTATIONS
    return [*messages[:MAX_ANNOTATIONS], f"{rest} more {kind} annotations omitted"]


class _FastJSON(JSONResponse):
    """A JSON answer encoded by orjson: 10x faster than the standard library on large range
    answers (every value is a str or a time; a stray NaN would be null, not an error)."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def success(
    data: Any, warnings: list[str] | None = None, infos: list[str] | None = None
) -> JSONResponse:
    body: dict[str, Any] = {"status": "success", "data": data}
    if warnings:
        body["warnings"] = warnings
    if infos:
        body["infos"] = infos
    return _FastJSON(body)


def error_body(exc: QueryError | PromQLError) -> tuple[int, dict[str, str]]:
    """Returns: the status code and envelope of an API or engine error (mapped only here)."""
    if isinstance(exc, QueryError):
        error_type: ErrorType = exc.error_type
        message = exc.message
    else:
        error_type = "bad_data" if exc.kind == "bad_data" else "execution"
        message = exc.message
    return STATUS[error_type], {"status": "error", "errorType": error_type, "error": message}


def failure(exc: QueryError | PromQLError) -> JSONResponse:
    status, body = error_body(exc)
    return JSONResponse(body, status_code=status)
