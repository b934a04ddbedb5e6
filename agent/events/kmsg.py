"""The kernel-log XID source: reads ``/dev/kmsg`` records and keeps the driver's XID lines.

Stage: kernel log -> (this) -> ``XidObservation`` -> ``EventsCollector``. NVML's event API does
not report every XID (79, 119 and 120 among them), but the driver prints each one to the kernel
log, with the blamed process and, on newer drivers, the earlier XID that caused it::

    4,1183,5021338765,-;NVRM: Xid (PCI:0000:65:00): 79, pid='<unknown>', name=<unknown>, GPU …

A record is ``prio,seq,usec,flags[,...];message``; lines starting with a space continue the
record before it (``SUBSYSTEM=...``) and are skipped. ``poll`` reads everything available and
never blocks the tick: the device is opened non-blocking (``EAGAIN`` ends a poll) and, by
default, positioned at the end so that old boot messages are not replayed. ``EPIPE`` means the
kernel overwrote records before they were read: it is counted and reading goes on. Opening
fails without privileges (``CAP_SYSLOG`` or ``kernel.dmesg_restrict=0``): one WARNING and this
source stays off, the NVML source carries on.

Event times come from the record's timestamp (microseconds since boot), turned into wall-clock
time with the ``monotonic`` clock and clamped to the span since the previous poll: the records a
poll reads were logged after the previous one finished, so a kernel clock that drifted from
``CLOCK_MONOTONIC`` over a long uptime costs at most one tick of accuracy.

The path is injectable, and reading works on a regular file or FIFO too (several records per
read, a partial last line kept for the next poll), so tests feed recorded lines.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from agent.events.model import XidObservation, normalise_bus_id

_log = logging.getLogger(__name__)

DEFAULT_PATH = Path("/dev/kmsg")

_READ_SIZE = 16_384  # a kmsg read returns one record and fails if the buffer is smaller
_MAX_PARTIAL_BYTES = 65_536  # a "line" longer than this is not kmsg: dropped
_MAX_CODE = 65_535
_UNKNOWN = {"", "<unknown>", "N/A", "n/a", "unknown"}

_XID_RE = re.compile(
    r"NVRM: Xid \((?:PCI:)?(?P<bus>[0-9A-Fa-f]{1,8}:[0-9A-Fa-f]{1,2}:[0-9A-Fa-f]{1,2}(?:\.[0-7])?)"
    r"[^)]*\): (?P<code>\d{1,6})\b(?P<rest>.*)$"
)
_PID_RE = re.compile(r"^,\s*pid=(?:'(?P<quoted>[^']*)'|(?P<bare>[^,\s]*))")
_NAME_RE = re.compile(r"^,\s*name=(?P<name>[^,]*)")
_ROOT_CAUSE_RE = re.compile(r"caused by previous Xid\s+(?P<code>\d{1,6})\b", re.IGNORECASE)
_RECOVERY_RE = re.compile(r"\bto 0x(?P<value>[0-9A-Fa-f]{1,8})\b")
_RECOVERY_XID = 154  # "GPU recovery action changed ... to 0xN (...)"


@dataclass(frozen=True, slots=True)
class KmsgRecord:
    """One kernel log record: syslog priority, sequence number, timestamp and text."""

    priority: int
    seq: int
    usec: int  # microseconds since boot, on the kernel's monotonic clock
    message: str


@dataclass(frozen=True, slots=True)
class ParsedXid:
    """What an ``NVRM: Xid`` line says (bus id in canonical form)."""

    pci_bus_id: str
    code: int
    pid: int | None
    process: str | None
    root_cause: int | None
    recovery_action: int | None


def parse_record(line: str) -> KmsgRecord | None:
    """Returns: the record on one ``/dev/kmsg`` line, or None for a continuation or garbage."""
    header, separator, message = line.partition(";")
    if not separator or line.startswith(" "):
        return None
    fields = header.split(",")
    if len(fields) < 4:
        return None
    try:
        priority, seq, usec = int(fields[0]), int(fields[1]), int(fields[2])
    except ValueError:
        return None
    if min(priority, seq, usec) < 0:
        return None
    return KmsgRecord(priority, seq, usec, message.rstrip("\n"))


def parse_xid(message: str) -> ParsedXid | None:
    """Returns: the XID an ``NVRM: Xid (PCI:...)`` kernel message reports, or None."""
    match = _XID_RE.search(message)
    if match is None:
        return None
    bus = normalise_bus_id(match["bus"])
    code = int(match["code"])
    if bus is None or code > _MAX_CODE:
        return None
    rest = match["rest"]
    pid: int | None = None
    process: str | None = None
    pid_match = _PID_RE.match(rest)
    if pid_match is not None:
        text = pid_match["quoted"] if pid_match["quoted"] is not None else pid_match["bare"]
        pid = int(text) if text.isdigit() else None
        rest = rest[pid_match.end() :]
        name_match = _NAME_RE.match(rest)
        if name_match is not None:
            name = name_match["name"].strip()
            process = None if name in _UNKNOWN else name
    root = _ROOT_CAUSE_RE.search(rest)
    root_cause = int(root["code"]) if root is not None else None
    if root_cause is not None and root_cause > _MAX_CODE:
        root_cause = None
    recovery: int | None = None
    if code == _RECOVERY_XID:
        found = _RECOVERY_RE.search(rest)
        recovery = int(found["value"], 16) if found is not None else None
    return ParsedXid(bus, code, pid, process, root_cause, recovery)


class KmsgReader:
    """XID source over the kernel log.

    Args:
        path: the kernel log device (tests pass a regular file or FIFO of recorded lines).
        start_at_end: skip what is already in the log (True for ``/dev/kmsg``: no replay of
            old boot messages); False reads from the start.
        monotonic: the clock kmsg timestamps are on (``CLOCK_MONOTONIC``), in seconds; used to
            turn a record's timestamp into wall-clock time.
        max_reads_per_poll: bounds the work of one poll (one record per read on ``/dev/kmsg``).
        opener: opens the path, ``(path, flags) -> fd`` as for ``open(opener=...)``; tests
            inject failures (e.g. permission denied, which root cannot get from a file).
        read: reads from the descriptor, ``(fd, size) -> bytes`` as ``os.read``.
    """

    name = "kmsg"

    def __init__(
        self,
        path: Path = DEFAULT_PATH,
        *,
        start_at_end: bool = True,
        monotonic: Callable[[], float] = time.monotonic,
        max_reads_per_poll: int = 10_000,
        opener: Callable[[Path, int], int] = os.open,
        read: Callable[[int, int], bytes] = os.read,
    ) -> None:
        self._path = path
        self._start_at_end = start_at_end
        self._monotonic = monotonic
        self._max_reads = max_reads_per_poll
        self._opener = opener
        self._read = read
        self._fd: int | None = None
        self._off = False
        self._partial = b""
        self._overwritten = 0
        self._previous_poll: float | None = None

    @property
    def active(self) -> bool:
        """Whether the source still reads (False once it failed or was closed)."""
        return not self._off

    @property
    def overwritten(self) -> int:
        """Times the kernel overwrote records before they were read (``EPIPE``)."""
        return self._overwritten

    def poll(self, now: float) -> list[XidObservation]:
        """Read every record available now and return the XIDs among them.

        Args:
            now: the tick's wall-clock Unix time in seconds.
        """
        fd = self._open()
        if fd is None:
            return []
        data = self._read_available(fd)
        earliest, self._previous_poll = self._previous_poll, now
        if not data:
            return []
        lines = (self._partial + data).split(b"\n")
        self._partial = lines.pop()
        if len(self._partial) > _MAX_PARTIAL_BYTES:
            self._partial = b""
        boot_offset = now - self._monotonic()  # wall-clock time of the kernel's time zero
        observations = []
        for raw in lines:
            observation = self._observation(raw.decode("utf-8", errors="replace"))
            if observation is not None:
                seen = boot_offset + observation.time
                when = min(max(seen, earliest or 0.0), now) if seen > 0 else now
                observations.append(replace(observation, time=when))
        return observations

    def close(self) -> None:
        """Close the device; the source is then off."""
        self._off = True
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    def _open(self) -> int | None:
        if self._fd is not None or self._off:
            return self._fd
        try:
            fd = self._opener(self._path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            hint = (
                "give the agent CAP_SYSLOG or set kernel.dmesg_restrict=0"
                if isinstance(exc, PermissionError)
                else ""
            )
            self._turn_off(f"cannot open {self._path}: {exc.strerror or exc}", hint)
            return None
        if self._start_at_end:
            try:
                os.lseek(fd, 0, os.SEEK_END)
            except OSError as exc:  # a FIFO cannot seek: nothing old to skip
                _log.debug("kmsg: cannot seek to the end of %s: %s", self._path, exc)
        self._fd = fd
        return fd

    def _read_available(self, fd: int) -> bytes:
        chunks: list[bytes] = []
        overwritten = 0
        for _ in range(self._max_reads):
            try:
                chunk = self._read(fd, _READ_SIZE)
            except BlockingIOError:
                break  # EAGAIN: nothing more for now
            except BrokenPipeError:
                overwritten += 1  # EPIPE: records were overwritten; the next read goes on
                continue
            except OSError as exc:
                self._turn_off(f"reading {self._path} failed: {exc.strerror or exc}")
                break
            if not chunk:
                break  # end of a regular file, or a FIFO without a writer
            chunks.append(chunk)
        if overwritten:
            self._note_overwritten(overwritten)
        return b"".join(chunks)

    def _observation(self, line: str) -> XidObservation | None:
        """Returns: the XID on one line, its ``time`` still in seconds since boot."""
        record = parse_record(line)
        if record is None:
            return None
        xid = parse_xid(record.message)
        if xid is None:
            return None
        return XidObservation(
            source="kmsg",
            time=record.usec / 1e6,
            code=xid.code,
            pci_bus_id=xid.pci_bus_id,
            pid=xid.pid,
            process=xid.process,
            message=record.message,
            root_cause=xid.root_cause,
            recovery_action=xid.recovery_action,
        )

    def _note_overwritten(self, count: int) -> None:
        first = self._overwritten == 0
        self._overwritten += count
        (_log.warning if first else _log.debug)(
            "kmsg: the kernel overwrote %d record(s) before they were read (%d so far); "
            "XIDs among them are seen by NVML only",
            count,
            self._overwritten,
        )

    def _turn_off(self, reason: str, hint: str = "") -> None:
        self.close()
        _log.warning(
            "XID events from the kernel log off: %s. XIDs that NVML does not report (79, 119, "
            "120) will be missed%s",
            reason,
            f"; {hint}" if hint else "",
        )
