"""The per-node batch sequence number: monotonic across restarts, cheap on disk.

The server deduplicates batches by ``(node, seq)``, so a restarted agent must never reuse a
number. Numbers are reserved in blocks: the file holds the first number not yet handed out
by any run, and is rewritten only when a block is used up (once per ``block`` ticks). A crash
skips the rest of a block; numbers stay monotonic, not dense.
"""

from __future__ import annotations

import threading
from pathlib import Path

from agent.statefile import StateError, read_text, write_atomically

SEQUENCE_FILE = "seq"


class Sequence:
    """Hands out increasing batch numbers, persisted under ``state_dir``."""

    def __init__(self, state_dir: Path, block: int = 1000) -> None:
        self._path = state_dir / SEQUENCE_FILE
        self._block = block
        self._lock = threading.Lock()
        stored = read_text(self._path)
        try:
            self._next = int(stored) if stored else 0
        except ValueError:
            raise StateError(f"{self._path} does not hold a number: {stored!r}") from None
        self._reserved_until = self._next

    def next(self) -> int:
        """Returns: a number larger than any this node has used before.

        Raises:
            StateError: the reservation cannot be persisted.
        """
        with self._lock:
            if self._next >= self._reserved_until:
                self._reserved_until = self._next + self._block
                write_atomically(self._path, f"{self._reserved_until}\n")
            value = self._next
            self._next += 1
            return value
