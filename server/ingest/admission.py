"""Ingest admission: at most a set number of ingest requests at once; the rest come back later.

Stage: transport -> ingest. After an outage a whole fleet replays its spool at once; taking every
request would pile bodies up in memory and queue writes behind each other until they time out.
So a request beyond the limit is answered at once with 429 and a ``Retry-After`` in whole
seconds, jittered between the base and twice the base so that refused agents do not return in
step. The same header goes with 503 when storage is unavailable.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from server.errors import ApiError


class Admission:
    """Counts ingest requests in progress (single and bulk together)."""

    def __init__(
        self,
        limit: int,
        retry_after_seconds: float,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._limit = limit
        self._retry_after_seconds = retry_after_seconds
        self._rng = rng
        self._inflight = 0
        self._lock = threading.Lock()

    @property
    def inflight(self) -> int:
        return self._inflight

    def retry_after(self) -> dict[str, str]:
        """Returns: a ``Retry-After`` header: the base jittered up to twice, whole seconds."""
        seconds = math.ceil(self._retry_after_seconds * (1.0 + self._rng()))
        return {"Retry-After": str(max(1, seconds))}

    @contextmanager
    def admit(self) -> Iterator[None]:
        """Hold one of the request slots for the ``with`` block.

        Raises:
            ApiError: 429 ``overloaded`` when every slot is taken.
        """
        with self._lock:
            full = self._inflight >= self._limit
            if not full:
                self._inflight += 1
        if full:
            raise ApiError(
                429,
                "overloaded",
                f"the server is processing {self._limit} ingest requests already; retry later",
                headers=self.retry_after(),
            )
        try:
            yield
        finally:
            with self._lock:
                self._inflight -= 1
