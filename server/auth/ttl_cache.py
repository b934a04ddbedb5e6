"""A small, thread-safe cache of database answers that are trusted for a while.

Stage: auth. Bearer-token lookups (``verifier.DatabaseAuthenticator``) and web-session checks
(``session.SessionService``) keep what the database said for ``ttl_seconds``, so that a
revocation reaches another replica within that bound. A change made through this process
empties the cache at once (``clear``/``discard``); a lookup that raced such a change must not
put back what it read before it, so ``put`` takes the generation read before the lookup
and keeps nothing when it has moved on. Bounded: past ``max_entries`` it starts again empty.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class Hit(Generic[V]):
    value: V


class TtlCache(Generic[K, V]):
    def __init__(
        self, ttl_seconds: float, monotonic: Callable[[], float], max_entries: int = 100_000
    ) -> None:
        self._ttl = ttl_seconds
        self._monotonic = monotonic
        self._max = max_entries
        self._items: dict[K, tuple[float, V]] = {}
        self._generation = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> Hit[V] | None:
        """Returns: the value kept for ``key`` while it is fresh, else None."""
        with self._lock:
            entry = self._items.get(key)
        if entry is None or self._monotonic() - entry[0] >= self._ttl:
            return None
        return Hit(entry[1])

    def generation(self) -> int:
        """Returns: the generation to hand to ``put`` after the lookup that follows."""
        with self._lock:
            return self._generation

    def put(self, key: K, value: V, generation: int, fetched_at: float) -> None:
        """Keep ``value`` (read at monotonic ``fetched_at``) unless the cache was cleared since
        ``generation`` was read, or caching is off (``ttl_seconds`` 0)."""
        with self._lock:
            if generation != self._generation or self._ttl <= 0:
                return
            if len(self._items) >= self._max:
                self._items.clear()
            self._items[key] = (fetched_at, value)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._generation += 1

    def discard(self, key: K) -> None:
        with self._lock:
            self._items.pop(key, None)
            self._generation += 1
