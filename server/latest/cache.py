"""The latest-value cache: each node's newest batch, for /metrics, the web page and the API.

Stage: ingest -> latest -> exposition / web. Updated from the same path that stores a batch,
after the commit. A node's newest batch replaces its previous one wholesale, so a series the
agent stopped sending (a lost GPU, an unmounted filesystem) disappears at once; an older batch
arriving late (replay after an outage) never overwrites a newer one.

Each node's clock skew (its wall clock minus the server's when it last sent a request, from the
agent's ``X-Dcmon-Sent-At`` header) rides along: it is about the request, not the batch, so a
replayed old batch updates it too, and a request without the header leaves it as it was.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

FamilySamples = Sequence[tuple[Mapping[str, str], float]]


@dataclass(frozen=True)
class NodeLatest:
    """One node's newest batch and when it arrived."""

    node_id: str
    name: str
    labels: Mapping[str, str]
    interval_seconds: float
    last_push: float
    batch_ts: float
    seq: int
    families: Mapping[str, FamilySamples]
    clock_skew_seconds: float | None = None
    """The node's clock minus the server's at its last request (positive: node ahead)."""

    def value(self, metric: str, **labels: str) -> float | None:
        """Returns: the value of the first sample of ``metric`` whose labels include ``labels``."""
        for sample_labels, value in self.families.get(metric, ()):
            if all(sample_labels.get(key) == wanted for key, wanted in labels.items()):
                return value
        return None


@dataclass(frozen=True)
class StalePolicy:
    """When a silent node counts as down and its series leave /metrics."""

    intervals: float
    min_seconds: float
    forget_after_seconds: float

    def is_up(self, node: NodeLatest, now: float) -> bool:
        return now - node.last_push <= max(self.intervals * node.interval_seconds, self.min_seconds)

    def is_forgotten(self, node: NodeLatest, now: float) -> bool:
        return now - node.last_push > self.forget_after_seconds


class LatestCache:
    """Thread-safe map node id -> newest batch."""

    def __init__(self) -> None:
        self._nodes: dict[str, NodeLatest] = {}
        self._ids_by_name: dict[str, set[str]] = {}
        self._lock = threading.Lock()

    def update(self, latest: NodeLatest) -> bool:
        """Keep ``latest`` unless a newer batch of the node is already here.

        Returns:
            True if the cache now holds ``latest``.
        """
        with self._lock:
            current = self._nodes.get(latest.node_id)
            if current is not None and latest.clock_skew_seconds is None:
                latest = replace(latest, clock_skew_seconds=current.clock_skew_seconds)
            if current is not None and current.batch_ts > latest.batch_ts:
                # An older batch (a replay) still proves the node is alive.
                self._nodes[latest.node_id] = replace(
                    current,
                    last_push=max(current.last_push, latest.last_push),
                    clock_skew_seconds=latest.clock_skew_seconds,
                )
                return False
            if current is not None and current.name != latest.name:
                self._ids_by_name.get(current.name, set()).discard(latest.node_id)
            self._nodes[latest.node_id] = latest
            self._ids_by_name.setdefault(latest.name, set()).add(latest.node_id)
            return True

    def touch(
        self, node_id: str, last_push: float, clock_skew_seconds: float | None = None
    ) -> bool:
        """Record that the node is alive without new data (a re-sent batch).

        Returns:
            False if the node is not in the cache.
        """
        with self._lock:
            current = self._nodes.get(node_id)
            if current is None:
                return False
            skew = current.clock_skew_seconds if clock_skew_seconds is None else clock_skew_seconds
            self._nodes[node_id] = replace(
                current, last_push=max(current.last_push, last_push), clock_skew_seconds=skew
            )
            return True

    def set_clock_skew(self, node_id: str, clock_skew_seconds: float) -> None:
        """Record a known node's clock skew alone (from a request whose batch was refused)."""
        with self._lock:
            current = self._nodes.get(node_id)
            if current is not None:
                self._nodes[node_id] = replace(current, clock_skew_seconds=clock_skew_seconds)

    def forget(self, node_id: str) -> None:
        with self._lock:
            node = self._nodes.pop(node_id, None)
            if node is not None:
                self._ids_by_name.get(node.name, set()).discard(node_id)

    def named(self, name: str) -> list[NodeLatest]:
        """Returns: every node (by id) that last reported under ``name``."""
        with self._lock:
            return [self._nodes[node_id] for node_id in self._ids_by_name.get(name, ())]

    def nodes(self) -> list[NodeLatest]:
        """Returns: a snapshot of every node, sorted by name."""
        with self._lock:
            snapshot = list(self._nodes.values())
        return sorted(snapshot, key=lambda node: (node.name, node.node_id))

    def get(self, node_id: str) -> NodeLatest | None:
        with self._lock:
            return self._nodes.get(node_id)
