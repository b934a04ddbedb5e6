"""Ingest admission: at most a set number of ingest requests at once, a short queue, then 429.

Stage: transport -> ingest. After an outage a whole fleet replays its spool at once; taking every
request would pile bodies up in memory and queue writes behind each other until they time out.
So at most ``limit`` requests are processed at once. A request that finds every slot taken
waits in a bounded first-come queue for up to ``wait_seconds``: a request takes tens of
milliseconds, so a burst of a fleet's ticks is served in well under a second instead of being
sent away for seconds. Only when the queue is full, or the wait runs out, is the request
answered 429 with a ``Retry-After`` sized to the queue: the time the requests ahead need at the
measured service time, at least one second (the header's unit), at most the configured base,
and jittered up to twice that so that refused agents do not return in step. 503 (storage
unavailable) carries the base, jittered the same way: that trouble is not the queue's.

Every method runs on the server's event loop (the routes are ``async``), so the counters need
no lock; the slot passes straight from a finishing request to the first waiter.
"""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from server.errors import ApiError

# Weight of the newest request in the moving average of the time a slot is held.
_SERVICE_EWMA_WEIGHT = 0.1
_INITIAL_SERVICE_SECONDS = 0.05


class Admission:
    """Counts ingest requests in progress (single, bulk and remote-write together)."""

    def __init__(
        self,
        limit: int,
        retry_after_seconds: float,
        rng: Callable[[], float] = random.random,
        *,
        wait_seconds: float = 1.0,
        max_waiting: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Args:
        limit: requests processed at once.
        retry_after_seconds: the base Retry-After of 503, and the most a 429's can be.
        wait_seconds: how long a request waits for a slot before 429 (0: no queue).
        max_waiting: requests that may wait at once (default four times ``limit``).
        """
        self._limit = limit
        self._retry_after_seconds = retry_after_seconds
        self._rng = rng
        self._wait_seconds = wait_seconds
        self._max_waiting = 4 * limit if max_waiting is None else max_waiting
        self._clock = clock
        self._inflight = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._waiting = 0  # requests inside _wait_for_slot (read by /metrics from any thread)
        self._service_seconds = _INITIAL_SERVICE_SECONDS

    @property
    def inflight(self) -> int:
        return self._inflight

    @property
    def waiting(self) -> int:
        """Requests queued for a slot now."""
        return self._waiting

    @property
    def service_seconds(self) -> float:
        """Moving average of how long an admitted request holds its slot."""
        return self._service_seconds

    def retry_after(self) -> dict[str, str]:
        """Returns: a ``Retry-After`` header: the base jittered up to twice, whole seconds."""
        return self._header(self._retry_after_seconds)

    def queue_retry_after(self) -> dict[str, str]:
        """Returns: a ``Retry-After`` for a refused request: the time the queue ahead of it
        needs (in progress and waiting, at the measured service time over the slots), at
        least 1 s and at most the base, jittered up to twice."""
        ahead = self._inflight + self.waiting
        drain = ahead * self._service_seconds / self._limit
        return self._header(min(self._retry_after_seconds, max(1.0, drain)))

    def _header(self, base: float) -> dict[str, str]:
        seconds = math.ceil(base * (1.0 + self._rng()))
        return {"Retry-After": str(max(1, seconds))}

    @asynccontextmanager
    async def admit(self) -> AsyncIterator[None]:
        """Hold one of the request slots for the ``async with`` block, waiting up to
        ``wait_seconds`` in the queue when all are taken.

        Raises:
            ApiError: 429 ``overloaded`` when the queue is full or the wait ran out.
        """
        if self._inflight < self._limit and not self.waiting:
            self._inflight += 1
        else:
            await self._wait_for_slot()
        started = self._clock()
        try:
            yield
        finally:
            held = self._clock() - started
            self._service_seconds += _SERVICE_EWMA_WEIGHT * (held - self._service_seconds)
            self._release()

    async def _wait_for_slot(self) -> None:
        if self._wait_seconds <= 0 or self.waiting >= self._max_waiting:
            raise self._refusal()
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._waiting += 1
        try:
            async with asyncio.timeout(self._wait_seconds):
                await waiter
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():
                return  # the slot came as the wait ran out: it is this request's
            raise self._refusal() from None
        except asyncio.CancelledError:
            # The client went away while queued; a slot handed over meanwhile goes on.
            if waiter.done() and not waiter.cancelled():
                self._release()
            raise
        finally:
            self._waiting -= 1
            if not waiter.done():
                waiter.cancel()

    def _release(self) -> None:
        """Hands the slot to the first live waiter, or frees it."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._inflight -= 1

    def _refusal(self) -> ApiError:
        return ApiError(
            429,
            "overloaded",
            f"the server is processing {self._limit} ingest requests already and "
            f"{self.waiting} more are waiting; retry later",
            headers=self.queue_retry_after(),
        )
