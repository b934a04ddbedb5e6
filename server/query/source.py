"""The engine's ``SeriesSource`` over dcmon's storage: the series index, then raw samples.

Stage: storage -> promql. A series' labels are the ones /metrics shows for it (its own, its
node's ``instance`` and configured labels; see ``server/history/select.py``) plus
``__name__``. Selection narrows by ``__name__`` (one metric for an equality matcher, else the
index's metric names), then by ``instance`` per node, and parses the labels of the remaining
series only. Samples come from the raw tier through ``Reader.raw``; past the raw retention,
from the rollup tiers as documented samples, and range functions that rollups answer exactly
come from them (``tiers.py``). Pushed samples carry no stale markers; the source adds them where
a scrape would have written them (``staleness.py``), when given a ``StaleRule``.

One source serves one query: it enforces that query's deadline at every read and counts the
samples it loads against the query's limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError

from agent.wire.catalog import Catalog, default_catalog
from server.history.select import instance_filters, node_instance, visible_labels
from server.promql.plan import Matcher, MatchOp
from server.promql.seam import RawSeries, labels_match
from server.promql.values import NAME, IntArray, Labels, VectorSeries, make_labels
from server.query import tiers
from server.query.errors import QueryError
from server.query.staleness import NodeClock, down_at_ms, read_slack_ms, with_markers_all
from server.remote_write.mapping import node_id_of
from server.storage.reader import Reader
from server.storage.series_index import IndexedSeries
from server.storage.store import NodeNaming, Store


@dataclass(frozen=True)
class Deadline:
    """When a query must have finished, on a monotonic clock; ``limit`` names what set it."""

    at: float
    limit: str
    clock: Callable[[], float] = time.monotonic

    @classmethod
    def after(
        cls, seconds: float, limit: str, clock: Callable[[], float] = time.monotonic
    ) -> Deadline:
        return cls(clock() + seconds, limit, clock)

    def check(self, stage: str) -> None:
        """Raises: QueryError (timeout) once the deadline has passed."""
        if self.clock() > self.at:
            raise QueryError("timeout", f"query timed out in {stage} ({self.limit})")


NAMING_MAX_AGE_SECONDS = 2.0
"""How old the store's copy of the node table may be (``server/storage/naming.py``): how late
a query on one replica learns of another replica's node writes."""


@dataclass(frozen=True)
class StaleRule:
    """When a silent node is declared down (the server's ``stale_after_*`` settings), and
    the server's clock (seconds) that judges it."""

    intervals: float
    min_seconds: float
    clock: Callable[[], float] = time.time


@dataclass(frozen=True)
class Found:
    """A selected series: its index entry and its labels (``__name__`` included)."""

    series: IndexedSeries
    labels: Labels


