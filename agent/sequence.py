"""The per-node batch sequence number: unique across restarts, cheap on disk, never in the way.

The server deduplicates batches by ``(node, seq)``, so a restarted agent must never reuse a
number: a reused one would be answered "duplicate" and its samples silently lost. Numbers are
reserved in blocks: the file holds the first number not reserved by any run, and a block is
persisted *before* any number of it is handed out. A crash skips the rest of a block; numbers
stay increasing, not dense. A new block is reserved when a quarter of the current one is left,
so a write that fails (full disk, read-only state directory) is retried on the following ticks
while the rest of the block is still used.

When the block runs out and the file still cannot be written, the agent keeps collecting: it
hands out numbers from a range no run ever reserves, ``FALLBACK_BASE`` plus the wall clock in
microseconds (at least one more than the previous number). A restart reads the last number
that was persisted, far below that range, so it cannot meet them; a restart that is itself in
fallback starts above them as long as the wall clock has moved forward (a clock stepped back
across a restart on a full disk is the one case left, and it needs the very microseconds used
before). Once a write succeeds again the reservation continues above the fallback numbers.
Failed writes are logged once (until one succeeds) and counted in ``write_errors``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path

from agent.statefile import StateError, read_text, write_atomically

_log = logging.getLogger(__name__)

SEQUENCE_FILE = "seq"
FALLBACK_BASE = 1 << 62
"""Start of the numbers used while no reservation can be persisted (far above any a run ever
reserves: at one batch a second that takes 10**11 years). The wire's limit is 2**63 - 1."""


class Sequence:
    """Hands out increasing batch numbers, persisted under ``state_dir``."""

    def __init__(
        self, state_dir: Path, block: int = 1000, wall: Callable[[], float] = time.time
    ) -> None:
        """Raises:
        StateError: the file cannot be read, or does not hold a number.
        """
        self._path = state_dir / SEQUENCE_FILE
        self._block = max(1, block)
        self._renew_when_left = max(1, self._block // 4)
        self._wall = wall
        self._lock = threading.Lock()
        stored = read_text(self._path)
        try:
            self._next = int(stored) if stored else 0
        except ValueError:
            raise StateError(f"{self._path} does not hold a number: {stored!r}") from None
        self._reserved_until = self._next  # nothing reserved by this run yet
        self._failing = False
        self.write_errors = 0
        """Reservations that could not be persisted (for the agent's own metrics)."""

    def next(self) -> int:
        """Returns: a number larger than any this run has handed out, and never handed out
        by another run of this node. Never raises: a failed write is logged and counted."""
        with self._lock:
            if self._reserved_until - self._next <= self._renew_when_left:
                self._reserve()
            if self._next >= self._reserved_until:
                fallback = FALLBACK_BASE + int(self._wall() * 1_000_000)
                self._next = max(self._next, fallback)
            value = self._next
            self._next += 1
            return value

    def _reserve(self) -> None:
        """Persist a new block starting at the next number; on failure keep the old one."""
        until = self._next + self._block
        try:
            write_atomically(self._path, f"{until}\n")
        except StateError as exc:
            self.write_errors += 1
            if not self._failing:
                self._failing = True
                _log.warning(
                    "cannot persist the batch seq (%s); collection goes on, %s",
                    exc,
                    "numbering from the rest of the reserved block"
                    if self._next < self._reserved_until
                    else "numbering from a wall-clock range that no restart reuses",
                )
            return
        if self._failing:
            self._failing = False
            _log.info("the batch seq is persisted again (%s)", self._path)
        self._reserved_until = until
