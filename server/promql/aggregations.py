"""Aggregation operators over a whole step grid: ``sum``, ``avg``, ... ``count_values``.

Input: a ``Vector`` (dense per-step values and presence masks) and the per-step parameter.
Output: one series per group (``topk``/``bottomk``/``limitk`` keep the input series). Groups are
in first-appearance order; ``without`` always removes ``__name__`` (engine.go: aggregation,
aggregationK, aggregationCountValues).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import cast

import numpy as np
import xxhash

from server.promql.errors import EvalError, UnsupportedError
from server.promql.registry import EvalContext
from server.promql.values import (
    NAME,
    BoolArray,
    FloatArray,
    Labels,
    Scalar,
    String,
    Vector,
    VectorSeries,
    only_labels,
    with_label,
    without_labels,
)

_NAME_RE_OK = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_"


def group_labels(labels: Labels, grouping: tuple[str, ...], without: bool) -> Labels:
    """Returns: the labels of the group a series falls into."""
    if without:
        return without_labels(labels, (*grouping, NAME))
    return only_labels(labels, grouping)


def kahan_add(
    total: FloatArray, comp: FloatArray, inc: FloatArray, where: BoolArray
) -> tuple[FloatArray, FloatArray]:
    """Neumaier step (Prometheus kahansum.Inc) where ``where``; compensation resets on ±Inf."""
    with np.errstate(invalid="ignore", over="ignore"):
        t = total + inc
        big = np.abs(total) >= np.abs(inc)
        delta = np.where(big, (total - t) + inc, (inc - t) + total)
        new_comp = np.where(np.isinf(t), 0.0, comp + delta)
    return np.where(where, t, total), np.where(where, new_comp, comp)


def aggregate(
    ctx: EvalContext,
    op: str,
    vector: Vector,
    param: Scalar | String | None,
    grouping: tuple[str, ...],
    without: bool,
) -> Vector:
    """Returns: ``op`` applied per group and per step."""
    if op in ("topk", "bottomk", "limitk"):
        assert isinstance(param, Scalar)
        return _select_k(ctx, op, vector, param.values, grouping, without)
    if op == "count_values":
        assert isinstance(param, String)
        return _count_values(ctx, vector, param.value, grouping, without)
    if op == "limit_ratio":
        assert isinstance(param, Scalar)
        return _limit_ratio(ctx, vector, param.values)
    groups: dict[Labels, list[VectorSeries]] = {}
    for series in vector.series:
        groups.setdefault(group_labels(series.labels, grouping, without), []).append(series)
    reducer = _REDUCERS.get(op)
    if reducer is None and op != "quantile":
        raise UnsupportedError(f"aggregation {op!r} is not supported")
    out = []
    for labels, members in groups.items():
        values = np.stack([s.values for s in members])
        present = np.stack([s.present for s in members])
        if op == "quantile":
            assert isinstance(param, Scalar)
            result = _quantile(values, present, param.values)
        else:
            assert reducer is not None
            result = reducer(values, present)
        any_present = cast(BoolArray, present.any(axis=0))
        drop = any(s.drop_name for s in members)
        out.append(VectorSeries(labels, result, any_present, drop))
    if op == "quantile":
        assert isinstance(param, Scalar)
        _warn_quantile(ctx, param.values)
    return Vector([s for s in out if s.present.any()])


def labels_hash(labels: Labels) -> int:
    """Returns: Prometheus' ``labels.Hash()`` in its default (stringlabels) build: xxhash64 of
    every name and value, each after its length (one byte below 255, else 255 and three bytes
    little-endian), in label order."""
    data = bytearray()
    for name, value in labels:
        for text in (name.encode(), value.encode()):
            size = len(text)
            data += bytes([size]) if size < 255 else bytes([255]) + size.to_bytes(3, "little")
            data += text
    return xxhash.xxh64_intdigest(bytes(data))


def _limit_ratio(ctx: EvalContext, vector: Vector, ratios: FloatArray) -> Vector:
    """limit_ratio(r, v): per step, the series whose label hash, scaled to [0, 1), is below r
    (r >= 0) or at least 1 + r (r < 0); a series is kept or dropped the same way at every step
    with the same r (engine.go: HashRatioSampler)."""
    if np.isnan(ratios).any():
        raise EvalError("Ratio value is NaN")
    for bound, bad in ((1.0, ratios.max(initial=0.0)), (-1.0, ratios.min(initial=0.0))):
        if abs(bad) > 1.0:
            ctx.annotations.warn(
                f"ratio value should be between -1 and 1, got {bad:g}, capping to {bound:g}"
            )
    r = np.clip(ratios, -1.0, 1.0)
    out = []
    for s in vector.series:
        # The name is gone by now in Prometheus' default (non-delayed) name removal.
        labels = without_labels(s.labels, (NAME,)) if s.drop_name else s.labels
        offset = float(labels_hash(labels)) / float(2**64 - 1)
        keep = np.where(r >= 0, offset < r, offset >= 1.0 + r) & (ratios != 0)
        present = s.present & keep
        if present.any():
            out.append(VectorSeries(s.labels, s.values, present, s.drop_name, s.sample_ts))
    return Vector(out)


def _warn_quantile(ctx: EvalContext, q: FloatArray) -> None:
    for value in q:
        if math.isnan(value) or value < 0 or value > 1:
            ctx.annotations.warn(f"quantile value should be between 0 and 1, got {value:g}")
            return


def _dense_neumaier(values: FloatArray, present: BoolArray) -> tuple[FloatArray, FloatArray] | None:
    """Returns: (total, compensation) of the rows in order, as ``kahan_add`` from the first row
    on computes them, when every value is present and finite and no partial sum overflows (the
    usual case: then neither the first-value nor the infinity rules of the general loop apply);
    else None. Fewer operations per row, and plain floats for a single step."""
    if not present.all() or not np.isfinite(values).all():
        return None
    if values.shape[1] == 1:
        column = values[:, 0].tolist()
        total, comp = column[0], 0.0
        for inc in column[1:]:
            t = total + inc
            comp += (total - t) + inc if abs(total) >= abs(inc) else (inc - t) + total
            total = t
        if not math.isfinite(total):
            return None
        return np.array([total]), np.array([comp])
    totals = values[0].copy()
    comps = np.zeros(values.shape[1])
    with np.errstate(invalid="ignore", over="ignore"):
        for row in values[1:]:
            t = totals + row
            comps += np.where(np.abs(totals) >= np.abs(row), (totals - t) + row, (row - t) + totals)
            totals = t
    if not np.isfinite(totals).all():
        return None
    return totals, comps


def _sum(values: FloatArray, present: BoolArray) -> FloatArray:
    dense = _dense_neumaier(values, present)
    if dense is not None:
        return dense[0] + dense[1]
    total = np.zeros(values.shape[1])
    comp = np.zeros(values.shape[1])
    seen = np.zeros(values.shape[1], dtype=bool)
    for row, mask in zip(values, present, strict=True):
        first = mask & ~seen
        total = np.where(first, row, total)
        total, comp = kahan_add(total, comp, row, mask & seen)
        seen |= mask
    with np.errstate(invalid="ignore"):
        result: FloatArray = np.where(np.isinf(total), total, total + comp)
    return result


def _avg(values: FloatArray, present: BoolArray) -> FloatArray:
    """Direct compensated mean, switching to an incremental mean once the sum would overflow."""
    dense = _dense_neumaier(values, present)
    if dense is not None:
        rows = float(values.shape[0])
        return dense[0] / rows + dense[1] / rows
    width = values.shape[1]
    total, comp, mean = np.zeros(width), np.zeros(width), np.zeros(width)
    n = np.zeros(width)
    incremental = np.zeros(width, dtype=bool)
    all_true = np.ones(width, dtype=bool)
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for row, mask in zip(values, present, strict=True):
            first = mask & (n == 0)
            rest = mask & (n > 0)
            n = n + mask
            total = np.where(first, row, total)
            new_total, new_comp = kahan_add(total, comp, row, all_true)
            direct = rest & ~incremental & ~np.isinf(new_total)
            total = np.where(direct, new_total, total)
            comp = np.where(direct, new_comp, comp)
            switch = rest & ~incremental & ~direct
            mean = np.where(switch, total / (n - 1), mean)
            comp = np.where(switch, comp / (n - 1), comp)
            incremental |= switch
            step = rest & incremental
            q = (n - 1) / n
            inc_mean, inc_comp = kahan_add(q * mean, q * comp, row / n, all_true)
            mean = np.where(step, inc_mean, mean)
            comp = np.where(step, inc_comp, comp)
        result: FloatArray = np.where(incremental, mean + comp, total / n + comp / n)
    return result


def _count(values: FloatArray, present: BoolArray) -> FloatArray:
    result: FloatArray = present.sum(axis=0).astype(np.float64)
    return result


def _group(values: FloatArray, present: BoolArray) -> FloatArray:
    return np.ones(values.shape[1])


def _extreme(is_better: Callable[[FloatArray, FloatArray], BoolArray]) -> Callable[..., FloatArray]:
    def reduce(values: FloatArray, present: BoolArray) -> FloatArray:
        acc = np.full(values.shape[1], np.nan)
        seen = np.zeros(values.shape[1], dtype=bool)
        for row, mask in zip(values, present, strict=True):
            with np.errstate(invalid="ignore"):
                replace = mask & (~seen | is_better(row, acc) | np.isnan(acc))
            acc = np.where(replace, row, acc)
            seen |= mask
        return acc

    return reduce


def _variance(values: FloatArray, present: BoolArray) -> FloatArray:
    n = np.zeros(values.shape[1])
    mean = np.zeros(values.shape[1])
    m2 = np.zeros(values.shape[1])
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        for row, mask in zip(values, present, strict=True):
            n1 = n + 1
            delta = row - mean
            new_mean = mean + delta / n1
            new_m2 = m2 + delta * (row - new_mean)
            n = np.where(mask, n1, n)
            mean = np.where(mask, new_mean, mean)
            m2 = np.where(mask, new_m2, m2)
        result: FloatArray = m2 / n
    return result


def _stddev(values: FloatArray, present: BoolArray) -> FloatArray:
    with np.errstate(invalid="ignore"):
        result: FloatArray = np.sqrt(_variance(values, present))
    return result


_REDUCERS: dict[str, Callable[[FloatArray, BoolArray], FloatArray]] = {
    "sum": _sum,
    "avg": _avg,
    "count": _count,
    "group": _group,
    "min": _extreme(lambda v, acc: v < acc),
    "max": _extreme(lambda v, acc: v > acc),
    "stdvar": _variance,
    "stddev": _stddev,
}


def quantile_of(q: float, values: FloatArray) -> float:
    """Prometheus' ``quantile``: NaN sorts first, linear interpolation between ranks."""
    if len(values) == 0:
        return math.nan
    if math.isnan(q):
        return math.nan
    if q < 0:
        return -math.inf
    if q > 1:
        return math.inf
    nan_first = np.concatenate([values[np.isnan(values)], np.sort(values[~np.isnan(values)])])
    n = len(nan_first)
    rank = q * (n - 1)
    lower = max(0, math.floor(rank))
    upper = min(n - 1, lower + 1)
    weight = rank - math.floor(rank)
    return float(nan_first[lower] * (1 - weight) + nan_first[upper] * weight)


