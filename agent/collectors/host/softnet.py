"""The ``softnet`` collector: per-CPU packet-receive statistics from ``/proc/net/softnet_stat``.

Input: one line per CPU of hexadecimal 32-bit columns; the kernel added columns over time
(9 until 2.6.39 added ``received_rps``, then ``flow_limit_count`` in 3.11, ``backlog_len`` and
the CPU's own number in 5.14, and two queue lengths since, which are not read). Output per
``{cpu}``, as node_exporter's softnet: counters ``node_softnet_processed_total``,
``dropped_total`` (backlog full), ``times_squeezed_total`` (the NAPI budget or time ran out with
work left: raise ``net.core.netdev_budget``), ``cpu_collision_total``, ``received_rps_total``,
``flow_limit_count_total``, and the gauge ``node_softnet_backlog_len``. The ``cpu`` label is
the line's own CPU column where the kernel writes one, else the line's position (offline CPUs
are skipped by the kernel, so on older kernels the position can differ from the CPU number,
as in node_exporter).

Deviation from node_exporter: a column an older kernel does not write is left out, where
node_exporter reports 0.
"""

from __future__ import annotations

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host._files import MalformedFileError, read_table

_MIN_COLUMNS = 9
_CPU_COLUMN = 12

# (column, metric): the counters every kernel writes, then those later kernels added.
_COLUMNS = (
    (0, "node_softnet_processed_total"),
    (1, "node_softnet_dropped_total"),
    (2, "node_softnet_times_squeezed_total"),
    (8, "node_softnet_cpu_collision_total"),
    (9, "node_softnet_received_rps_total"),
    (10, "node_softnet_flow_limit_count_total"),
    (11, "node_softnet_backlog_len"),
)


class SoftnetCollector:
    """Reads the per-CPU softnet counters."""

    name = "softnet"

    def __init__(self, paths: HostPaths) -> None:
        self._path = paths.proc / "net" / "softnet_stat"

    def collect(self, now: float) -> list[Sample]:
        """Returns: each column the kernel writes, per CPU (packets, events, backlog length).

        Raises:
            MalformedFileError: a line has fewer than 9 columns or one is not hexadecimal.
        """
        samples: list[Sample] = []
        for position, line in enumerate(read_table(self._path).splitlines()):
            columns = line.split()
            width = len(columns)
            if width < _MIN_COLUMNS:
                raise MalformedFileError(self._path, f"{width} columns on line {position + 1}")
            try:
                cpu = str(int(columns[_CPU_COLUMN], 16)) if width > _CPU_COLUMN else str(position)
                for column, metric in _COLUMNS:
                    if column < width:
                        value = float(int(columns[column], 16))
                        samples.append(Sample(metric, {"cpu": cpu}, value))
            except ValueError:
                raise MalformedFileError(self._path, f"bad line {line[:80]!r}") from None
        return samples
