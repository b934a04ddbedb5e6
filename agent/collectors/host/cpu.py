"""The ``cpu`` collector: per-CPU time by mode from ``/proc/stat``, as node_exporter's.

Input: the ``cpuN`` lines of ``/proc/stat``, in clock ticks of USER_HZ = 100 per second (its
value on x86_64, arm64 and ppc64le, and what node_exporter's procfs assumes too). Output:
``node_cpu_seconds_total{cpu,mode}`` for the eight modes and
``node_cpu_guest_seconds_total{cpu,mode="user|nice"}``. Guest time is already included in the
kernel's user and nice columns; it is reported on its own, never added again.

Some kernels let a CPU's idle and iowait counters step back slightly (they are estimated for
NO_HZ CPUs). As node_exporter does, a value lower than the last one reported is held at the
last one, so the server never mistakes the dip for a counter reset; a drop of idle time of 3 s
or more means the CPU went offline and back (hotplug) and its counters start afresh.
"""

from __future__ import annotations

import logging

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host._files import MalformedFileError, read_table

logger = logging.getLogger(__name__)

USER_HZ = 100
"""Clock ticks per second in ``/proc/stat`` (the kernel's USER_HZ)."""
JUMP_BACK_SECONDS = 3.0
"""A drop of a CPU's idle time this large (seconds) is a hotplug, not a counter dip."""
_IDLE = 3  # column of idle time

# Column order of a cpuN line after its label, as documented in proc(5).
_MODES = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")
_GUEST_COLUMNS = ((8, "user"), (9, "nice"))


class CpuCollector:
    """Reads per-CPU mode times; one sample per CPU and mode, in seconds."""

    name = "cpu"

    def __init__(self, paths: HostPaths) -> None:
        self._path = paths.proc / "stat"
        self._last: dict[str, list[float]] = {}  # cpu -> seconds per column last reported

    def collect(self, now: float) -> list[Sample]:
        """Returns: ``node_cpu_seconds_total`` and ``node_cpu_guest_seconds_total`` samples.

        Raises:
            MalformedFileError: no per-CPU line, or a column that is not an integer.
        """
        samples: list[Sample] = []
        reported: dict[str, list[float]] = {}
        for line in read_table(self._path).splitlines():
            if not line.startswith("cpu"):
                break  # the cpu lines come first; nothing after them is ours
            fields = line.split()
            cpu = fields[0][3:]
            if not cpu:
                continue  # the aggregate "cpu" line; node_exporter reports per CPU only
            if not cpu.isdigit() or len(fields) < 5:
                raise MalformedFileError(self._path, f"bad cpu line {line[:60]!r}")
            try:
                ticks = [int(value) for value in fields[1:]]
            except ValueError:
                raise MalformedFileError(self._path, f"bad cpu line {line[:60]!r}") from None
            seconds = reported[cpu] = self._monotonic(cpu, [tick / USER_HZ for tick in ticks])
            for mode, value in zip(_MODES, seconds, strict=False):
                samples.append(Sample("node_cpu_seconds_total", {"cpu": cpu, "mode": mode}, value))
            for column, mode in _GUEST_COLUMNS:
                if column < len(seconds):
                    labels = {"cpu": cpu, "mode": mode}
                    samples.append(Sample("node_cpu_guest_seconds_total", labels, seconds[column]))
        if not samples:
            raise MalformedFileError(self._path, "no per-CPU lines")
        self._last = reported  # CPUs gone offline are forgotten
        return samples

    def _monotonic(self, cpu: str, seconds: list[float]) -> list[float]:
        """Returns: ``seconds`` with each column held at its last reported value if lower."""
        last = self._last.get(cpu)
        if last is None or len(last) != len(seconds):
            return seconds
        if last[_IDLE] - seconds[_IDLE] >= JUMP_BACK_SECONDS:
            logger.debug(
                "cpu%s idle time went back %.1f s: hotplug, counters restart",
                cpu,
                last[_IDLE] - seconds[_IDLE],
            )
            return seconds
        return [max(new, old) for new, old in zip(seconds, last, strict=True)]
