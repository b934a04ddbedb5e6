"""The spool seam: ``append`` / ``peek`` / ``ack``, implemented in memory or on disk."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SpooledBatch:
    """One encoded batch awaiting delivery.

    ``created_wall`` (Unix seconds) is set by spools that judge age across restarts (the disk
    spool stores it in the batch's file); ``created_monotonic`` serves within one process.
    """

    seq: int
    payload: bytes
    created_monotonic: float
    created_wall: float | None = None


@dataclass(frozen=True)
class SpoolStats:
    """What the spool holds and what it had to give up (for the agent's own metrics)."""

    batches: int
    bytes: int
    oldest_age_seconds: float
    dropped_batches_total: int
    dropped_bytes_total: int
    corrupt_records_total: int = 0
    degraded: bool = False
    """True while batches go to memory because the disk cannot be written."""
    degraded_reason: str = ""
    budget_bytes: int = 0


class Spool(Protocol):
    """A bounded FIFO of encoded batches, safe to use from the ticking and the sending thread."""

    def append(self, batch: SpooledBatch) -> None:
        """Store a batch; drops the oldest ones if the budget is exceeded."""
        ...

    def peek(self) -> SpooledBatch | None:
        """Returns: the oldest batch not yet acknowledged, or None when empty."""
        ...

    def peek_many(self, limit: int, max_bytes: int) -> list[SpooledBatch]:
        """Returns: up to ``limit`` oldest batches, oldest first, whose payloads together stay
        within ``max_bytes`` (the oldest is always included, whatever its size)."""
        ...

    def ack(self, batch: SpooledBatch) -> None:
        """Forget a batch that was delivered."""
        ...

    def reject(self, batch: SpooledBatch, reason: str) -> None:
        """Set aside a batch the server will not take (refused for good, or poison): it is no
        longer delivered; a disk spool keeps the newest few, with the reason, for a person."""
        ...

    def pending(self) -> int:
        """Returns: the number of batches waiting (cheap; no payload is read)."""
        ...

    def stats(self, now_monotonic: float) -> SpoolStats: ...

    def close(self) -> None:
        """Release files and locks; the spool is not used afterwards."""
        ...
