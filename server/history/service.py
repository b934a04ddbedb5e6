"""History queries: one metric's series over a time range, raw or one point per step.

Stage: storage -> history. Without a step the answer is the raw samples in [start, end]. With a
step, point ``t`` summarises the window (t - step, t] with the chosen aggregation (avg, min,
max, sum, count, last, rate, increase; see ``server/rollup/buckets.py``), and the tier is chosen
from the step: the coarsest rollup tier whose bucket width divides the step (1h, then 1m), else
raw samples. On a rollup tier the grid is aligned to the bucket width (start is rounded down),
so every window is a union of whole buckets and the answer equals the one from raw samples.

With ``by``, series that share the values of those labels are combined point by point with
the ``group`` operation (sum, avg, min, max, count; default sum for sum, count, rate and
increase, avg for last, and the aggregation itself for avg, min and max).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from server.errors import ApiError
from server.history.select import Selected, select_series
from server.rollup.buckets import AGGREGATIONS, STALE_NAN_BITS, aggregate, combine, grid, rollup
from server.rollup.matchers import Matcher
from server.storage.reader import Reader
from server.storage.store import Store
from server.storage.tiers import Tier, TierPlan

GROUPS = ("sum", "avg", "min", "max", "count")
_DEFAULT_GROUP = {
    "sum": "sum",
    "count": "sum",
    "rate": "sum",
    "increase": "sum",
    "last": "avg",
    "avg": "avg",
    "min": "min",
    "max": "max",
}


@dataclass(frozen=True)
class HistoryQuery:
    metric: str
    matchers: Sequence[Matcher]
    start: float
    end: float
    step: float | None
    aggregation: str = "last"
    by: tuple[str, ...] | None = None
    group: str | None = None


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]]


@dataclass(frozen=True)
class HistoryResult:
    start: float
    end: float
    step: float | None
    tier: str
    aggregation: str | None
    series: list[Series]


@dataclass(frozen=True)
class HistoryLimits:
    max_points: int
    max_series: int


def choose_tier(plan: TierPlan, step_ms: int) -> Tier:
    """Returns: the coarsest rollup tier whose bucket width divides the step, else raw."""
    for tier in (plan.hour, plan.minute):
        assert tier.bucket_ms is not None
        if step_ms % tier.bucket_ms == 0:
            return tier
    return plan.raw


def query_history(
    store: Store, reader: Reader, plan: TierPlan, query: HistoryQuery, limits: HistoryLimits
) -> HistoryResult:
    """Raises: ApiError 422 naming the parameter for bad ranges, or answers over the limits."""
    if query.end < query.start:
        raise ApiError(422, "invalid_parameter", "end: before start")
    if query.aggregation not in AGGREGATIONS:
        raise ApiError(
            422, "invalid_parameter", f"aggregation: must be one of {', '.join(AGGREGATIONS)}"
        )
    group = query.group or _DEFAULT_GROUP[query.aggregation]
    if group not in GROUPS:
        raise ApiError(422, "invalid_parameter", f"group: must be one of {', '.join(GROUPS)}")
    start_ms, end_ms = round(query.start * 1000), round(query.end * 1000)
    if query.step is not None:
        step_ms = round(query.step * 1000)
        if step_ms <= 0:
            raise ApiError(422, "invalid_parameter", "step: must be at least 1 ms")
        tier = choose_tier(plan, step_ms)
        first, last = grid(start_ms, end_ms, step_ms, tier.bucket_ms or 1)
        wanted = (last - first) // step_ms + 1 if last >= first else 0
        if wanted > limits.max_points:
            raise ApiError(
                422,
                "too_many_points",
                f"step: start/end/step ask for {wanted} points per series; the limit is "
                f"{limits.max_points} (use a larger step)",
            )
    selected = _select(store, query, limits)
    if query.step is None:
        result = _raw(reader, selected, start_ms, end_ms, limits)
        return HistoryResult(
            query.start, query.end, None, "raw", None, _group(result, query, group)
        )
    stepped = _stepped(reader, selected, tier, first, last, step_ms, query.aggregation)
    return HistoryResult(
        first / 1000,
        last / 1000,
        step_ms / 1000,
        tier.name,
        query.aggregation,
        _group(stepped, query, group),
    )


def _select(store: Store, query: HistoryQuery, limits: HistoryLimits) -> list[Selected]:
    nodes = store.node_naming()
    selected = select_series(store.index, nodes, query.metric, query.matchers)
    if len(selected) > limits.max_series:
        raise ApiError(
            422,
            "too_many_series",
            f"match: the matchers select {len(selected)} series; the limit is "
            f"{limits.max_series} (add label matchers such as instance=...)",
        )
    return selected


_Points = tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]


def _raw(
    reader: Reader, selected: list[Selected], start_ms: int, end_ms: int, limits: HistoryLimits
) -> list[tuple[dict[str, str], _Points]]:
    data = reader.raw([s.series for s in selected], start_ms, end_ms)
    result = []
    for item in selected:
        stamps, values = data[item.series.id]
        markers = values.view(np.uint64) == np.uint64(STALE_NAN_BITS)
        if markers.any():  # remote-written stale markers: the series' end, not a value
            stamps, values = stamps[~markers], values[~markers]
        if len(stamps) > limits.max_points:
            raise ApiError(
                422,
                "too_many_points",
                f"step: more than {limits.max_points} raw samples per series in range; pass a step",
            )
        result.append((item.labels, (stamps, values)))
    return result


def _stepped(
    reader: Reader,
    selected: list[Selected],
    tier: Tier,
    first: int,
    last: int,
    step_ms: int,
    aggregation: str,
) -> list[tuple[dict[str, str], _Points]]:
    """One value per step window; reads one extra window before ``first`` for rate/increase."""
    series = [s.series for s in selected]
    origin = first % step_ms
    read_from = first - 2 * step_ms
    if tier.bucket_ms is None:
        raw = reader.raw(series, read_from + 1, last)
        windows = {sid: rollup(ts, vs, step_ms, origin) for sid, (ts, vs) in raw.items()}
    else:
        stored = reader.buckets(series, tier, read_from, last)
        windows = {sid: combine(b, step_ms, origin) for sid, b in stored.items()}
    result = []
    for item in selected:
        buckets = windows[item.series.id]
        before = buckets.slice(read_from, first - step_ms)
        previous = float(before.last[-1]) if len(before) else None
        inside = buckets.slice(first - step_ms, last)
        values = aggregate(inside, aggregation, step_ms, previous)
        result.append((item.labels, (inside.end_ms, values)))
    return result


def _group(
    series: list[tuple[dict[str, str], _Points]], query: HistoryQuery, group: str
) -> list[Series]:
    if query.by is None:
        out = [Series(labels, _points(points)) for labels, points in series]
        return sorted(out, key=lambda s: sorted(s.labels.items()))
    members: dict[tuple[str, ...], list[_Points]] = defaultdict(list)
    for labels, points in series:
        members[tuple(labels.get(name, "") for name in query.by)].append(points)
    out = []
    for key, parts in members.items():
        stamps = np.concatenate([p[0] for p in parts])
        values = np.concatenate([p[1] for p in parts])
        unique, inverse = np.unique(stamps, return_inverse=True)
        combined = _combine(group, inverse, values, len(unique))
        labels = {name: value for name, value in zip(query.by, key, strict=True) if value}
        out.append(Series(labels, _points((unique, combined))))
    return sorted(out, key=lambda s: sorted(s.labels.items()))


def _combine(
    group: str, inverse: npt.NDArray[np.intp], values: npt.NDArray[np.float64], size: int
) -> npt.NDArray[np.float64]:
    counts = np.bincount(inverse, minlength=size).astype(np.float64)
    if group == "count":
        return counts
    if group in ("sum", "avg"):
        sums = np.bincount(inverse, weights=values, minlength=size).astype(np.float64)
        return sums if group == "sum" else sums / counts
    out = np.full(size, np.inf if group == "min" else -np.inf)
    (np.minimum if group == "min" else np.maximum).at(out, inverse, values)
    return out


def _points(points: _Points) -> list[tuple[float, float]]:
    stamps, values = points
    return list(zip((stamps / 1000.0).tolist(), values.tolist(), strict=True))
