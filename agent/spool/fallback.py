"""The disk spool's degraded mode: batches in memory while the disk cannot be written.

Stage: spool. A full, read-only or failing disk must not stop collection or delivery: batches
go to a bounded in-memory queue, the spool reports itself degraded with the reason, and the
disk is tried again at most every ``retry_seconds``. What is in memory is lost if the agent
stops, which the first warning says.
"""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable

from agent.spool.memory import MemorySpool

_log = logging.getLogger(__name__)


class MemoryFallback:
    """The in-memory queue, whether the spool is degraded (and why), and when to retry."""

    def __init__(
        self, max_bytes: int, retry_seconds: float, monotonic: Callable[[], float]
    ) -> None:
        self.memory = MemorySpool(max_bytes)
        self._max_bytes = max_bytes
        self._retry_seconds = retry_seconds
        self._monotonic = monotonic
        self.reason: str | None = None
        """The errno name while degraded, None while the disk takes writes."""
        self._next_try = 0.0

    @property
    def degraded(self) -> bool:
        return self.reason is not None

    def degrade(self, what: str, exc: OSError) -> None:
        """The disk failed: say so (once per episode) and wait before the next try."""
        reason = errno.errorcode.get(exc.errno, type(exc).__name__) if exc.errno else "error"
        if self.reason is None:
            _log.warning(
                "%s: %s; keeping batches in memory (up to %d bytes, lost if the agent stops) "
                "and trying the disk again every %gs",
                what,
                exc.strerror or exc,
                self._max_bytes,
                self._retry_seconds,
            )
        self.reason = reason
        self._next_try = self._monotonic() + self._retry_seconds

    def disk_due(self) -> bool:
        """Returns: whether to try the disk for the next batch (always, unless degraded; then
        at most every ``retry_seconds``)."""
        if self.reason is None:
            return True
        now = self._monotonic()
        if now < self._next_try:
            return False
        self._next_try = now + self._retry_seconds
        return True

    def recovered(self) -> None:
        self.reason = None
