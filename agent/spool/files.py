"""The spool directory on disk: one file per batch, its lock, and the folders set aside.

Stage: spool (disk). Layout of the directory::

    00000000000000000042.batch          one batch, named by its zero-padded seq
    .00000000000000000043.batch.tmp     being written; left over by a crash, removed at open
    corrupt/                            files that failed their checks (the newest few)
    rejected/                           batches the server will not take, each beside a
                                        ``.reason`` file saying why (the newest few)
    .lock                               held (flock) while an agent uses the directory

Each file is a checksummed header and the payload (``agent.spool.record``). Headers are checked
when the directory is opened, payloads when read; a file that fails is moved to ``corrupt/``,
counted and skipped, never fatal. Writes raise ``OSError`` for the caller (the disk spool) to
decide what a failing disk means; reads never raise.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.spool.base import SpooledBatch
from agent.spool.record import (
    HEADER_BYTES,
    DamagedRecordError,
    WriteFile,
    check_header,
    decode_record,
    encode_record,
    fsync_directory,
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
LOG_EVERY_SECONDS = 60.0


@dataclass(frozen=True, slots=True)
class Entry:
    """What the index keeps of one batch file (the payload stays on disk)."""

    seq: int
    size: int  # file bytes, header included
    created_wall: float
    created_monotonic: float


class SpoolFiles:
    """The batch files of one spool directory. Not thread-safe: the disk spool holds its lock."""

    def __init__(
        self,
        directory: Path,
        *,
        fsync: bool,
        write: WriteFile,
        wall: Callable[[], float],
        monotonic: Callable[[], float],
    ) -> None:
        self.directory = directory
        self._fsync = fsync
        self._write_file = write
        self._wall = wall
        self._monotonic = monotonic
        self._lock_fd: int | None = None
        self.corrupt_total = 0
        self._unlogged_corrupt = 0
        self._last_corrupt_log = -LOG_EVERY_SECONDS

    def open(self) -> list[Entry]:
        """Create and lock the directory, remove leftovers of a crash, index the batches.

        Returns:
            The batches found, in seq order.

        Raises:
            OSError: the directory cannot be created, locked or listed.
        """
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        if self._lock_fd is None:
            self._lock_fd = _lock(self.directory / LOCK_FILE)
        found: list[Entry] = []
        leftovers = 0
        with os.scandir(self.directory) as listing:
            for item in listing:
                path = Path(item.path)
                if item.name.endswith(TEMP_SUFFIX):
                    leftovers += remove_quietly(path)
                elif item.name.endswith(SUFFIX) and item.is_file(follow_symlinks=False):
                    try:
                        found.append(self._index_file(path))
                    except DamagedRecordError as exc:
                        self._set_aside(path, str(exc))
        if leftovers:
            _log.info("spool: removed %d partly written batch file(s) left by a crash", leftovers)
        return sorted(found, key=lambda entry: entry.seq)

    def close(self) -> None:
        """Release the directory lock."""
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def write(self, batch: SpooledBatch) -> Entry:
        """Write one batch file (temp name, fsync, rename, directory fsync).

        Returns:
            Its index entry.

        Raises:
            OSError: the disk failed; nothing of the batch is left behind.
        """
        assert batch.created_wall is not None
        data = encode_record(batch.seq, batch.payload, batch.created_wall)
        final = self.path(batch.seq)
        temporary = final.with_name(f".{final.name}{TEMP_SUFFIX}")
        try:
            self._write_file(temporary, data, self._fsync)
            os.replace(temporary, final)
            if self._fsync:
                fsync_directory(self.directory)
        except OSError:
            remove_quietly(temporary)
            raise
        return Entry(batch.seq, len(data), batch.created_wall, batch.created_monotonic)

    def load(self, entry: Entry) -> SpooledBatch | None:
        """Returns: the batch read back and verified, or None if its file is damaged or gone
        (then it is set aside and counted; the caller drops it from the index)."""
        path = self.path(entry.seq)
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

    def unlink(self, entry: Entry) -> None:
        try:
            self.path(entry.seq).unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            # The batch would be sent again after a restart; the server answers "duplicate".
            _log.debug("cannot remove spool file of batch %d: %s", entry.seq, exc)

    def keep_rejected(self, entry: Entry, reason: str) -> None:
        """Move a batch file to ``rejected/`` beside its reason, keeping the newest few."""
        path = self.path(entry.seq)
        rejected = self.directory / REJECTED_DIR
        try:
            rejected.mkdir(mode=0o700, exist_ok=True)
            kept = rejected / path.name
            os.replace(path, kept)
            os.utime(kept)  # when it was set aside, for keeping the newest
            self._write_file(kept.with_suffix(REASON_SUFFIX), reason.encode() + b"\n", False)
            batches = sorted(rejected.glob(f"*{SUFFIX}"), key=_mtime_or_zero, reverse=True)
            for old in batches[REJECTED_KEPT:]:
                remove_quietly(old)
                remove_quietly(old.with_suffix(REASON_SUFFIX))
        except OSError as exc:
            _log.debug("cannot keep rejected batch %d aside: %s", entry.seq, exc)
            remove_quietly(path)

    def path(self, seq: int) -> Path:
        return self.directory / f"{seq:0{SEQ_DIGITS}d}{SUFFIX}"

    def _index_file(self, path: Path) -> Entry:
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
        return Entry(seq, size, created, self._monotonic() - age)

    def _set_aside(self, path: Path, why: str) -> None:
        """Move a damaged file to ``corrupt/`` (keeping the newest few), or delete it."""
        self._count_corrupt(path, why)
        corrupt = self.directory / CORRUPT_DIR
        try:
            corrupt.mkdir(mode=0o700, exist_ok=True)
            os.replace(path, corrupt / path.name)
            kept = sorted(corrupt.iterdir(), key=_mtime_or_zero, reverse=True)
            for old in kept[CORRUPT_KEPT:]:
                remove_quietly(old)
        except OSError:
            remove_quietly(path)

    def _count_corrupt(self, path: Path, why: str) -> None:
        self.corrupt_total += 1
        self._unlogged_corrupt += 1
        now = self._monotonic()
        if now - self._last_corrupt_log >= LOG_EVERY_SECONDS:
            _log.warning(
                "spool: skipped damaged batch file %s (%s); %d damaged file(s) skipped since "
                "the last message",
                path.name,
                why,
                self._unlogged_corrupt,
            )
            self._unlogged_corrupt = 0
            self._last_corrupt_log = now


def _lock(path: Path) -> int:
    """Returns: the descriptor of ``path``, exclusively flocked.

    Raises:
        OSError: EBUSY when another agent holds it; others when it cannot be opened.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
            raise OSError(errno.EBUSY, "used by another dcmon agent") from None
        raise
    return fd


def remove_quietly(path: Path) -> int:
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
