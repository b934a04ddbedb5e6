"""History queries: one metric's series over a time range, optionally one point per step.

Stage: storage -> api. Matchers compare label values for equality; the labels a series can be
matched on are its own, ``instance`` (the node's name) and the node's configured labels, as on
/metrics. With a step, each point is the last sample in (t - step, t] for t = start, start +
step, ... end (the newest value known at t, Prometheus-style). Without a step, raw samples.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from server.errors import ApiError
from server.storage.store import NodeRecord, Store


@dataclass(frozen=True)
class HistoryQuery:
    metric: str
    matchers: Mapping[str, str]
    start: float
    end: float
    step: float | None


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: list[tuple[float, float]]


@dataclass(frozen=True)
class HistoryLimits:
    max_points: int
    max_series: int


def query_history(store: Store, query: HistoryQuery, limits: HistoryLimits) -> list[Series]:
    """Returns: matching series with their points, sorted by labels.

    Raises:
        ApiError: 422 when the range is empty or the answer would exceed the limits.
    """
    if query.end < query.start:
        raise ApiError(422, "invalid_parameter", "end is before start")
    if query.step is not None:
        if query.step <= 0:
            raise ApiError(422, "invalid_parameter", "step must be positive")
        wanted = int((query.end - query.start) // query.step) + 1
        if wanted > limits.max_points:
            raise ApiError(
                422,
                "too_many_points",
                f"start/end/step ask for {wanted} points per series; the limit is "
                f"{limits.max_points} (use a larger step)",
            )
    nodes = {node.pk: node for node in store.nodes()}
    selected: list[tuple[int, dict[str, str]]] = []
    for series in store.series(query.metric):
        node = nodes.get(series.node_pk)
        if node is None:
            continue
        labels = _visible_labels(node, series.labels)
        if all(labels.get(name) == value for name, value in query.matchers.items()):
            selected.append((series.id, labels))
    if len(selected) > limits.max_series:
        raise ApiError(
            422,
            "too_many_series",
            f"the matchers select {len(selected)} series; the limit is {limits.max_series} "
            "(add label matchers such as instance=...)",
        )
    raw_limit = limits.max_points * max(len(selected), 1)
    # With a step, the point at `start` looks back one step, so read from there.
    read_from = query.start - (query.step or 0.0)
    samples = store.samples(
        [series_id for series_id, _ in selected],
        int(read_from * 1000) + (1 if query.step else 0),
        int(query.end * 1000),
        raw_limit,
    )
    if sum(len(points) for points in samples.values()) > raw_limit:
        raise ApiError(
            422,
            "too_many_points",
            f"more than {limits.max_points} raw samples per series in range; pass a step",
        )
    result = []
    for series_id, labels in selected:
        raw = [(ts_ms / 1000.0, value) for ts_ms, value in samples[series_id]]
        points = raw if query.step is None else _resample(raw, query.start, query.end, query.step)
        result.append(Series(labels, points))
    return sorted(result, key=lambda series: sorted(series.labels.items()))


def _visible_labels(node: NodeRecord, labels: Mapping[str, str]) -> dict[str, str]:
    visible = {"instance": node.name}
    visible.update({k: v for k, v in node.labels.items() if k not in labels})
    visible.update(labels)
    return visible


def _resample(
    raw: list[tuple[float, float]], start: float, end: float, step: float
) -> list[tuple[float, float]]:
    """Returns: at t = start, start+step, ... <= end, the last raw sample in (t - step, t]."""
    points: list[tuple[float, float]] = []
    index = 0
    count = int((end - start) // step) + 1
    for i in range(count):
        t = start + i * step
        last: float | None = None
        while index < len(raw) and raw[index][0] <= t:
            if raw[index][0] > t - step:
                last = raw[index][1]
            index += 1
        if last is not None:
            points.append((t, last))
    return points