def _quantile(values: FloatArray, present: BoolArray, q: FloatArray) -> FloatArray:
    out = np.full(values.shape[1], np.nan)
    for i in range(values.shape[1]):
        column = values[present[:, i], i]
        if len(column):
            out[i] = quantile_of(float(q[i]), column)
    return out


def _check_k(ks: FloatArray) -> None:
    if np.isnan(ks).any():
        raise EvalError("Parameter value is NaN")
    if (ks >= 2.0**63).any():
        raise EvalError(f"Scalar value {ks.max():g} overflows int64")
    if (ks <= -(2.0**63)).any():
        raise EvalError(f"Scalar value {ks.min():g} underflows int64")


def _select_k(
    ctx: EvalContext,
    op: str,
    vector: Vector,
    ks: FloatArray,
    grouping: tuple[str, ...],
    without: bool,
) -> Vector:
    """topk/bottomk/limitk: per step and group, the k best series (ties keep input order)."""
    if len(ks) == 0 or ks.max() < 1:
        return Vector([])
    _check_k(ks)
    groups: dict[Labels, list[int]] = {}
    for index, series in enumerate(vector.series):
        groups.setdefault(group_labels(series.labels, grouping, without), []).append(index)
    chosen = [np.zeros(ctx.num_steps, dtype=bool) for _ in vector.series]
    rank = [np.zeros(ctx.num_steps) for _ in vector.series]
    for members in groups.values():
        values = np.stack([vector.series[i].values for i in members])
        present = np.stack([vector.series[i].present for i in members])
        for step in range(ctx.num_steps):
            k = int(ks[step])
            if k < 1:
                continue
            rows = np.flatnonzero(present[:, step])
            if op != "limitk":
                column = values[rows, step]
                key = -column if op == "topk" else column
                # NaN ranks worst; ties keep input order (lexsort is stable).
                order = np.lexsort(
                    (rows, np.where(np.isnan(column), np.inf, key), np.isnan(column))
                )
                rows = rows[order]
            for position, row in enumerate(rows[:k]):
                chosen[members[row]][step] = True
                rank[members[row]][step] = position
    # Output order: groups in first-appearance order, each by rank at the first step (which
    # is the order of an instant topk/bottomk; range results are sorted by labels later).
    indices = [i for members in groups.values() for i in members]
    if op != "limitk":
        first_rank = {i: (rank[i][0] if chosen[i][0] else math.inf) for i in indices}
        indices = [
            i for members in groups.values() for i in sorted(members, key=first_rank.__getitem__)
        ]
    out = []
    for index in indices:
        series = vector.series[index]
        mask = series.present & chosen[index]
        if mask.any():
            out.append(VectorSeries(series.labels, series.values, mask, series.drop_name))
    return Vector(out)


def format_go_float(value: float) -> str:
    """Returns: Go's ``strconv.FormatFloat(v, 'f', -1, 64)``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return np.format_float_positional(value, unique=True, trim="-")


def _count_values(
    ctx: EvalContext, vector: Vector, label: str, grouping: tuple[str, ...], without: bool
) -> Vector:
    if (
        not label
        or label[0].isdigit()
        or any(c not in _NAME_RE_OK and not c.isdigit() for c in label)
    ):
        raise EvalError(f"invalid label name {label!r}")
    counts: dict[Labels, FloatArray] = {}
    for series in vector.series:
        for step in np.flatnonzero(series.present):
            text = format_go_float(float(series.values[step]))
            if without:
                labels = group_labels(with_label(series.labels, label, text), grouping, True)
            else:
                labels = with_label(group_labels(series.labels, grouping, False), label, text)
            counts.setdefault(labels, np.zeros(ctx.num_steps))[step] += 1
    return Vector([VectorSeries(k, v, v > 0) for k, v in counts.items()])
