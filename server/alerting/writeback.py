"""Rule output written back as series: a round's samples, readable in the round and stored.

Stage: alerting -> storage. ``RoundSink`` is the ``SampleSink`` of one group evaluation: it
keeps what the rules wrote, and ``overlay`` gives a source that serves it on top of storage, so
a later rule of the group reads an earlier recording rule's result of the same round (as
Prometheus' rule manager does). After the round the evaluator stores the samples through a
``SeriesWriter``: ``StoreSeriesWriter`` writes them as one batch of the group's server-side
node (``pseudo_nodes``) through the store, like remote-write does, a series' labels kept
exactly (``__name__`` is the metric, every other label the series' own). Values are stored
bit for bit, NaN and the stale markers the rules core writes for a series a round no longer
returns included (so it ends where it ends in Prometheus); every round writes a batch, an
empty one too, so the query source's staleness rules also end such series.
``MemorySeriesWriter`` is the in-memory twin.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Protocol

import numpy as np

from agent.wire.schema import Batch, NodeIdentity
from server.alerting.pseudo_nodes import PseudoNode
from server.promql.plan import Matcher
from server.promql.seam import MemorySeries, RawSeries, SeriesSource, labels_match
from server.promql.values import NAME, Labels
from server.storage.errors import StorageUnavailableError
from server.storage.store import Store

Sample = tuple[Labels, int, float]


class RoundSink:
    """The samples one group evaluation wrote, in order."""

    def __init__(self) -> None:
        self.samples: list[Sample] = []

    def write(self, labels: Labels, ts_ms: int, value: float) -> None:
        self.samples.append((labels, ts_ms, value))

    def overlay(self, base: SeriesSource) -> SeriesSource:
        return _Overlay(base, self)

    def latest(self) -> list[tuple[Labels, float]]:
        """Returns: the last value written per series (what is stored)."""
        last: dict[Labels, float] = {}
        for labels, _ts, value in self.samples:
            last[labels] = value
        return list(last.items())


class _Overlay:
    """Storage plus the round's own samples (the round's sample of a series comes last)."""

    def __init__(self, base: SeriesSource, sink: RoundSink) -> None:
        self._base = base
        self._sink = sink

    def select(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> list[RawSeries]:
        result = self._base.select(matchers, start_ms, end_ms)
        ours: dict[Labels, list[tuple[int, float]]] = defaultdict(list)
        for labels, ts_ms, value in self._sink.samples:
            if start_ms <= ts_ms <= end_ms and labels_match(labels, matchers):
                ours[labels].append((ts_ms, value))
        if not ours:
            return result
        merged: list[RawSeries] = []
        for series in result:
            extra = ours.pop(series.labels, None)
            if extra is None:
                merged.append(series)
                continue
            cut = int(np.searchsorted(series.ts, extra[0][0]))
            ts = np.concatenate([series.ts[:cut], np.array([t for t, _ in extra], dtype=np.int64)])
            values = np.concatenate([series.values[:cut], np.array([v for _, v in extra])])
            merged.append(RawSeries(series.labels, ts, values))
        for labels, extra in ours.items():
            ts = np.array([t for t, _ in extra], dtype=np.int64)
            merged.append(RawSeries(labels, ts, np.array([v for _, v in extra])))
        return merged


class SeriesWriter(Protocol):
    def write(
        self, node: PseudoNode, ts_ms: int, samples: Sequence[tuple[Labels, float]], now: float
    ) -> None:
        """Store ``samples`` at ``ts_ms`` as the batch of ``node``; ``now`` is the
        server's clock in seconds. Raises: StorageUnavailableError."""
        ...


Family = tuple[str, list[tuple[dict[str, str], float]]]


def families(samples: Sequence[tuple[Labels, float]]) -> list[Family]:
    """Returns: the samples as the store's metric families (``__name__`` -> own labels)."""
    grouped: dict[str, list[tuple[dict[str, str], float]]] = defaultdict(list)
    for labels, value in samples:
        own = dict(labels)
        metric = own.pop(NAME, "")
        if metric:
            grouped[metric].append((own, value))
    return sorted(grouped.items())


class StoreSeriesWriter:
    """Writes through the store: one batch per node and round (never limited in series)."""

    def __init__(self, store: Store, timeout_seconds: float = 30.0) -> None:
        self._store = store
        self._timeout = timeout_seconds

    def write(
        self, node: PseudoNode, ts_ms: int, samples: Sequence[tuple[Labels, float]], now: float
    ) -> None:
        batch = Batch(
            node=NodeIdentity(node_id=node.node_id, name=node.name, hostname=node.name),
            seq=max(1, ts_ms),
            timestamp=max(ts_ms, 1) / 1000,
            interval_seconds=node.interval_seconds,
        )
        pending = self._store.start_write(
            batch, families(samples), received_at=now, timeout_seconds=self._timeout
        )
        pending.result()


class MemorySeriesWriter:
    """The in-memory twin: every write into a ``MemorySeries`` (labels exactly as written)."""

    def __init__(self) -> None:
        self.series = MemorySeries()
        self.batches: list[tuple[str, int, int]] = []  # node name, ts_ms, samples
        self.fail = False

    def write(
        self, node: PseudoNode, ts_ms: int, samples: Sequence[tuple[Labels, float]], now: float
    ) -> None:
        if self.fail:
            raise StorageUnavailableError("memory writer failing")
        self.batches.append((node.name, ts_ms, len(samples)))
        for labels, value in samples:
            self.series.add(labels, [ts_ms], [value])
