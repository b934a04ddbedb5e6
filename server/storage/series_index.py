"""The series index: every stored series in memory, by key, by metric and node, by label, and by
when it was last written.

Stage: storage. Ingest resolves each sample's series id here; queries select series here
instead of scanning the ``series`` table. Label sets are kept as their canonical JSON (one string
per series) and parsed only for the series a query looks at.

The ingest fast path: agents send the same series in the same order every tick, so for each node
the index remembers the last batch's label list and ids per family; when a family's label list
equals the remembered one (one list comparison in C), its ids are reused without building keys.

Series leave the index when the lifecycle (``lifecycle.py``) deletes them, and when a write
finds that another server process deleted them.

Thread safety: the writer thread adds, touches and forgets series; query threads read. Readers
take a snapshot of one metric's entries under the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from server.storage.layouts import Layout

Labels = Mapping[str, str]
MINUTE_MS = 60_000


_CANONICAL = msgspec.json.Encoder(order="sorted")
_LABELS = msgspec.json.Decoder(dict[str, str])


def canonical_labels(labels: Labels) -> str:
    """Returns: the label set as compact JSON with sorted keys (the series key): exactly
    ``json.dumps(labels, sort_keys=True, separators=(",", ":"), ensure_ascii=False)``, the
    text every stored series row holds (a test holds the two to the same bytes), made by
    msgspec in a tenth of the time: a new node's first batch makes hundreds of them."""
    return _CANONICAL.encode(labels).decode()


@dataclass(frozen=True)
class IndexedSeries:
    id: int
    node_pk: int
    metric: str
    labels_json: str

    def labels(self) -> dict[str, str]:
        return _LABELS.decode(self.labels_json)


