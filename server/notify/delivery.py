"""Delivery: one attempt's errors, retries with backoff, and the counts of outcomes.

Receivers raise ``DeliveryError`` (``retryable`` for network errors, timeouts and 5xx, as
Alertmanager's ``Retrier`` does; not for other answers); ``deliver`` retries a call with
exponential backoff (jittered) until it succeeds, a non-retryable error, or the deadline, and
counts every outcome through the ``Counts`` seam (``sent``, ``retried``, ``failed``,
``dropped``), which ``metrics.py`` exposes as ``dcmon_server_notifications_total``. Errors
are logged by receiver name only: URLs may hold tokens.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Literal, Protocol

_log = logging.getLogger(__name__)

Outcome = Literal["sent", "retried", "failed", "dropped"]
FIRST_BACKOFF_S = 0.5
MAX_BACKOFF_S = 30.0


class DeliveryError(Exception):
    """One attempt failed; the message names no secret."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class Counts(Protocol):
    def count(self, receiver: str, outcome: Outcome) -> None: ...


class MemoryCounts:
    """Counts in memory (tests; or a server without metrics)."""

    def __init__(self) -> None:
        self.totals: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def count(self, receiver: str, outcome: Outcome) -> None:
        with self._lock:
            self.totals[(receiver, outcome)] += 1


def deliver(
    receiver: str,
    attempt: Callable[[], None],
    *,
    deadline: float,
    counts: Counts,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    stop: threading.Event | None = None,
) -> bool:
    """Returns: whether ``attempt`` succeeded before ``deadline`` (on ``clock``)."""
    backoff = FIRST_BACKOFF_S
    while True:
        try:
            attempt()
        except DeliveryError as exc:
            remaining = deadline - clock()
            if not exc.retryable or remaining <= 0 or (stop is not None and stop.is_set()):
                _log.warning("notification to %s failed: %s", receiver, exc)
                counts.count(receiver, "failed")
                return False
            counts.count(receiver, "retried")
            _log.info("notification to %s failed, retrying: %s", receiver, exc)
            pause = min(backoff * (0.5 + random.random()), remaining, MAX_BACKOFF_S)  # noqa: S311
            if stop is not None:
                if stop.wait(pause):
                    counts.count(receiver, "failed")
                    return False
            else:
                sleep(pause)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
            continue
        counts.count(receiver, "sent")
        return True
