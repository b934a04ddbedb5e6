"""The ``loadavg`` collector: ``node_load1``, ``node_load5`` and ``node_load15``.

From ``/proc/loadavg``: the kernel's exponentially damped averages of runnable plus
uninterruptible tasks over 1, 5 and 15 minutes (a task count, not a ratio; divide by the CPU
count to compare nodes).
"""

from __future__ import annotations

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host._files import MalformedFileError, read_table

_NAMES = ("node_load1", "node_load5", "node_load15")


class LoadavgCollector:
    """Reads the three load averages."""

    name = "loadavg"

    def __init__(self, paths: HostPaths) -> None:
        self._path = paths.proc / "loadavg"

    def collect(self, now: float) -> list[Sample]:
        """Returns: the three load-average gauges (tasks).

        Raises:
            MalformedFileError: fewer than three numbers.
        """
        fields = read_table(self._path).split()
        if len(fields) < 3:
            raise MalformedFileError(self._path, "expected three load averages")
        try:
            values = [float(field) for field in fields[:3]]
        except ValueError:
            raise MalformedFileError(self._path, f"bad load average {fields[:3]!r}") from None
        return [Sample(name, {}, value) for name, value in zip(_NAMES, values, strict=True)]
