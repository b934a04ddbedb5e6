"""The series index: every stored series in memory, by key, by metric and node, and by label.

Stage: storage. Ingest resolves each sample's series id here; queries select series here
instead of scanning the ``series`` table. Label sets are kept as their canonical JSON (one string
per series) and parsed only for the series a query looks at.

The ingest fast path: agents send the same series in the same order every tick, so for each node
the index remembers the last batch's label list and ids per family; when a family's label list
equals the remembered one (one list comparison in C), its ids are reused without building keys.

Thread safety: the writer thread adds series (after their commit); query threads read. Readers
take a snapshot of one metric's entries under the lock.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

Labels = Mapping[str, str]


def canonical_labels(labels: Labels) -> str:
    """Returns: the label set as compact JSON with sorted keys (the series key)."""
    return json.dumps(labels, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True)
class IndexedSeries:
    id: int
    node_pk: int
    metric: str
    labels_json: str

    def labels(self) -> dict[str, str]:
        parsed: dict[str, str] = json.loads(self.labels_json)
        return parsed


class SeriesIndex:
    """In-memory index of the ``series`` table."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ids: dict[tuple[int, str, str], int] = {}
        self._by_metric: dict[str, dict[int, list[IndexedSeries]]] = {}
        self._by_node: dict[int, list[IndexedSeries]] = {}
        self._label_names: dict[str, set[str]] = {}
        self._label_values: dict[str, set[str]] = {}
        self._layouts: dict[int, dict[str, tuple[list[Labels], list[int]]]] = {}

    def add(self, series: Iterable[IndexedSeries]) -> None:
        with self._lock:
            for item in series:
                key = (item.node_pk, item.metric, item.labels_json)
                if key in self._ids:
                    continue
                self._ids[key] = item.id
                self._by_metric.setdefault(item.metric, {}).setdefault(item.node_pk, []).append(
                    item
                )
                self._by_node.setdefault(item.node_pk, []).append(item)
                names = self._label_names.setdefault(item.metric, set())
                for name, value in item.labels().items():
                    names.add(name)
                    self._label_values.setdefault(name, set()).add(value)

    def forget_node(self, node_pk: int) -> None:
        with self._lock:
            self._layouts.pop(node_pk, None)
            self._by_node.pop(node_pk, None)
            for key in [key for key in self._ids if key[0] == node_pk]:
                del self._ids[key]
            for nodes in self._by_metric.values():
                nodes.pop(node_pk, None)

    def lookup(self, node_pk: int, metric: str, labels_json: str) -> int | None:
        return self._ids.get((node_pk, metric, labels_json))

    def layout(self, node_pk: int, metric: str, labels: list[Labels]) -> list[int] | None:
        """Returns: the ids of the node's last batch for this family, if its labels are equal."""
        remembered = self._layouts.get(node_pk, {}).get(metric)
        if remembered is not None and remembered[0] == labels:
            return remembered[1]
        return None

    def remember_layout(
        self, node_pk: int, layout: dict[str, tuple[list[Labels], list[int]]]
    ) -> None:
        self._layouts[node_pk] = layout

    def metric(self, metric: str) -> dict[int, list[IndexedSeries]]:
        """Returns: a snapshot of node pk -> that node's series of ``metric``."""
        with self._lock:
            return {node: list(series) for node, series in self._by_metric.get(metric, {}).items()}

    def node(self, node_pk: int) -> list[IndexedSeries]:
        """Returns: a snapshot of every series of one node."""
        with self._lock:
            return list(self._by_node.get(node_pk, ()))

    def node_count(self, node_pk: int) -> int:
        """Returns: how many series the node has (its cardinality), without a snapshot."""
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
