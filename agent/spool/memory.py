"""A spool in memory: bounded by bytes, drops the oldest batch when full.

Survives server outages as long as the agent runs and the budget lasts; not agent restarts.
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from agent.spool.base import SpooledBatch, SpoolStats

_log = logging.getLogger(__name__)


class MemorySpool:
    """FIFO of encoded batches holding at most ``max_bytes`` of payload."""

    def __init__(self, max_bytes: int) -> None:
        self._max_bytes = max_bytes
        self._queue: deque[SpooledBatch] = deque()
        self._bytes = 0
        self._dropped_batches = 0
        self._dropped_bytes = 0
        self._lock = threading.Lock()

    def append(self, batch: SpooledBatch) -> None:
        with self._lock:
            self._queue.append(batch)
            self._bytes += len(batch.payload)
            while self._bytes > self._max_bytes and len(self._queue) > 1:
                dropped = self._queue.popleft()
                self._bytes -= len(dropped.payload)
                self._dropped_batches += 1
                self._dropped_bytes += len(dropped.payload)
                if self._dropped_batches == 1 or self._dropped_batches % 100 == 0:
                    _log.warning(
                        "spool over its budget of %d bytes: dropped the oldest batch (seq %d); "
                        "%d dropped so far",
                        self._max_bytes,
                        dropped.seq,
                        self._dropped_batches,
                    )

    def peek(self) -> SpooledBatch | None:
        with self._lock:
            return self._queue[0] if self._queue else None

    def peek_many(self, limit: int, max_bytes: int) -> list[SpooledBatch]:
        with self._lock:
            taken: list[SpooledBatch] = []
            size = 0
            for batch in self._queue:
                if len(taken) >= limit or (taken and size + len(batch.payload) > max_bytes):
                    break
                taken.append(batch)
                size += len(batch.payload)
            return taken

    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def ack(self, batch: SpooledBatch) -> None:
        with self._lock:
            if self._queue and self._queue[0] is batch:
                self._queue.popleft()
                self._bytes -= len(batch.payload)
            # Otherwise it was dropped for space while being sent: nothing to forget.

    def reject(self, batch: SpooledBatch, reason: str) -> None:
        """Forget it (the shipper has logged the reason); memory keeps nothing for later."""
        self.ack(batch)

    def stats(self, now_monotonic: float) -> SpoolStats:
        with self._lock:
            oldest = now_monotonic - self._queue[0].created_monotonic if self._queue else 0.0
            return SpoolStats(
                batches=len(self._queue),
                bytes=self._bytes,
                oldest_age_seconds=max(oldest, 0.0),
                dropped_batches_total=self._dropped_batches,
                dropped_bytes_total=self._dropped_bytes,
                budget_bytes=self._max_bytes,
            )

    def close(self) -> None:
        """Nothing to release."""