class SeriesIndex:
    """In-memory index of the ``series`` table, with each series' last write (``last_seen_ms``).

    Each node's series are also counted per minute of their last write, so the number of a
    node's series written since a moment (its *active* series, what the per-node limit counts)
    is a sum over the minutes since then, not a scan of the node's series.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_id: dict[int, IndexedSeries] = {}
        self._ids: dict[tuple[int, str, str], int] = {}
        self._by_metric: dict[str, dict[int, dict[int, IndexedSeries]]] = {}
        self._by_node: dict[int, dict[int, IndexedSeries]] = {}
        # Label names per metric and values per name, each with the number of series that
        # have it, so that forgetting the last series of a value forgets the value.
        self._label_names: dict[str, dict[str, int]] = {}
        self._label_values: dict[str, dict[str, int]] = {}
        self._layouts: dict[int, dict[str, tuple[list[Labels], list[int]]]] = {}
        self._books: dict[str, Layout] = {}
        """node id -> the node's layout for compact batches (``layouts.py``)."""
        self._book_of_node: dict[int, str] = {}
        self._seen: dict[int, int] = {}
        self._seen_minutes: dict[int, dict[int, int]] = {}
        """node pk -> minute (Unix ms // 60,000) of a last write -> series written last then."""

    def add(self, series: Iterable[IndexedSeries], seen_ms: int | Mapping[int, int]) -> None:
        """Add series (ignoring ones already known) last written at ``seen_ms`` (one time for
        all, or one per series id)."""
        with self._lock:
            for item in series:
                key = (item.node_pk, item.metric, item.labels_json)
                if key in self._ids:
                    continue
                self._ids[key] = item.id
                self._by_id[item.id] = item
                self._by_metric.setdefault(item.metric, {}).setdefault(item.node_pk, {})[
                    item.id
                ] = item
                self._by_node.setdefault(item.node_pk, {})[item.id] = item
                names = self._label_names.setdefault(item.metric, {})
                for name, value in item.labels().items():
                    names[name] = names.get(name, 0) + 1
                    values = self._label_values.setdefault(name, {})
                    values[value] = values.get(value, 0) + 1
                seen = seen_ms if isinstance(seen_ms, int) else seen_ms[item.id]
                self._seen[item.id] = seen
                _count(self._seen_minutes.setdefault(item.node_pk, {}), seen // MINUTE_MS, 1)

    def forget(self, ids: Iterable[int]) -> list[IndexedSeries]:
        """Remove series by id (unknown ids are skipped); returns the ones removed.

        The remembered layouts of their nodes are dropped too, so that no fast-path lookup can
        hand out a forgotten id.
        """
        removed: list[IndexedSeries] = []
        with self._lock:
            for series_id in ids:
                item = self._by_id.pop(series_id, None)
                if item is None:
                    continue
                removed.append(item)
                del self._ids[(item.node_pk, item.metric, item.labels_json)]
                _pop_nested(self._by_metric, item.metric, item.node_pk, item.id)
                _pop_nested(self._by_node, item.node_pk, item.id)
                names = self._label_names[item.metric]
                for name, value in item.labels().items():
                    _count(names, name, -1)
                    _count(self._label_values[name], value, -1)
                    if not self._label_values[name]:
                        del self._label_values[name]
                if not names:
                    del self._label_names[item.metric]
                seen = self._seen.pop(item.id)
                minutes = self._seen_minutes[item.node_pk]
                _count(minutes, seen // MINUTE_MS, -1)
                if not minutes:
                    del self._seen_minutes[item.node_pk]
                self._layouts.pop(item.node_pk, None)
                node_id = self._book_of_node.pop(item.node_pk, None)
                if node_id is not None:
                    self._books.pop(node_id, None)
        return removed

    def ids(self) -> list[int]:
        """Returns: a snapshot of every series id."""
        with self._lock:
            return list(self._by_id)

    def get(self, series_id: int) -> IndexedSeries | None:
        return self._by_id.get(series_id)

    def seen_ms(self, series_id: int) -> int | None:
        """Returns: when the series was last written as far as this index knows (Unix ms)."""
        return self._seen.get(series_id)

    def stale(self, ids: Iterable[int], before_ms: int) -> list[int]:
        """Returns: those of ``ids`` (known ones) last written before ``before_ms``."""
        seen = self._seen
        return [series_id for series_id in ids if seen.get(series_id, before_ms) < before_ms]

    def touch(self, ids: Iterable[int], seen_ms: int) -> None:
        """Record that the series were written at ``seen_ms`` (an older time is ignored)."""
        with self._lock:
            for series_id in ids:
                old = self._seen.get(series_id)
                if old is None or old >= seen_ms:
                    continue
                self._seen[series_id] = seen_ms
                minutes = self._seen_minutes[self._by_id[series_id].node_pk]
                _count(minutes, old // MINUTE_MS, -1)
                _count(minutes, seen_ms // MINUTE_MS, 1)

    def active_count(self, node_pk: int, since_ms: int, until_ms: int) -> int:
        """Returns: how many of the node's series were last written in [since_ms, until_ms],
        to the minute (a sum over the minutes between, at most a few hundred lookups)."""
        minutes = self._seen_minutes.get(node_pk)
        if not minutes:
            return 0
        with self._lock:
            first, last = since_ms // MINUTE_MS, until_ms // MINUTE_MS
            if last - first + 1 > len(minutes):
                return sum(n for minute, n in minutes.items() if first <= minute <= last)
            return sum(minutes.get(minute, 0) for minute in range(first, last + 1))

    def lookup(self, node_pk: int, metric: str, labels_json: str) -> int | None:
        return self._ids.get((node_pk, metric, labels_json))

    def layout(self, node_pk: int, metric: str, labels: list[Labels]) -> list[int] | None:
        """Returns: the ids of the node's last batch for this family, if its labels are equal."""
        remembered = self._layouts.get(node_pk, {}).get(metric)
        if remembered is not None and remembered[0] == labels:
            return remembered[1]
        return None

    def remember_layout(
        self,
        node_pk: int,
        layout: dict[str, tuple[list[Labels], list[int]]],
        merge: bool = False,
    ) -> None:
        """Remember the node's last batch per family (``merge``: only these families; the
        others stay as they were, for a compact batch's few families of its own)."""
        if merge:
            self._layouts.setdefault(node_pk, {}).update(layout)
        else:
            self._layouts[node_pk] = layout

    def book(self, node_id: str) -> Layout | None:
        """Returns: the node's layout for compact batches, if this process holds one."""
        return self._books.get(node_id)

    def keep_book(self, node_id: str, layout: Layout) -> None:
        """Make ``layout`` the node's layout (after the commit of the batch it came from)."""
        with self._lock:
            by_id = self._by_id
            if not all(series_id in by_id for series_id in layout.ids):
                return  # some were forgotten meanwhile: no layout hands out a forgotten id
            previous = self._book_of_node.pop(layout.node_pk, None)
            if previous is not None:
                self._books.pop(previous, None)
            self._books[node_id] = layout
            self._book_of_node[layout.node_pk] = node_id

    def metric(self, metric: str) -> dict[int, list[IndexedSeries]]:
        """Returns: a snapshot of node pk -> that node's series of ``metric``."""
        with self._lock:
            return {
                node: list(series.values())
                for node, series in self._by_metric.get(metric, {}).items()
            }

    def node(self, node_pk: int) -> list[IndexedSeries]:
        """Returns: a snapshot of every series of one node."""
        with self._lock:
            return list(self._by_node.get(node_pk, {}).values())

    def node_count(self, node_pk: int) -> int:
        """Returns: how many series the node has (active or not), without a snapshot."""
        return len(self._by_node.get(node_pk, ()))

    def metrics(self) -> list[str]:
        with self._lock:
            return sorted(name for name, nodes in self._by_metric.items() if nodes)

    def label_names(self, metric: str | None = None) -> set[str]:
        with self._lock:
            if metric is not None:
                return set(self._label_names.get(metric, ()))
            return set(self._label_values)

    def label_values(self, name: str) -> set[str]:
        with self._lock:
            return set(self._label_values.get(name, ()))

    def __len__(self) -> int:
        return len(self._ids)


def _count(counts: dict[Any, int], key: Any, delta: int) -> None:
    """Add ``delta`` to ``counts[key]``, removing the key when it reaches zero."""
    value = counts.get(key, 0) + delta
    if value:
        counts[key] = value
    else:
        counts.pop(key, None)


def _pop_nested(mapping: dict[Any, Any], *keys: Any) -> None:
    """Delete ``mapping[k1]...[kn]``, and every level it leaves empty."""
    *outer, last = keys
    levels = [mapping]
    for key in outer:
        levels.append(levels[-1][key])
    del levels[-1][last]
    for level, key in zip(reversed(levels[:-1]), reversed(outer), strict=True):
        if level[key]:
            break
        del level[key]


class RepeatedSeriesError(ValueError):
    """A family of one batch has two samples with the same label set."""

    def __init__(self, metric: str) -> None:
        super().__init__(f"metric family {metric!r} repeats a series (same labels)")
        self.metric = metric


def family_ids(
    index: SeriesIndex, node_pk: int, metric: str, labels: Sequence[Labels]
) -> tuple[list[int | None], list[str]]:
    """Returns: per sample its known series id or None, and per sample its canonical labels
    (computed only for the family when the fast path misses; empty list on a fast-path hit).

    Raises:
        RepeatedSeriesError: two samples of the family have the same labels. (A fast-path hit
            equals a label list that was stored before, so it was checked then.)
    """
    as_list = list(labels)
    ids = index.layout(node_pk, metric, as_list)
    if ids is not None:
        return list(ids), []
    keys = [canonical_labels(item) for item in as_list]
    if len(set(keys)) != len(keys):
        raise RepeatedSeriesError(metric)
    return [index.lookup(node_pk, metric, key) for key in keys], keys
