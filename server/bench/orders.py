"""The push answer's benchmark order: which nodes have an open request, kept in memory.

Stage: bench requests (database) -> (this) -> ingest's answers. Ingest is the hot path, so an
answer must not query the database: ``order_for(node_id)`` is a dict lookup in a snapshot of the
open requests, re-read from the database at most every ``refresh_seconds`` (the first push
after that reads it, one small query over the open rows' index; concurrent pushes meanwhile
keep using the previous snapshot). So a request created, cancelled or finished on another
replica reaches this replica's answers within ``refresh_seconds``; on this replica a write
marks the snapshot stale and the next answer re-reads it. A request past its deadline is left
out of the snapshot, and its expiry is queued to the writer without waiting.

A failed re-read (the database away) keeps the previous snapshot until the next try: orders
are a convenience of the answer and must never fail a push.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from contextlib import suppress

from sqlalchemy.exc import SQLAlchemyError

from agent.wire.bench import BenchOrder
from server.bench.model import NOT_STARTED
from server.bench.requests import RequestStore
from server.storage.writer import WriterClosedError

_log = logging.getLogger(__name__)
DEFAULT_REFRESH_SECONDS = 2.0


class OrderCache:
    """Node id -> its open request's order. Thread safety: any thread may call any method."""

    def __init__(
        self,
        requests: RequestStore,
        clock: Callable[[], float],
        refresh_seconds: float = DEFAULT_REFRESH_SECONDS,
    ) -> None:
        self._requests = requests
        self._clock = clock
        self._refresh_seconds = refresh_seconds
        self._orders: dict[str, BenchOrder] = {}
        self._loaded_at = float("-inf")
        self._wanted = 0  # bumped by every local write
        self._loaded = -1  # the generation the snapshot was read at
        self._lock = threading.Lock()
        self.refreshes = 0
        self.failures = 0

    def order_for(self, node_id: str | None) -> BenchOrder | None:
        """Returns: the order for ``node_id``'s open request, or None (never raises)."""
        if node_id is None:
            return None
        if self._loaded != self._wanted or self._clock() - self._loaded_at >= self._refresh_seconds:
            self._refresh()
        return self._orders.get(node_id)

    def invalidate(self) -> None:
        """A request changed on this replica: re-read before the next answer."""
        self._wanted += 1

    def _refresh(self) -> None:
        # A local write must be seen by the next answer, so that wait is worth it; a refresh
        # due by time alone is left to whichever push got the lock.
        stale = self._loaded != self._wanted
        if not self._lock.acquire(blocking=stale):
            return
        try:
            generation, now = self._wanted, self._clock()
            if self._loaded == generation and now - self._loaded_at < self._refresh_seconds:
                return  # another thread refreshed while this one waited
            try:
                found = self._requests.open_requests()
            except SQLAlchemyError as exc:
                self.failures += 1
                self._loaded_at = now
                _log.warning("reading open benchmark requests failed: %s", exc)
                return
            orders: dict[str, BenchOrder] = {}
            due = False
            for request in found:
                past_start = request.state in NOT_STARTED and now > request.expires_at
                if request.deadline_at < now or past_start:
                    due = True
                    continue
                orders[request.node_id] = request.order()
            self._orders = orders
            self._loaded, self._loaded_at = generation, now
            self.refreshes += 1
            if due:
                with suppress(WriterClosedError):  # shutting down
                    self._requests.expire_later(now)
        finally:
            self._lock.release()
