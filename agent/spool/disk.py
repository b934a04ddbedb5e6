"""A spool on disk: every batch is a file, written and synced before any send is attempted.

Stage: batch -> spool -> transport. A server outage, an agent restart or a crash loses nothing
that was spooled, within two budgets (bytes and age); past either the oldest batches are dropped
and counted. Layout of the spool directory::

    00000000000000000042.batch          one batch, named by its zero-padded seq
    .00000000000000000043.batch.tmp     being written; left over by a crash, removed at open
    corrupt/                            files that failed their checks (the newest few)
    rejected/                           batches the server will not take, each beside a
                                        ``.reason`` file saying why (the newest few)
    .lock                               held (flock) while an agent uses the directory

Each file is a checksummed header and the payload (``agent.spool.record``). Headers are checked
when the directory is opened, payloads when read; a file that fails is moved to ``corrupt/``,
counted and skipped, never fatal.

When the disk cannot be written (full, quota, read-only, I/O error, no permission) batches go to
an in-memory queue instead and the spool reports itself degraded; the disk is tried again at
most every ``retry_seconds`` and, once a write succeeds, the queued batches are written too.
Batches come out strictly oldest seq first, from disk and memory alike.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from agent.spool.base import SpooledBatch, SpoolStats
from agent.spool.memory import MemorySpool
from agent.spool.record import (
    HEADER_BYTES,
    DamagedRecordError,
    WriteFile,
    check_header,
    decode_record,
    encode_record,
    fsync_directory,
    write_file,
)

_log = logging.getLogger(__name__)

SUFFIX = ".batch"
TEMP_SUFFIX = ".tmp"
LOCK_FILE = ".lock"
CORRUPT_DIR = "corrupt"
CORRUPT_KEPT = 5
REJECTED_DIR = "rejected"
REJECTED_KEPT = 20
REASON_SUFFIX = ".reason"
SEQ_DIGITS = 20
DISK_RETRY_SECONDS = 30.0
_LOG_EVERY_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class _Entry:
    """What the index keeps of one batch file (the payload stays on disk)."""

    seq: int
    size: int  # file bytes, header included
    created_wall: float
    created_monotonic: float


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
        self._dir = directory
        self._max_bytes = max_bytes
        self._max_age = max_age_seconds
        self._fsync = fsync
        self._wall = wall
        self._monotonic = monotonic
        self._write_file = write
        self._retry_seconds = retry_seconds
        self._memory_max_bytes = memory_max_bytes
        self._memory = MemorySpool(memory_max_bytes)
        self._index: deque[_Entry] = deque()
        self._disk_bytes = 0
        self._dropped_batches = 0
        self._dropped_bytes = 0
        self._corrupt = 0
        self._degraded: str | None = None  # the reason, while batches go to memory
        self._next_disk_try = 0.0
        self._lock_fd: int | None = None
        self._ready = False  # directory created, locked and indexed
        self._unlogged_drops = 0
        self._last_drop_log = -_LOG_EVERY_SECONDS
        self._unlogged_corrupt = 0
        self._last_corrupt_log = -_LOG_EVERY_SECONDS
        self._lock = threading.Lock()
        with self._lock:
            self._try_open()
            self._enforce_budgets()

    @property
    def directory(self) -> Path:
        return self._dir

    # --- the Spool protocol ----------------------------------------------------------------

    def append(self, batch: SpooledBatch) -> None:
        with self._lock:
            if batch.created_wall is None:
                batch = replace(batch, created_wall=self._wall())
            if self._disk_usable() and self._write(batch):
                if self._degraded is not None:
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
                    loaded = self._load(entry)
                    if loaded is None:
                        del self._index[position]
                        self._disk_bytes -= entry.size
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
            entry = self._remove(batch.seq)
            if entry is not None:
                self._unlink(entry)
                return
            head = self._memory.peek()
            if head is not None and head.seq == batch.seq:
                self._memory.ack(head)
            # Otherwise it was dropped (budget) while being sent: nothing to forget.

    def reject(self, batch: SpooledBatch, reason: str) -> None:
        with self._lock:
            entry = self._remove(batch.seq)
            if entry is not None:
                self._keep_rejected(entry, reason)
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
            oldest = [self._index[0].created_wall] if self._index else []
            head = self._memory.peek()
            if head is not None and head.created_wall is not None:
                oldest.append(head.created_wall)
            age = max(0.0, self._wall() - min(oldest)) if oldest else 0.0
            return SpoolStats(
                batches=len(self._index) + memory.batches,
                bytes=self._disk_bytes + memory.bytes,
                oldest_age_seconds=age,
                dropped_batches_total=self._dropped_batches + memory.dropped_batches_total,
                dropped_bytes_total=self._dropped_bytes + memory.dropped_bytes_total,
                corrupt_records_total=self._corrupt,
                degraded=self._degraded is not None,
                degraded_reason=self._degraded or "",
                budget_bytes=self._max_bytes,
            )

    def close(self) -> None:
        """Release the directory lock. Batches held only in memory are lost."""
        with self._lock:
            if self._lock_fd is not None:
                os.close(self._lock_fd)
                self._lock_fd = None
            self._ready = False

    # --- opening ---------------------------------------------------------------------------

    def _try_open(self) -> bool:
        try:
            self._open_directory()
        except OSError as exc:
            self._degrade(f"cannot use spool directory {self._dir}", exc)
            return False
        self._ready = True
        return True

    def _open_directory(self) -> None:
        """Create and lock the directory, remove leftovers of a crash, index the batches.

        Raises:
            OSError: the directory cannot be created, locked or listed.
        """
        self._dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self._lock_fd is None:
            fd = os.open(self._dir / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                    raise OSError(errno.EBUSY, "used by another dcmon agent") from None
                raise
            self._lock_fd = fd
        found: list[_Entry] = []
        leftovers = 0
        with os.scandir(self._dir) as listing:
            for item in listing:
                path = Path(item.path)
                if item.name.endswith(TEMP_SUFFIX):
                    leftovers += _remove_quietly(path)
                elif item.name.endswith(SUFFIX) and item.is_file(follow_symlinks=False):
                    try:
                        found.append(self._index_file(path))
                    except DamagedRecordError as exc:
                        self._set_aside(path, str(exc))
        if leftovers:
            _log.info("spool: removed %d partly written batch file(s) left by a crash", leftovers)
        known = {entry.seq for entry in self._index}
        for entry in sorted(found, key=lambda entry: entry.seq):
            if entry.seq not in known:
                self._insert(entry)
        if found:
            _log.info(
                "spool: %d batch(es) (%d bytes) from an earlier run are waiting in %s",
                len(found),
                sum(entry.size for entry in found),
                self._dir,
            )

    def _index_file(self, path: Path) -> _Entry:
        """Returns: the index entry of a batch file, from its name and header.

        Raises:
            DamagedRecordError: the name or the header is not right, or the length does not match.
        """
        try:
            seq = int(path.name[: -len(SUFFIX)])
        except ValueError:
            raise DamagedRecordError("not named after a seq") from None
        try:
            with path.open("rb") as handle:
                header = handle.read(HEADER_BYTES)
                size = os.fstat(handle.fileno()).st_size
        except OSError as exc:
            raise DamagedRecordError(f"unreadable: {exc.strerror or exc}") from None
        _crc, created = check_header(header, size, seq)
        age = max(0.0, self._wall() - created)
        return _Entry(seq, size, created, self._monotonic() - age)

    # --- disk I/O --------------------------------------------------------------------------

    def _path(self, seq: int) -> Path:
        return self._dir / f"{seq:0{SEQ_DIGITS}d}{SUFFIX}"

    def _write(self, batch: SpooledBatch) -> bool:
        """Write one batch file (temp name, fsync, rename, directory fsync) and index it.

        Returns:
            False if the disk failed (the spool is then degraded).
        """
        assert batch.created_wall is not None
        data = encode_record(batch.seq, batch.payload, batch.created_wall)
        final = self._path(batch.seq)
        temporary = final.with_name(f".{final.name}{TEMP_SUFFIX}")
        try:
            self._write_file(temporary, data, self._fsync)
            os.replace(temporary, final)
            if self._fsync:
                fsync_directory(self._dir)
        except OSError as exc:
            _remove_quietly(temporary)
            self._degrade(f"cannot write spool file {final}", exc)
            return False
        self._insert(_Entry(batch.seq, len(data), batch.created_wall, batch.created_monotonic))
        return True

    def _load(self, entry: _Entry) -> SpooledBatch | None:
        """Returns: the batch read back and verified, or None if its file is damaged or gone
        (then it is set aside and counted; the caller drops it from the index)."""
        path = self._path(entry.seq)
        try:
            payload = decode_record(path.read_bytes(), entry.seq)
        except FileNotFoundError:
            self._count_corrupt(path, "the file disappeared")
            return None
        except OSError as exc:
            self._set_aside(path, f"unreadable: {exc.strerror or exc}")
            return None
        except DamagedRecordError as exc:
            self._set_aside(path, str(exc))
            return None
        return SpooledBatch(entry.seq, payload, entry.created_monotonic, entry.created_wall)

    def _unlink(self, entry: _Entry) -> None:
        try:
            self._path(entry.seq).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            # The batch would be sent again after a restart; the server answers "duplicate".
            _log.debug("cannot remove spool file of batch %d: %s", entry.seq, exc)

    def _set_aside(self, path: Path, why: str) -> None:
        """Move a damaged file to ``corrupt/`` (keeping the newest few), or delete it."""
        self._count_corrupt(path, why)
        corrupt = self._dir / CORRUPT_DIR
        try:
            corrupt.mkdir(mode=0o700, exist_ok=True)
            os.replace(path, corrupt / path.name)
            kept = sorted(corrupt.iterdir(), key=_mtime_or_zero, reverse=True)
            for old in kept[CORRUPT_KEPT:]:
                _remove_quietly(old)
        except OSError:
            _remove_quietly(path)

    def _keep_rejected(self, entry: _Entry, reason: str) -> None:
        """Move a batch file to ``rejected/`` beside its reason, keeping the newest few."""
        path = self._path(entry.seq)
        rejected = self._dir / REJECTED_DIR
        try:
            rejected.mkdir(mode=0o700, exist_ok=True)
            kept = rejected / path.name
            os.replace(path, kept)
            os.utime(kept)  # when it was set aside, for keeping the newest
            self._write_file(kept.with_suffix(REASON_SUFFIX), reason.encode() + b"\n", False)
            batches = sorted(rejected.glob(f"*{SUFFIX}"), key=_mtime_or_zero, reverse=True)
            for old in batches[REJECTED_KEPT:]:
                _remove_quietly(old)
                _remove_quietly(old.with_suffix(REASON_SUFFIX))
        except OSError as exc:
            _log.debug("cannot keep rejected batch %d aside: %s", entry.seq, exc)
            _remove_quietly(path)

    def _count_corrupt(self, path: Path, why: str) -> None:
        self._corrupt += 1
        self._unlogged_corrupt += 1
        now = self._monotonic()
        if now - self._last_corrupt_log >= _LOG_EVERY_SECONDS:
            _log.warning(
                "spool: skipped damaged batch file %s (%s); %d damaged file(s) skipped since "
                "the last message",
                path.name,
                why,
                self._unlogged_corrupt,
            )
            self._unlogged_corrupt = 0
            self._last_corrupt_log = now

    # --- index and budgets -----------------------------------------------------------------

    def _insert(self, entry: _Entry) -> None:
        """Add to the index in seq order (appends are in order, so this is nearly always the
        tail); a file written again for a seq replaces the old entry."""
        if not self._index or entry.seq > self._index[-1].seq:
            self._index.append(entry)
        else:
            self._remove(entry.seq)  # a file written again under the same name replaced it
            position = bisect_left(self._index, entry.seq, key=lambda item: item.seq)
            self._index.insert(position, entry)
        self._disk_bytes += entry.size

    def _remove(self, seq: int) -> _Entry | None:
        """Take the entry of ``seq`` out of the index (the head, nearly always)."""
        if not self._index:
            return None
        if self._index[0].seq == seq:
            entry = self._index.popleft()
        else:
            position = bisect_left(self._index, seq, key=lambda item: item.seq)
            if position == len(self._index) or self._index[position].seq != seq:
                return None
            entry = self._index[position]
            del self._index[position]
        self._disk_bytes -= entry.size
        return entry

    def _enforce_budgets(self) -> None:
        """Drop the oldest batches past the age budget (disk and memory) or the byte budget."""
        horizon = self._wall() - self._max_age
        while self._index and self._index[0].created_wall < horizon:
            self._drop(self._index.popleft(), f"older than {self._max_age:g}s")
        while (head := self._memory.peek()) is not None:
            if head.created_wall is None or head.created_wall >= horizon:
                break
            self._memory.ack(head)
            self._count_drop(len(head.payload), head.seq, f"older than {self._max_age:g}s")
        while self._disk_bytes > self._max_bytes and len(self._index) > 1:
            self._drop(self._index.popleft(), f"spool over {self._max_bytes} bytes")

    def _drop(self, entry: _Entry, why: str) -> None:
        self._disk_bytes -= entry.size
        self._unlink(entry)
        self._count_drop(entry.size, entry.seq, why)

    def _count_drop(self, size: int, seq: int, why: str) -> None:
        self._dropped_batches += 1
        self._dropped_bytes += size
        self._unlogged_drops += 1
        now = self._monotonic()
        if now - self._last_drop_log >= _LOG_EVERY_SECONDS:
            _log.warning(
                "spool: dropped batch %d unsent (%s); %d dropped since the last message, %d in all",
                seq,
                why,
                self._unlogged_drops,
                self._dropped_batches,
            )
            self._unlogged_drops = 0
            self._last_drop_log = now

    # --- degraded mode ---------------------------------------------------------------------

    def _disk_usable(self) -> bool:
        """Returns: whether to try the disk for the next batch (at most every retry_seconds
        while degraded)."""
        if self._degraded is None:
            return True
        now = self._monotonic()
        if now < self._next_disk_try:
            return False
        self._next_disk_try = now + self._retry_seconds
        return self._ready or self._try_open()

    def _degrade(self, what: str, exc: OSError) -> None:
        reason = errno.errorcode.get(exc.errno, type(exc).__name__) if exc.errno else "error"
        if self._degraded is None:
            _log.warning(
                "%s: %s; keeping batches in memory (up to %d bytes, lost if the agent stops) "
                "and trying the disk again every %gs",
                what,
                exc.strerror or exc,
                self._memory_max_bytes,
                self._retry_seconds,
            )
        self._degraded = reason
        self._next_disk_try = self._monotonic() + self._retry_seconds

    def _recover(self) -> None:
        """The disk takes writes again: move the batches kept in memory there, oldest first."""
        self._degraded = None
        moved = 0
        for batch in self._memory.peek_many(self._memory.pending(), 1 << 62):
            if not self._write(batch):
                break
            self._memory.ack(batch)
            moved += 1
        if self._degraded is None:
            _log.info("spool: writing to disk again (%d batch(es) moved from memory)", moved)


def _remove_quietly(path: Path) -> int:
    """Returns: 1 if ``path`` was removed, 0 if it was not there or cannot be removed."""
    try:
        path.unlink()
    except OSError:
        return 0
    return 1


def _mtime_or_zero(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
