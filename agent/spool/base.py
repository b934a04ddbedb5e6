"""The spool seam: ``append`` / ``peek`` / ``ack``, implemented in memory or on disk."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class SpooledBatch:
    """One encoded batch awaiting delivery."""

    seq: int
    payload: bytes
    created_monotonic: float


@dataclass(frozen=True)
class SpoolStats:
    """What the spool holds and what it had to give up (for the agent's own metrics)."""

    batches: int
    bytes: int
    oldest_age_seconds: float
    dropped_batches_total: int
    dropped_bytes_total: int


class Spool(Protocol):
    """A bounded FIFO of encoded batches, safe to use from the ticking and the sending thread."""

    def append(self, batch: SpooledBatch) -> None:
        """Store a batch; drops the oldest ones if the budget is exceeded."""
        ...

    def peek(self) -> SpooledBatch | None:
        """Returns: the oldest batch not yet acknowledged, or None when empty."""
        ...

    def ack(self, batch: SpooledBatch) -> None:
        """Forget a batch that was delivered (or permanently refused)."""
        ...

    def stats(self, now_monotonic: float) -> SpoolStats: ...
