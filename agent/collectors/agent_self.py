"""The agent's own health: delivery backlog, drops, send failures, state writes, and its process.

Operators need to see a struggling agent (server away, spool filling up) from the server side,
and the agent's footprint on every node, without logging in to the node.

Stage: collectors. Input: the spool's and the shipper's counters, the last tick's duration, and
this process's ``/proc/self`` (``stat``, ``limits``, ``fd/``) with ``/proc/stat``'s ``btime``.
Output: ``dcmon_agent_*`` and the Prometheus client libraries' process set under their standard
names (``process_cpu_seconds_total``, ``process_resident_memory_bytes``,
``process_virtual_memory_bytes``, ``process_virtual_memory_max_bytes``, ``process_open_fds``,
``process_max_fds``, ``process_start_time_seconds``), as node_exporter reports its own process,
so dashboards written for it (1860's "Node Exporter" row) show the agent of each node.

Values as the Go client computes them: CPU is ``stat``'s utime + stime over ``SC_CLK_TCK``,
memory ``stat``'s vsize and rss (pages x page size), the start time ``starttime`` / ticks +
``btime``; the two limits are the soft ones of ``limits``, "unlimited" as 2**64 - 1 (what the
Go client prints: ``1.8446744073709552e+19``). Cost per tick: one read of ``stat`` and one
listing of ``fd/`` (tens of microseconds); ``limits`` is read again every
``LIMITS_REFRESH_SECONDS`` (``setrlimit`` can change it), ``btime`` and the start time once.
A file that is missing is left out with its readings; one that exists and does not parse raises
``MalformedFileError``.
"""

from __future__ import annotations

import os
import resource
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from agent import __version__
from agent.collectors.base import Sample
from agent.collectors.host._files import MalformedFileError
from agent.shipper import ShipperStats
from agent.spool.base import SpoolStats

LIMITS_REFRESH_SECONDS = 60.0
UNLIMITED = float(2**64 - 1)
"""``RLIM_INFINITY`` as the Go client reports it (a uint64's all ones, as a float)."""
OPEN_FILES_LIMIT = "Max open files"
ADDRESS_SPACE_LIMIT = "Max address space"
_STAT_BYTES = 4096


class ProcessLimits(NamedTuple):
    """Soft limits of ``/proc/<pid>/limits``; None where the file has no such line."""

    max_fds: float | None
    virtual_memory_max_bytes: float | None


class ProcessStat(NamedTuple):
    """The fields of ``/proc/<pid>/stat`` the process set needs, in base units."""

    cpu_seconds: float
    start_ticks: int
    virtual_memory_bytes: float
    resident_memory_bytes: float


def parse_stat(path: str, text: str, ticks_per_second: float, page_bytes: int) -> ProcessStat:
    """Returns: CPU, start and memory of a ``/proc/<pid>/stat`` line.

    The command name (field 2) may hold spaces and parentheses, so fields are counted after its
    last ``)``.

    Raises:
        MalformedFileError: the line has no ``)`` or too few integer fields after it.
    """
    _, bracket, rest = text.rpartition(")")
    fields = rest.split()
    try:
        if not bracket or len(fields) < 22:
            raise ValueError
        return ProcessStat(
            cpu_seconds=(int(fields[11]) + int(fields[12])) / ticks_per_second,
            start_ticks=int(fields[19]),
            virtual_memory_bytes=float(int(fields[20])),
            resident_memory_bytes=float(int(fields[21]) * page_bytes),
        )
    except ValueError:
        raise MalformedFileError(path, f"not a stat line: {text[:80]!r}") from None


def parse_limits(path: str, text: str) -> ProcessLimits:
    """Returns: the soft open-files and address-space limits of a ``limits`` table.

    Raises:
        MalformedFileError: a line of either limit has no number (or "unlimited") after its name.
    """
    found: dict[str, float] = {}
    for line in text.splitlines():
        for name in (OPEN_FILES_LIMIT, ADDRESS_SPACE_LIMIT):
            if line.startswith(name):
                soft = line[len(name) :].split()[:1]
                found[name] = _limit(path, soft[0] if soft else "")
    return ProcessLimits(found.get(OPEN_FILES_LIMIT), found.get(ADDRESS_SPACE_LIMIT))


def _limit(path: str, text: str) -> float:
    if text == "unlimited":
        return UNLIMITED
    if not text.isdigit():
        raise MalformedFileError(path, f"expected a limit or 'unlimited', found {text[:40]!r}")
    return float(int(text))


def parse_boot_time(path: str, text: str) -> float:
    """Returns: ``btime`` (Unix seconds of the boot) from ``/proc/stat``.

    Raises:
        MalformedFileError: no ``btime`` line, or one without an integer.
    """
    for line in text.splitlines():
        if line.startswith("btime "):
            value = line[6:].strip()
            if value.isdigit():
                return float(int(value))
            break
    raise MalformedFileError(path, "no 'btime <seconds>' line")


