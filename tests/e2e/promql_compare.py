"""Comparing two Prometheus query API answers: same series, same timestamps, close values.

Pure functions over the ``data`` objects of ``/api/v1/query`` and ``/query_range`` answers.
Series are matched by their full label set (``__name__`` included); instant vectors compare
as sets, matrices per series point by point. Values agree when both are NaN, equal (the
infinities included), or within ``RELATIVE_TOLERANCE`` of the larger magnitude.
"""

from __future__ import annotations

import json
import math
from typing import Any

RELATIVE_TOLERANCE = 1e-9

Points = dict[str, list[tuple[float, float]]]


def close(a: float, b: float, tolerance: float = RELATIVE_TOLERANCE) -> bool:
    """Returns: whether ``a`` and ``b`` agree (NaN agrees with NaN only)."""
    if math.isnan(a) or math.isnan(b):
        return math.isnan(a) and math.isnan(b)
    if a == b:
        return True
    if math.isinf(a) or math.isinf(b):
        return False
    return abs(a - b) <= tolerance * max(abs(a), abs(b))


def points(data: dict[str, Any]) -> Points:
    """Returns: each series' (time, value) points, keyed by its labels as sorted JSON."""
    kind, result = data["resultType"], data["result"]
    if kind in ("scalar", "string"):
        value = result[1] if kind == "string" else float(result[1])
        return {f"({kind})": [(float(result[0]), value)]}
    out: Points = {}
    for item in result:
        key = json.dumps(item["metric"], sort_keys=True)
        pairs = item["values"] if kind == "matrix" else [item["value"]]
        out[key] = [(float(t), float(v)) for t, v in pairs]
    return out


def differences(ours: dict[str, Any], theirs: dict[str, Any], limit: int = 3) -> list[str]:
    """Returns: how dcmon's answer ``ours`` differs from Prometheus' ``theirs``, at most
    ``limit`` lines and a count of the rest; empty when they agree."""
    if ours["resultType"] != theirs["resultType"]:
        return [f"result type {ours['resultType']} vs {theirs['resultType']}"]
    a, b = points(ours), points(theirs)
    problems = [f"only in dcmon: {key}" for key in sorted(a.keys() - b.keys())]
    problems += [f"only in Prometheus: {key}" for key in sorted(b.keys() - a.keys())]
    for key in sorted(a.keys() & b.keys()):
        left, right = a[key], b[key]
        left_times, right_times = [t for t, _ in left], [t for t, _ in right]
        if left_times != right_times:
            only_left = sorted(set(left_times) - set(right_times))[:2]
            only_right = sorted(set(right_times) - set(left_times))[:2]
            problems.append(
                f"{key}: {len(left)} vs {len(right)} points; times only in dcmon {only_left}, "
                f"only in Prometheus {only_right}"
            )
            continue
        for (t, x), (_, y) in zip(left, right, strict=True):
            if x != y if isinstance(x, str) else not close(x, y):
                problems.append(f"{key} at {t:.3f}: {x!r} vs {y!r}")
                break
    extra = len(problems) - limit
    return problems[:limit] + ([f"... {extra} more"] if extra > 0 else [])


def order_differences(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """Returns: how the order of two instant vectors' series differs (for ``sort`` and
    ``sort_desc``, whose order is the answer); empty when it is the same."""
    a = [json.dumps(item["metric"], sort_keys=True) for item in ours["result"]]
    b = [json.dumps(item["metric"], sort_keys=True) for item in theirs["result"]]
    return [] if a == b else [f"order differs: dcmon {a[:4]}, Prometheus {b[:4]}"]


def series_count(data: dict[str, Any]) -> int:
    """Returns: the number of series (1 for a scalar or string)."""
    return len(points(data))
