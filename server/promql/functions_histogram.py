"""``histogram_quantile`` over classic histograms (``_bucket`` series with an ``le`` label).

Input: the quantile per step and the bucket series over the grid. Output: one series per bucket
group (its labels without ``le``) with the interpolated quantile at each step where the group has
buckets. Follows ``promql/quantile.go: BucketQuantile`` of Prometheus 3: buckets sorted by bound,
equal bounds merged, counts forced monotonic (ignoring relative deltas below 1e-12), linear
interpolation inside the bucket, a lower bound of 0, and the second-highest bound for ranks in
the +Inf bucket. Native histograms never reach here (the storage holds floats only).
"""

from __future__ import annotations

import math
import re

import numpy as np

from server.promql.values import FloatArray, Labels, Vector, VectorSeries, get_label, without_labels

SMALL_DELTA_TOLERANCE = 1e-12
_MIN_NORMAL = 2.2250738585072014e-308

_DECIMAL = re.compile(r"^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$")
_SPECIAL = re.compile(r"^[+-]?(?:inf|infinity|nan)$", re.IGNORECASE)
_HEX = re.compile(r"^[+-]?0[xX](?:[0-9a-fA-F]+\.?[0-9a-fA-F]*|\.[0-9a-fA-F]+)[pP][+-]?[0-9]+$")


def go_parse_float(text: str) -> float | None:
    """Returns: ``text`` read like Go's ``strconv.ParseFloat`` (decimal, Inf/NaN words, hex
    floats with an exponent), or None where Go would fail (spaces, ``1_000``, empty)."""
    if _DECIMAL.match(text) or _SPECIAL.match(text):
        return float(text)
    if _HEX.match(text):
        return float.fromhex(text)
    return None


def almost_equal(a: float, b: float, epsilon: float) -> bool:
    """Prometheus' ``almost.Equal`` for plain floats."""
    if math.isnan(a) and math.isnan(b):
        return True
    if a == b:
        return True
    abs_sum = abs(a) + abs(b)
    diff = abs(a - b)
    if a == 0 or b == 0 or abs_sum < _MIN_NORMAL:
        return diff < epsilon * _MIN_NORMAL
    return diff / min(abs_sum, 1.7976931348623157e308) < epsilon


def _out_of_range(q: float) -> float | None:
    """Returns: the answer for a quantile outside [0, 1] (NaN, -Inf, +Inf), else None."""
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    return None


def _prepared(bounds: list[float], counts: list[float]) -> list[list[float]]:
    """Returns: [bound, count] pairs sorted, equal bounds summed, counts made monotonic."""
    merged: list[list[float]] = []
    for bound, count in sorted(zip(bounds, counts, strict=True), key=lambda p: p[0]):
        if merged and merged[-1][0] == bound:
            merged[-1][1] += count
        else:
            merged.append([bound, count])
    prev = merged[0][1]
    for bucket in merged[1:]:
        current = bucket[1]
        if current != prev and (
            almost_equal(prev, current, SMALL_DELTA_TOLERANCE) or current < prev
        ):
            bucket[1] = prev  # prev stays: the decrease (or rounding noise) is ignored
        elif current != prev:
            prev = current
    return merged


def bucket_quantile(q: float, bounds: list[float], counts: list[float]) -> float:
    """The q-quantile of one classic histogram given as (upper bound, cumulative count) pairs."""
    special = _out_of_range(q)
    if special is not None:
        return special
    if max(bounds) != math.inf:
        return math.nan
    buckets = _prepared(bounds, counts)
    observations = buckets[-1][1]
    if len(buckets) < 2 or observations == 0:
        return math.nan
    rank = q * observations
    b = next((i for i in range(len(buckets) - 1) if buckets[i][1] >= rank), len(buckets) - 1)
    if b == len(buckets) - 1:
        return buckets[-2][0]
    if b == 0 and buckets[0][0] <= 0:
        return buckets[0][0]
    start, end, count = 0.0, buckets[b][0], buckets[b][1]
    if b > 0:
        start = buckets[b - 1][0]
        count -= buckets[b - 1][1]
        rank -= buckets[b - 1][1]
    with np.errstate(all="ignore"):
        return float(np.float64(start) + (end - start) * (np.float64(rank) / count))


def histogram_quantile(q: FloatArray, vector: Vector) -> Vector:
    """Groups bucket series by their labels without ``le`` and interpolates each step."""
    groups: dict[Labels, list[tuple[float, VectorSeries]]] = {}
    for s in vector.series:
        bound = go_parse_float(get_label(s.labels, "le"))
        if bound is None:
            continue  # Prometheus skips (and warns about) a missing or malformed le
        groups.setdefault(without_labels(s.labels, ("le",)), []).append((bound, s))
    out = []
    num_steps = len(q)
    for labels, buckets in groups.items():
        values = np.full(num_steps, np.nan)
        present = np.zeros(num_steps, dtype=bool)
        for step in range(num_steps):
            here = [(b, float(s.values[step])) for b, s in buckets if s.present[step]]
            if not here:
                continue
            present[step] = True
            values[step] = bucket_quantile(
                float(q[step]), [b for b, _ in here], [c for _, c in here]
            )
        if present.any():
            drop = any(s.drop_name for _, s in buckets)
            out.append(VectorSeries(labels, values, present, drop))
    return Vector(out)
