"""The ``schedstat`` collector: per-CPU scheduler time from ``/proc/schedstat``.

Output per CPU (``{cpu}``), as node_exporter's: ``node_schedstat_running_seconds_total`` (time
tasks ran on the CPU), ``node_schedstat_waiting_seconds_total`` (time runnable tasks waited
for it: run-queue latency, the scheduler's view of CPU contention) and
``node_schedstat_timeslices_total`` (timeslices run). The kernel counts nanoseconds.

Layouts: versions 15, 16 and 17 (Linux 4.x to 6.x) share the ``cpuN`` line, whose fields 7, 8
and 9 are these three counters; 16 reordered the idle-type columns and 17 named the domains, on
the ``domainN`` lines, which the collector skips. A kernel without ``CONFIG_SCHEDSTATS`` has no
``/proc/schedstat`` and yields nothing (so does a VM such as the recorded one). A file that
exists but has a ``cpuN`` line with fewer than nine integers, or a version before 15, raises
``MalformedFileError`` where node_exporter skips the line.
"""

from __future__ import annotations

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host._files import MalformedFileError, parse_int, read_optional

NANOSECONDS_PER_SECOND = 1e9
OLDEST_VERSION = 15


def parse_schedstat(path: str, text: str) -> list[tuple[str, int, int, int]]:
    """Returns: ``(cpu, running ns, waiting ns, timeslices)`` of each ``cpuN`` line.

    Raises:
        MalformedFileError: no version line, a version before 15, or a short ``cpuN`` line.
    """
    rows: list[tuple[str, int, int, int]] = []
    version: int | None = None
    for line in text.splitlines():
        key, _, rest = line.partition(" ")
        if key == "version":
            version = parse_int(path, rest.strip())
            if version < OLDEST_VERSION:
                raise MalformedFileError(path, f"schedstat version {version} is not supported")
        elif key.startswith("cpu") and key[3:].isdigit():
            fields = rest.split()
            if len(fields) < 9:
                raise MalformedFileError(path, f"short cpu line {line[:80]!r}")
            running, waiting, slices = (parse_int(path, field) for field in fields[6:9])
            rows.append((key[3:], running, waiting, slices))
    if version is None:
        raise MalformedFileError(path, "no version line")
    return rows


class SchedstatCollector:
    """Reads ``/proc/schedstat``; a kernel without it yields nothing."""

    name = "schedstat"

    def __init__(self, paths: HostPaths) -> None:
        self._path = paths.proc / "schedstat"

    def collect(self, now: float) -> list[Sample]:
        """Returns: three counters per CPU; nothing without ``/proc/schedstat``.

        Raises:
            MalformedFileError: the file does not parse.
        """
        text = read_optional(self._path)
        if text is None:
            return []
        samples: list[Sample] = []
        for cpu, running, waiting, slices in parse_schedstat(str(self._path), text):
            labels = {"cpu": cpu}
            samples.append(
                Sample(
                    "node_schedstat_running_seconds_total",
                    labels,
                    running / NANOSECONDS_PER_SECOND,
                )
            )
            samples.append(
                Sample(
                    "node_schedstat_waiting_seconds_total",
                    dict(labels),
                    waiting / NANOSECONDS_PER_SECOND,
                )
            )
            samples.append(Sample("node_schedstat_timeslices_total", dict(labels), float(slices)))
        return samples
