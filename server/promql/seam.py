"""The storage seam: how the evaluator reads raw samples, and its in-memory twin.

``SeriesSource.select(matchers, start_ms, end_ms)`` returns every series whose labels satisfy all
matchers, with its samples in ``[start_ms, end_ms]`` (both inclusive, ascending by time; stale
markers included as the StaleNaN bit pattern). A source that holds native histograms marks those
samples in ``RawSeries.histogram`` (their value is ignored); the engine never evaluates them but
drops, counts or refuses them as Prometheus' operations would (histograms.py). The engine asks
for a little more than it needs and windows precisely itself, so a source may return extra
samples outside the range.

A source may also implement ``RollupSource``: it answers some range functions over a plain
matrix selector (``max_over_time(x[1h])``) per step from pre-aggregated data where that is
exact, and None where it is not; the engine then evaluates the call from samples as usual.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from server.promql.plan import At, Call, Matcher, MatrixSelector
from server.promql.values import (
    BoolArray,
    FloatArray,
    IntArray,
    Labels,
    Vector,
    VectorSeries,
    get_label,
    make_labels,
)


@dataclass(frozen=True)
class RawSeries:
    """One stored series: ``ts`` int64 ms ascending, ``values`` float64 (may hold StaleNaN),
    ``histogram`` True where a sample is a native histogram (None: all floats)."""

    labels: Labels
    ts: IntArray
    values: FloatArray
    histogram: BoolArray | None = None


class SeriesSource(Protocol):
    def select(
        self, matchers: Sequence[Matcher], start_ms: int, end_ms: int
    ) -> list[RawSeries]: ...


@runtime_checkable
class RollupSource(Protocol):
    def over_time(
        self, function: str, matchers: Sequence[Matcher], range_ms: int, refs_ms: IntArray
    ) -> list[VectorSeries] | None:
        """Returns: ``function(selector[range_ms])`` evaluated at each of ``refs_ms`` (offset and
        ``@`` applied), one series per selected series with a present step, or None when the
        source cannot answer it exactly."""
        ...


def rollup_answer(
    source: object, call: Call, refs: Callable[[At | None, int], IntArray]
) -> Vector | None:
    """Returns: the call's value from a ``RollupSource`` when it is a one-argument function of a
    matrix selector that the source answers exactly, else None. ``refs(at, offset_ms)`` gives
    the per-step times a selector reads at."""
    if not isinstance(source, RollupSource) or len(call.args) != 1:
        return None
    arg = call.args[0]
    if not isinstance(arg, MatrixSelector):
        return None
    selector = arg.selector
    at_ms = refs(selector.at, selector.offset_ms)
    series = source.over_time(call.name, selector.matchers, arg.range_ms, at_ms)
    return None if series is None else Vector(series)


def labels_match(labels: Labels, matchers: Sequence[Matcher]) -> bool:
    """Returns: whether ``labels`` satisfy every matcher (an absent label reads as ``""``)."""
    return all(m.matches(get_label(labels, m.name)) for m in matchers)


class MemorySeries:
    """Series held in memory, in insertion order; the twin of the real storage for tests."""

    def __init__(self) -> None:
        self._series: dict[Labels, tuple[IntArray, FloatArray, BoolArray]] = {}

    def add(
        self,
        labels: Labels | Mapping[str, str],
        ts: Sequence[int] | IntArray,
        values: Sequence[float] | FloatArray,
        histogram: Sequence[bool] | BoolArray | None = None,
    ) -> None:
        """Adds samples to a series; a sample at an existing timestamp replaces the old one.
        ``histogram`` marks samples that are native histograms (their value is ignored)."""
        key = make_labels(labels) if isinstance(labels, Mapping) else labels
        new_ts = np.asarray(ts, dtype=np.int64)
        new_values = np.asarray(values, dtype=np.float64)
        new_hist = (
            np.zeros(len(new_ts), dtype=bool)
            if histogram is None
            else np.asarray(histogram, dtype=bool)
        )
        if not len(new_ts) == len(new_values) == len(new_hist):
            raise ValueError("ts, values and histogram must have the same length")
        if key in self._series:
            old_ts, old_values, old_hist = self._series[key]
            new_ts = np.concatenate([old_ts, new_ts])
            new_values = np.concatenate([old_values, new_values])
            new_hist = np.concatenate([old_hist, new_hist])
        # Stable sort, then keep the last sample of each timestamp (the newest write wins).
        order = np.argsort(new_ts, kind="stable")
        new_ts, new_values, new_hist = new_ts[order], new_values[order], new_hist[order]
        keep = np.ones(len(new_ts), dtype=bool)
        keep[:-1] = new_ts[1:] != new_ts[:-1]
        self._series[key] = (new_ts[keep], new_values[keep], new_hist[keep])

    def replace(
        self,
        labels: Labels | Mapping[str, str],
        ts: Sequence[int] | IntArray,
        values: Sequence[float] | FloatArray,
    ) -> None:
        """Sets a series' samples, discarding what it held."""
        key = make_labels(labels) if isinstance(labels, Mapping) else labels
        self._series.pop(key, None)
        self.add(key, ts, values)

    def clear(self) -> None:
        self._series.clear()

    def select(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> list[RawSeries]:
        result = []
        for labels, (ts, values, hist) in self._series.items():
            if not labels_match(labels, matchers):
                continue
            lo = int(np.searchsorted(ts, start_ms, side="left"))
            hi = int(np.searchsorted(ts, end_ms, side="right"))
            if hi > lo:
                marks = hist[lo:hi] if hist[lo:hi].any() else None
                result.append(RawSeries(labels, ts[lo:hi], values[lo:hi], marks))
        return result
