"""A process-wide copy of every node's naming and push timing, kept current by the writes.

Stage: storage -> query. Every PromQL query needs each node's name, labels and push timing
(``NodeNaming``); reading the node table per query costs milliseconds at a thousand nodes. The
copy is read once, then each batch this process writes updates its node's entry once its
transaction has committed (never before: a query must not learn of a batch whose samples it
cannot read yet, or every series of the node would look missing from it). A node this copy does
not know (a new one) drops the copy, so the next query reads the table again. An update may land
a moment after the push was acknowledged; a query in that moment sees the node's previous
timing, which is right for every sample that query can read. Other replicas' writes are not
seen here: the copy is re-read once it is ``max_age_seconds`` old, which bounds how late a
replica learns of them.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import replace

from agent.wire.schema import Batch
from server.storage.records import NodeNaming


class NamingCache:
    """Node pk -> ``NodeNaming``, read through ``load`` and updated by the write path."""

    def __init__(
        self,
        load: Callable[[], dict[int, NodeNaming]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load = load
        self._clock = clock
        self._lock = threading.Lock()
        self._naming: dict[int, NodeNaming] | None = None
        self._read_at = 0.0

    def get(self, max_age_seconds: float) -> dict[int, NodeNaming]:
        """Returns: the naming of every node (a dict the caller must not change)."""
        with self._lock:
            naming = self._naming
            if naming is not None and self._clock() - self._read_at <= max_age_seconds:
                return naming
        fresh = self._load()
        with self._lock:
            self._naming, self._read_at = fresh, self._clock()
        return fresh

    def note_write(self, node_pk: int, batch: Batch, received_at: float) -> None:
        """Records a batch written for ``node_pk`` (a node unknown here drops the copy)."""
        with self._lock:
            naming = self._naming
            if naming is None:
                return
            current = naming.get(node_pk)
            if current is None:
                self._naming = None
                return
            updated = replace(
                current,
                name=batch.node.name,
                labels=dict(batch.node.labels),
                interval_seconds=batch.interval_seconds,
                last_push=received_at,
                last_batch_ts=max(current.last_batch_ts, batch.timestamp),
            )
            # In place: a known key keeps the dict's size, so a query iterating it is safe.
            naming[node_pk] = updated

    def invalidate(self) -> None:
        with self._lock:
            self._naming = None
