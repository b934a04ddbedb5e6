"""The ``stat`` collector: kernel activity counters from ``/proc/stat``, as node_exporter's.

Input: the ``ctxt``, ``intr``, ``processes``, ``btime``, ``procs_running`` and ``procs_blocked``
lines. Output: ``node_context_switches_total``, ``node_intr_total`` (all interrupts, the first
number of the ``intr`` line), ``node_forks_total``, ``node_boot_time_seconds`` (Unix time) and
the ``node_procs_running`` / ``node_procs_blocked`` gauges. On a large node the ``intr`` line
holds thousands of per-IRQ numbers; only its first number is split off.
"""

from __future__ import annotations

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host._files import MalformedFileError, parse_int, read_table

# /proc/stat key -> metric name.
_METRICS = {
    "ctxt": "node_context_switches_total",
    "intr": "node_intr_total",
    "processes": "node_forks_total",
    "btime": "node_boot_time_seconds",
    "procs_running": "node_procs_running",
    "procs_blocked": "node_procs_blocked",
}


class StatCollector:
    """Reads the system-wide counters and gauges of ``/proc/stat``."""

    name = "stat"

    def __init__(self, paths: HostPaths) -> None:
        self._path = paths.proc / "stat"

    def collect(self, now: float) -> list[Sample]:
        """Returns: one sample per key present.

        Raises:
            MalformedFileError: none of the keys is present, or a value is not an integer.
        """
        samples: list[Sample] = []
        for line in read_table(self._path).splitlines():
            if line.startswith("cpu"):
                continue
            key, _, rest = line.partition(" ")
            metric = _METRICS.get(key)
            if metric is None:
                continue
            first = rest.lstrip(" ").partition(" ")[0]
            samples.append(Sample(metric, {}, float(parse_int(self._path, first))))
        if not samples:
            raise MalformedFileError(self._path, "no ctxt, intr, btime or procs lines")
        return samples