class StorageSource:
    """Series and raw samples of dcmon's storage, for one query."""

    def __init__(
        self,
        store: Store,
        reader: Reader,
        deadline: Deadline,
        max_samples: int,
        stale_rule: StaleRule | None = None,
        catalog: Catalog | None = None,
    ) -> None:
        """Args:
        stale_rule: add stale markers to pushed samples (``staleness.py``); None: leave the
            samples as stored.
        catalog: tells counters from gauges past the raw retention (``tiers.py``); None: the
            catalog shipped with dcmon.
        """
        self._catalog = default_catalog() if catalog is None else catalog
        self._store = store
        self._reader = reader
        self.deadline = deadline
        self._max_samples = max_samples
        self._stale_rule = stale_rule
        self._nodes: dict[int, NodeNaming] | None = None
        self._clocks: dict[int, NodeClock] = {}
        self.samples_loaded = 0

    def select(self, matchers: Sequence[Matcher], start_ms: int, end_ms: int) -> list[RawSeries]:
        """Returns: every matching series with its raw samples in ``[start_ms, end_ms]``.

        Raises: QueryError: timeout past the deadline, execution over the samples limit,
            internal when the database fails.
        """
        self.deadline.check("series selection")
        found = list(self.find(matchers))
        read_end_ms = end_ms
        if self._stale_rule is not None and found:
            nodes = {f.series.node_pk for f in found}
            read_end_ms += max(read_slack_ms(self._clock(pk)) for pk in nodes)
        series = [f.series for f in found]
        counters = {s.id for s in series if tiers.is_counter(s.metric, self._catalog)}
        try:
            front, raw_after = tiers.read_rollups(self._reader, series, counters, start_ms, end_ms)
            data = self._reader.raw(series, max(start_ms, raw_after + 1), read_end_ms)
        except SQLAlchemyError as exc:
            raise QueryError("internal", f"reading samples failed: {exc}") from exc
        loaded = [data[item.series.id] for item in found]
        self.samples_loaded += sum(len(ts) for ts, _ in loaded)
        if self._stale_rule is not None:
            loaded = with_markers_all(
                [
                    (ts, values, self._clock(f.series.node_pk))
                    for f, (ts, values) in zip(found, loaded, strict=True)
                ]
            )
        result = []
        for item, samples in zip(found, loaded, strict=True):
            ts, values = tiers.stitch(front[item.series.id], samples)
            self.samples_loaded += len(front[item.series.id][0])
            if len(ts):
                result.append(RawSeries(item.labels, ts, values))
        self._check_samples()
        self.deadline.check("sample loading")
        return result

    def over_time(
        self, function: str, matchers: Sequence[Matcher], range_ms: int, refs_ms: IntArray
    ) -> list[VectorSeries] | None:
        """The seam's ``RollupSource``: ``function(selector[range_ms])`` at each ref from the
        rollup buckets where they answer it exactly (``tiers.py``), else None.

        Raises: QueryError as ``select``.
        """
        exact = function in tiers.EXACT_FUNCTIONS
        tier = tiers.exact_tier(self._reader, range_ms, refs_ms) if exact else None
        if tier is None:
            return None
        self.deadline.check("series selection")
        found = list(self.find(matchers))
        start_ms, end_ms = int(refs_ms.min()) - range_ms, int(refs_ms.max())
        try:
            data = self._reader.buckets([f.series for f in found], tier, start_ms, end_ms)
        except SQLAlchemyError as exc:
            raise QueryError("internal", f"reading rollups failed: {exc}") from exc
        result = []
        for item in found:
            buckets = data[item.series.id]
            self.samples_loaded += len(buckets)
            answer = tiers.over_time(function, buckets, refs_ms, range_ms)
            if answer is None:
                return None
            if answer[1].any():
                result.append(VectorSeries(item.labels, answer[0], answer[1]))
        self._check_samples()
        self.deadline.check("rollup loading")
        return result

    def _check_samples(self) -> None:
        if self.samples_loaded > self._max_samples:
            raise QueryError(
                "execution",
                "query processing would load too many samples into memory in query execution "
                f"(more than query_max_samples = {self._max_samples})",
            )

    def find(self, matchers: Sequence[Matcher], since_ms: int | None = None) -> Iterator[Found]:
        """Yields: the indexed series whose labels satisfy every matcher; with ``since_ms``,
        only those written at or after it."""
        index = self._store.index
        on_name = [m for m in matchers if m.name == NAME]
        on_instance = [m for m in matchers if m.name == "instance"]
        exact = next((m.value for m in on_name if m.op is MatchOp.EQUAL), None)
        metrics = [exact] if exact is not None else index.metrics()
        nodes = self._naming()
        for metric in metrics:
            if not all(m.matches(metric) for m in on_name):
                continue
            for node_pk, series in index.metric(metric).items():
                node = nodes.get(node_pk)
                if node is None:
                    continue
                instance = node_instance(node)
                if instance_filters(node) and not all(m.matches(instance) for m in on_instance):
                    continue
                for item in series:
                    if since_ms is not None and (index.seen_ms(item.id) or 0) < since_ms:
                        continue
                    visible = visible_labels(instance, node.labels, item.labels())
                    visible[NAME] = metric
                    labels = make_labels(visible)
                    if labels_match(labels, matchers):
                        yield Found(item, labels)

    def _clock(self, node_pk: int) -> NodeClock:
        """Returns: the node's timing for the staleness rules (cached for the query)."""
        clock = self._clocks.get(node_pk)
        if clock is None:
            rule = self._stale_rule
            assert rule is not None
            node = self._naming()[node_pk]
            interval_ms = max(1, round(node.interval_seconds * 1000))
            newest_ms = round(node.last_batch_ts * 1000)
            pushed = node.node_id != node_id_of(node.name)  # else a remote-write node
            down = down_at_ms(
                newest_ms,
                node.last_push,
                node.interval_seconds,
                rule.clock(),
                rule.intervals,
                rule.min_seconds,
            )
            clock = NodeClock(interval_ms if pushed else None, interval_ms, newest_ms, down)
            self._clocks[node_pk] = clock
        return clock

    def _naming(self) -> dict[int, NodeNaming]:
        if self._nodes is None:
            try:
                self._nodes = self._store.node_naming(NAMING_MAX_AGE_SECONDS)
            except SQLAlchemyError as exc:
                raise QueryError("internal", f"reading nodes failed: {exc}") from exc
        return self._nodes
