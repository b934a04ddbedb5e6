"""A spool on disk: every batch is a file, written and synced before any send is attempted.

Stage: batch -> spool -> transport. A server outage, an agent restart or a crash loses nothing
that was spooled, within two budgets (bytes and age); past either the oldest batches are dropped
and counted. The pieces, one concept each:

- ``files``: the directory, its lock, the batch files and the ``corrupt/`` and ``rejected/``
  folders (layout in that module);
- ``budget``: the index of the files in seq order and the byte and age budgets;
- ``fallback``: the degraded mode, when the disk cannot be written (full, quota, read-only, I/O
  error, no permission): batches go to an in-memory queue, the disk is tried again at most every
  ``retry_seconds`` and, once a write succeeds, the queued batches are written too.

Batches come out strictly oldest seq first, from disk and memory alike. Batches the server will
not take are moved to ``rejected/`` with their reason (``reject``).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from agent.spool.base import SpooledBatch, SpoolStats
from agent.spool.budget import Budget, SpoolIndex
from agent.spool.fallback import MemoryFallback
from agent.spool.files import (
    CORRUPT_DIR,
    CORRUPT_KEPT,
    REJECTED_DIR,
    REJECTED_KEPT,
    SpoolFiles,
)
from agent.spool.record import WriteFile, write_file

_log = logging.getLogger(__name__)

DISK_RETRY_SECONDS = 30.0

__all__ = [
    "CORRUPT_DIR",
    "CORRUPT_KEPT",
    "DISK_RETRY_SECONDS",
    "REJECTED_DIR",
    "REJECTED_KEPT",
    "DiskSpool",
]


class DiskSpool:
    """FIFO of batch files in one directory, with an in-memory fallback while the disk fails."""

    def __init__(
        self,
        directory: Path,
        *,
        max_bytes: int,
        max_age_seconds: float,
        memory_max_bytes: int,
        fsync: bool = True,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        write: WriteFile = write_file,
        retry_seconds: float = DISK_RETRY_SECONDS,
    ) -> None:
        """Open (creating it, mode 0700) and index the spool directory.

        Never raises for trouble with the directory: the spool then starts degraded, in
        memory, and tries the disk again later.
        """
        self._wall = wall
        self._monotonic = monotonic
        self._files = SpoolFiles(
            directory, fsync=fsync, write=write, wall=wall, monotonic=monotonic
        )
        self._index = SpoolIndex()
        self._budget = Budget(max_bytes, max_age_seconds, wall, monotonic)
        self._fallback = MemoryFallback(memory_max_bytes, retry_seconds, monotonic)
        self._memory = self._fallback.memory
        self._ready = False  # directory created, locked and indexed
        self._lock = threading.Lock()
        with self._lock:
            self._try_open()
            self._enforce_budgets()

    @property
    def directory(self) -> Path:
        return self._files.directory

    # --- the Spool protocol ----------------------------------------------------------------

    def append(self, batch: SpooledBatch) -> None:
        with self._lock:
            if batch.created_wall is None:
                batch = replace(batch, created_wall=self._wall())
            if self._disk_usable() and self._write(batch):
                if self._fallback.degraded:
                    self._recover()
            else:
                self._memory.append(batch)
            self._enforce_budgets()

    def peek(self) -> SpooledBatch | None:
        batches = self.peek_many(1, 0)
        return batches[0] if batches else None

    def peek_many(self, limit: int, max_bytes: int) -> list[SpooledBatch]:
        with self._lock:
            self._enforce_budgets()
            in_memory = self._memory.peek_many(limit, 1 << 62)
            taken: list[SpooledBatch] = []
            size = 0
            position = 0  # in the disk index
            from_memory = 0
            while len(taken) < limit:
                entry = self._index[position] if position < len(self._index) else None
                memory = in_memory[from_memory] if from_memory < len(in_memory) else None
                if entry is None and memory is None:
                    break
                if memory is not None and (entry is None or memory.seq < entry.seq):
                    candidate = memory
                    from_memory += 1
                else:
                    assert entry is not None
                    loaded = self._files.load(entry)
                    if loaded is None:
                        self._index.delete_at(position)
                        continue
                    candidate = loaded
                    position += 1
                if taken and size + len(candidate.payload) > max_bytes:
                    break
                taken.append(candidate)
                size += len(candidate.payload)
            return taken

    def ack(self, batch: SpooledBatch) -> None:
        with self._lock:
            entry = self._index.remove(batch.seq)
            if entry is not None:
                self._files.unlink(entry)
                return
            head = self._memory.peek()
            if head is not None and head.seq == batch.seq:
                self._memory.ack(head)
            # Otherwise it was dropped (budget) while being sent: nothing to forget.

    def reject(self, batch: SpooledBatch, reason: str) -> None:
        with self._lock:
            entry = self._index.remove(batch.seq)
            if entry is not None:
                self._files.keep_rejected(entry, reason)
                return
            head = self._memory.peek()
            if head is not None and head.seq == batch.seq:
                self._memory.ack(head)  # the disk is failing: nothing is kept

    def pending(self) -> int:
        with self._lock:
            return len(self._index) + self._memory.pending()

    def stats(self, now_monotonic: float) -> SpoolStats:
        """Ages are judged on the wall-clock creation time kept with each batch (it survives
        restarts), so ``now_monotonic`` is not used."""
        with self._lock:
            memory = self._memory.stats(self._monotonic())
            disk_head = self._index.head
            oldest = [] if disk_head is None else [disk_head.created_wall]
            head = self._memory.peek()
            if head is not None and head.created_wall is not None:
                oldest.append(head.created_wall)
            age = max(0.0, self._wall() - min(oldest)) if oldest else 0.0
            budget = self._budget
            return SpoolStats(
                batches=len(self._index) + memory.batches,
                bytes=self._index.bytes + memory.bytes,
                oldest_age_seconds=age,
                dropped_batches_total=budget.dropped_batches + memory.dropped_batches_total,
                dropped_bytes_total=budget.dropped_bytes + memory.dropped_bytes_total,
                corrupt_records_total=self._files.corrupt_total,
                degraded=self._fallback.degraded,
                degraded_reason=self._fallback.reason or "",
                budget_bytes=budget.max_bytes,
            )

    def close(self) -> None:
        """Release the directory lock. Batches held only in memory are lost."""
        with self._lock:
            self._files.close()
            self._ready = False

    # --- disk, and the way back from memory -----------------------------------------------

    def _try_open(self) -> bool:
        try:
            found = self._files.open()
        except OSError as exc:
            self._fallback.degrade(f"cannot use spool directory {self.directory}", exc)
            return False
        known = self._index.seqs()
        for entry in found:
            if entry.seq not in known:
                self._index.insert(entry)
        if found:
            _log.info(
                "spool: %d batch(es) (%d bytes) from an earlier run are waiting in %s",
                len(found),
                sum(entry.size for entry in found),
                self.directory,
            )
        self._ready = True
        return True

    def _write(self, batch: SpooledBatch) -> bool:
        """Write one batch file and index it.

        Returns:
            False if the disk failed (the spool is then degraded).
        """
        try:
            entry = self._files.write(batch)
        except OSError as exc:
            self._fallback.degrade(f"cannot write spool file {self._files.path(batch.seq)}", exc)
            return False
        self._index.insert(entry)
        return True

    def _disk_usable(self) -> bool:
        """Returns: whether to try the disk for the next batch (at most every retry_seconds
        while degraded)."""
        return self._fallback.disk_due() and (self._ready or self._try_open())

    def _recover(self) -> None:
        """The disk takes writes again: move the batches kept in memory there, oldest first."""
        self._fallback.recovered()
        moved = 0
        for batch in self._memory.peek_many(self._memory.pending(), 1 << 62):
            if not self._write(batch):
                break
            self._memory.ack(batch)
            moved += 1
        if not self._fallback.degraded:
            _log.info("spool: writing to disk again (%d batch(es) moved from memory)", moved)

    def _enforce_budgets(self) -> None:
        self._budget.enforce(self._index, self._memory, self._files.unlink)
