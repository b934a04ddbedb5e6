"""What the disk spool holds, in seq order, and the byte and age budgets that bound it.

Stage: spool. The index keeps one small entry per batch file (the payloads stay on disk) so
``pending`` and the budgets cost no disk reads. Past either budget the oldest batches are
dropped, never the newest, and counted; the log says so at a bounded rate.
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections import deque
from collections.abc import Callable

from agent.spool.files import LOG_EVERY_SECONDS, Entry
from agent.spool.memory import MemorySpool

_log = logging.getLogger(__name__)


class SpoolIndex:
    """The batch files on disk, oldest seq first, and their total size in bytes."""

    def __init__(self) -> None:
        self._entries: deque[Entry] = deque()
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, position: int) -> Entry:
        return self._entries[position]

    @property
    def head(self) -> Entry | None:
        return self._entries[0] if self._entries else None

    def seqs(self) -> set[int]:
        return {entry.seq for entry in self._entries}

    def insert(self, entry: Entry) -> None:
        """Add in seq order (appends are in order, so this is nearly always the tail); a file
        written again for a seq replaces the old entry."""
        if not self._entries or entry.seq > self._entries[-1].seq:
            self._entries.append(entry)
        else:
            self.remove(entry.seq)  # a file written again under the same name replaced it
            position = bisect_left(self._entries, entry.seq, key=lambda item: item.seq)
            self._entries.insert(position, entry)
        self.bytes += entry.size

    def remove(self, seq: int) -> Entry | None:
        """Take the entry of ``seq`` out (the head, nearly always); None if it is not there."""
        if not self._entries:
            return None
        if self._entries[0].seq == seq:
            return self.pop_oldest()
        position = bisect_left(self._entries, seq, key=lambda item: item.seq)
        if position == len(self._entries) or self._entries[position].seq != seq:
            return None
        return self.delete_at(position)

    def delete_at(self, position: int) -> Entry:
        entry = self._entries[position]
        del self._entries[position]
        self.bytes -= entry.size
        return entry

    def pop_oldest(self) -> Entry:
        entry = self._entries.popleft()
        self.bytes -= entry.size
        return entry


class Budget:
    """Drops the oldest batches past ``max_bytes`` on disk or ``max_age_seconds`` anywhere."""

    def __init__(
        self,
        max_bytes: int,
        max_age_seconds: float,
        wall: Callable[[], float],
        monotonic: Callable[[], float],
    ) -> None:
        self.max_bytes = max_bytes
        self._max_age = max_age_seconds
        self._wall = wall
        self._monotonic = monotonic
        self.dropped_batches = 0
        self.dropped_bytes = 0
        self._unlogged_drops = 0
        self._last_drop_log = -LOG_EVERY_SECONDS

    def enforce(
        self, index: SpoolIndex, memory: MemorySpool, unlink: Callable[[Entry], None]
    ) -> None:
        """Drop the oldest batches past the age budget (disk and memory) or the byte budget
        (disk; memory has its own); ``unlink`` removes a dropped batch's file."""
        horizon = self._wall() - self._max_age
        too_old = f"older than {self._max_age:g}s"
        while (head := index.head) is not None and head.created_wall < horizon:
            self._drop(index.pop_oldest(), too_old, unlink)
        while (oldest := memory.peek()) is not None:
            if oldest.created_wall is None or oldest.created_wall >= horizon:
                break
            memory.ack(oldest)
            self._count(len(oldest.payload), oldest.seq, too_old)
        while index.bytes > self.max_bytes and len(index) > 1:
            self._drop(index.pop_oldest(), f"spool over {self.max_bytes} bytes", unlink)

    def _drop(self, entry: Entry, why: str, unlink: Callable[[Entry], None]) -> None:
        unlink(entry)
        self._count(entry.size, entry.seq, why)

    def _count(self, size: int, seq: int, why: str) -> None:
        self.dropped_batches += 1
        self.dropped_bytes += size
        self._unlogged_drops += 1
        now = self._monotonic()
        if now - self._last_drop_log >= LOG_EVERY_SECONDS:
            _log.warning(
                "spool: dropped batch %d unsent (%s); %d dropped since the last message, %d in all",
                seq,
                why,
                self._unlogged_drops,
                self.dropped_batches,
            )
            self._unlogged_drops = 0
            self._last_drop_log = now