def _read(path: str) -> str | None:
    """Returns: the file's text (one ``read`` of at most ``_STAT_BYTES``), or None if absent."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, _STAT_BYTES).decode("ascii", errors="replace")
    except OSError:
        return None
    finally:
        os.close(fd)


class ProcessReader:
    """This process's readings under the Prometheus client libraries' ``process_*`` names.

    Args:
        proc_self: the process's ``/proc/<pid>`` (``/proc/self``); ``stat`` of its parent
            folder holds ``btime``.
    """

    def __init__(self, proc_self: Path = Path("/proc/self")) -> None:
        self._stat = str(proc_self / "stat")
        self._limits_path = str(proc_self / "limits")
        self._fd = str(proc_self / "fd")
        self._proc_stat = proc_self.parent / "stat"
        self._ticks = float(os.sysconf("SC_CLK_TCK"))
        self._page_bytes = resource.getpagesize()
        self._limits = ProcessLimits(None, None)
        self._limits_read_at: float | None = None
        self._boot_time: float | None = None
        self._start_time: float | None = None

    def collect(self, now: float) -> list[Sample]:
        """Returns: the process set at ``now`` (Unix seconds), without what cannot be read.

        Raises:
            MalformedFileError: ``stat``, ``limits`` or ``/proc/stat`` does not parse (a bad
                ``limits`` or ``/proc/stat`` fails one tick per refresh, not every tick).
        """
        since = None if self._limits_read_at is None else now - self._limits_read_at
        if since is None or not 0 <= since < LIMITS_REFRESH_SECONDS:
            self._limits_read_at = now  # first: a file that does not parse fails this tick only
            self._refresh_limits()
        samples: list[Sample] = []
        text = _read(self._stat)
        if text is not None:
            stat = parse_stat(self._stat, text, self._ticks, self._page_bytes)
            samples += (
                Sample("process_cpu_seconds_total", {}, stat.cpu_seconds),
                Sample("process_resident_memory_bytes", {}, stat.resident_memory_bytes),
                Sample("process_virtual_memory_bytes", {}, stat.virtual_memory_bytes),
            )
            start = self._start_seconds(stat.start_ticks)
            if start is not None:
                samples.append(Sample("process_start_time_seconds", {}, start))
        limits = self._limits
        if limits.virtual_memory_max_bytes is not None:
            value = limits.virtual_memory_max_bytes
            samples.append(Sample("process_virtual_memory_max_bytes", {}, value))
        try:
            open_fds = len(os.listdir(self._fd))
        except OSError:
            pass
        else:
            samples.append(Sample("process_open_fds", {}, float(open_fds)))
        if limits.max_fds is not None:
            samples.append(Sample("process_max_fds", {}, limits.max_fds))
        return samples

    def _refresh_limits(self) -> None:
        self._limits = ProcessLimits(None, None)
        text = _read(self._limits_path)
        if text is not None:
            self._limits = parse_limits(self._limits_path, text)
        if self._boot_time is None:
            try:
                text = self._proc_stat.read_text(encoding="ascii", errors="replace")
            except OSError:
                return
            self._boot_time = parse_boot_time(str(self._proc_stat), text)

    def _start_seconds(self, start_ticks: int) -> float | None:
        if self._start_time is None and self._boot_time is not None:
            self._start_time = self._boot_time + start_ticks / self._ticks
        return self._start_time


class AgentSelfCollector:
    """Samples ``dcmon_agent_*`` from the spool and the shipper, and ``process_*`` of this
    process."""

    name = "agent"

    def __init__(
        self,
        spool_stats: Callable[[], SpoolStats],
        shipper_stats: Callable[[], ShipperStats],
        last_tick_seconds: Callable[[], float | None],
        proc_self: Path = Path("/proc/self"),
        state_write_errors: Callable[[], int] | None = None,
    ) -> None:
        """Args:
        state_write_errors: failed writes of the state directory's files (the batch seq);
            None: not reported.
        """
        self._spool_stats = spool_stats
        self._shipper_stats = shipper_stats
        self._last_tick_seconds = last_tick_seconds
        self._process = ProcessReader(proc_self)
        self._state_write_errors = state_write_errors

    def collect(self, now: float) -> list[Sample]:
        spool = self._spool_stats()
        shipper = self._shipper_stats()
        samples = [
            Sample("dcmon_agent_info", {"version": __version__}, 1.0),
            Sample("dcmon_agent_spool_batches", {}, float(spool.batches)),
            Sample("dcmon_agent_spool_bytes", {}, float(spool.bytes)),
            Sample("dcmon_agent_spool_oldest_age_seconds", {}, spool.oldest_age_seconds),
            Sample(
                "dcmon_agent_spool_dropped_batches_total", {}, float(spool.dropped_batches_total)
            ),
            Sample("dcmon_agent_spool_dropped_bytes_total", {}, float(spool.dropped_bytes_total)),
            Sample(
                "dcmon_agent_spool_corrupt_records_total", {}, float(spool.corrupt_records_total)
            ),
            Sample("dcmon_agent_spool_degraded", {}, 1.0 if spool.degraded else 0.0),
            Sample("dcmon_agent_spool_budget_bytes", {}, float(spool.budget_bytes)),
            Sample("dcmon_agent_sent_batches_total", {}, float(shipper.sent_batches_total)),
            Sample("dcmon_agent_send_failures_total", {}, float(shipper.send_failures_total)),
            Sample("dcmon_agent_rejected_batches_total", {}, float(shipper.rejected_batches_total)),
            Sample("dcmon_agent_poison_batches_total", {}, float(shipper.poison_batches_total)),
            Sample("dcmon_agent_shipper_restarts_total", {}, float(shipper.restarts_total)),
            Sample("dcmon_agent_compact_batches_total", {}, float(shipper.compact_batches_total)),
            Sample(
                "dcmon_agent_compact_fallbacks_total", {}, float(shipper.compact_fallbacks_total)
            ),
        ]
        samples.extend(self._process.collect(now))
        if self._state_write_errors is not None:
            errors = float(self._state_write_errors())
            samples.append(Sample("dcmon_agent_state_write_errors_total", {}, errors))
        last_tick = self._last_tick_seconds()
        if last_tick is not None:
            samples.append(Sample("dcmon_agent_tick_duration_seconds", {}, last_tick))
        return samples
