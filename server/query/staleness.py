"""Stale markers for pushed samples, placed where a scrape would have written them.

Stage: storage -> promql (inside the query source). Prometheus marks a series stale when a
scrape no longer returns it, or when its target's scrape fails, so an instant selector stops
at that point instead of showing the last value for the rest of the 5-minute lookback. dcmon's
agents push without markers, and remote-written markers are not stored, so the query source
adds them to the samples it hands the engine, as a scrape would have:

- **a gap**: where a series' next sample comes more than 1.5 intervals after the previous one
  at ``t``, the series missed at least one batch (or scrape, or the node was silent) and is
  stale from the first it missed, ``t + interval``;
- **the tail**: a series whose last sample ``t`` is older than its node's newest batch by more
  than half an interval was missing from the batches after it; it is stale from
  ``t + interval``. The source reads half an interval past the range (``read_slack_ms``), so
  a next sample that comes a little late is seen and not taken for a missed batch;
- **a silent node**: the series of its newest batch go stale when the node is declared down
  (no push for ``stale_after_intervals`` intervals, at least ``stale_after_min_seconds``: the
  rule ``/metrics`` and ``/api/v1/nodes`` use), at the newest batch's time plus that window.

The interval is the node's push interval for an agent's node. Remote-written series carry none
(their node records Prometheus' default, 60 s), so for them it is the median spacing of the
series' samples in the range, or the node's interval when there is one sample.

Pure functions over numpy arrays; the markers are the StaleNaN bit pattern the engine skips.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from server.promql.values import FloatArray, IntArray, stale_nan

GAP_INTERVALS = 1.5
"""A gap longer than this many intervals means at least one batch was missed."""
TAIL_SLACK_INTERVALS = 0.5
"""A last sample this close to the node's newest batch was in it (timing jitter)."""


@dataclass(frozen=True)
class NodeClock:
    """What the staleness rules need of a node, all times in milliseconds.

    ``newest_batch_ms`` is the node's newest batch on its own clock (the samples' clock);
    ``down_at_ms`` is when, on that clock, the node was declared down, or None while it is up.
    ``interval_ms`` is None when the series' own spacing must stand in for it.
    """

    interval_ms: int | None
    fallback_interval_ms: int
    newest_batch_ms: int
    down_at_ms: int | None


def down_at_ms(
    newest_batch_ms: int,
    last_push_s: float,
    interval_s: float,
    now_s: float,
    intervals: float,
    min_seconds: float,
) -> int | None:
    """Returns: the time on the node's clock it went stale as a whole (its newest batch plus
    the down window), or None while it is up (pushed within the window, server clock)."""
    window_s = max(intervals * interval_s, min_seconds)
    if now_s - last_push_s <= window_s:
        return None
    return newest_batch_ms + round(window_s * 1000)


def series_interval_ms(ts: IntArray, node: NodeClock) -> int:
    """Returns: the interval that judges this series' gaps (see the module docstring)."""
    if node.interval_ms is not None:
        return node.interval_ms
    if len(ts) < 2:
        return node.fallback_interval_ms
    return max(1, int(np.median(np.diff(ts))))


def read_slack_ms(node: NodeClock) -> int:
    """Returns: how far past a range the source reads this node's series."""
    return round(TAIL_SLACK_INTERVALS * (node.interval_ms or node.fallback_interval_ms))


def with_markers(ts: IntArray, values: FloatArray, node: NodeClock) -> tuple[IntArray, FloatArray]:
    """Returns: ``ts``/``values`` (ascending, read up to ``read_slack_ms`` past the range) with
    stale markers inserted at the times the module docstring gives; unchanged when none
    applies."""
    if len(ts) == 0:
        return ts, values
    interval = series_interval_ms(ts, node)
    gap = GAP_INTERVALS * interval
    cuts = np.flatnonzero(np.diff(ts) > gap)
    marks = list((ts[cuts] + interval).tolist())
    last = int(ts[-1])
    if last < node.newest_batch_ms - TAIL_SLACK_INTERVALS * interval:
        marks.append(last + interval)
    elif node.down_at_ms is not None and node.down_at_ms > last:
        marks.append(node.down_at_ms)
    if not marks:
        return ts, values
    mark_ts = np.asarray(marks, dtype=np.int64)
    merged_ts = np.concatenate([ts, mark_ts])
    merged_values = np.concatenate([values, np.full(len(mark_ts), stale_nan())])
    order = np.argsort(merged_ts, kind="stable")
    return merged_ts[order], merged_values[order]


def with_markers_all(
    items: list[tuple[IntArray, FloatArray, NodeClock]],
) -> list[tuple[IntArray, FloatArray]]:
    """Returns: ``with_markers`` of each (ts, values, node), the same answers, with the gap
    search done once over all series of known interval (most series have no gap, and a
    numpy call per series costs more than the search itself)."""
    out: list[tuple[IntArray, FloatArray]] = [(ts, values) for ts, values, _ in items]
    known = [i for i, (ts, _, node) in enumerate(items) if node.interval_ms is not None and len(ts)]
    for i, (ts, values, node) in enumerate(items):
        if node.interval_ms is None:
            out[i] = with_markers(ts, values, node)
    if not known:
        return out
    lengths = np.fromiter((len(items[i][0]) for i in known), dtype=np.int64, count=len(known))
    all_ts = np.concatenate([items[i][0] for i in known])
    limits = np.repeat(
        np.fromiter((items[i][2].interval_ms or 0 for i in known), np.float64, len(known))
        * GAP_INTERVALS,
        lengths,
    )
    gaps = np.diff(all_ts) > limits[1:]
    ends = np.cumsum(lengths)
    gaps[ends[:-1] - 1] = False  # a "gap" from one series' last sample to the next's first
    with_gap = set(np.searchsorted(ends, np.flatnonzero(gaps), side="right").tolist())
    for position, i in enumerate(known):
        ts, values, node = items[i]
        if position in with_gap:
            out[i] = with_markers(ts, values, node)
            continue
        interval = node.interval_ms or 0
        last = int(ts[-1])
        if last < node.newest_batch_ms - TAIL_SLACK_INTERVALS * interval or (
            node.down_at_ms is not None and node.down_at_ms > last
        ):
            out[i] = with_markers(ts, values, node)
    return out
