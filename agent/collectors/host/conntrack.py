"""The ``conntrack`` collector: the netfilter connection-tracking table's fill and statistics.

Input: ``/proc/sys/net/netfilter/nf_conntrack_{count,max}`` and ``/proc/net/stat/nf_conntrack``
(a header line of column names, then one line of hexadecimal counters per CPU); all exist only
while the ``nf_conntrack`` module is loaded, and a node without it yields nothing. Output, as
node_exporter's conntrack, gauges: ``node_nf_conntrack_entries`` and
``node_nf_conntrack_entries_limit`` (a full table drops new connections: the kernel logs
"nf_conntrack: table full, dropping packet"), and ``node_nf_conntrack_stat_<column>`` for
``found``, ``invalid``, ``ignore``, ``insert``, ``insert_failed``, ``drop``, ``early_drop`` and
``search_restart``, each summed over the CPUs. The statistics only grow, but node_exporter
types them as gauges, so the catalog does too (and marks them monotonic).

Columns are found by their header names (kernels renamed some columns that are not read), and
the header is parsed once and reused while it stays the same.
"""

from __future__ import annotations

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host._files import MalformedFileError, parse_int, read_optional

_STAT_COLUMNS = (
    "found",
    "invalid",
    "ignore",
    "insert",
    "insert_failed",
    "drop",
    "early_drop",
    "search_restart",
)


class ConntrackCollector:
    """Reads the table size, its limit and the per-CPU statistics, when conntrack is loaded."""

    name = "conntrack"

    def __init__(self, paths: HostPaths) -> None:
        folder = paths.proc / "sys" / "net" / "netfilter"
        self._gauges = (
            (folder / "nf_conntrack_count", "node_nf_conntrack_entries"),
            (folder / "nf_conntrack_max", "node_nf_conntrack_entries_limit"),
        )
        self._stat = paths.proc / "net" / "stat" / "nf_conntrack"
        self._header = ""
        self._columns: tuple[tuple[int, str], ...] = ()
        self._width = 0

    def collect(self, now: float) -> list[Sample]:
        """Returns: entries, limit and the summed statistics present (counts).

        Raises:
            MalformedFileError: a file does not parse.
        """
        samples: list[Sample] = []
        for path, metric in self._gauges:
            text = read_optional(path)
            if text is not None:
                samples.append(Sample(metric, {}, float(parse_int(path, text.strip()))))
        text = read_optional(self._stat)
        if text is not None:
            samples.extend(self._statistics(text))
        return samples

    def _statistics(self, text: str) -> list[Sample]:
        lines = text.splitlines()
        if not lines:
            raise MalformedFileError(self._stat, "empty")
        if lines[0] != self._header:
            self._parse_header(lines[0])
        if len(lines) == 1:
            return []  # no CPU lines: nothing was counted, so nothing is reported
        totals = [0] * len(self._columns)
        for line in lines[1:]:
            values = line.split()
            if len(values) != self._width:
                raise MalformedFileError(
                    self._stat, f"{len(values)} columns, header has {self._width}"
                )
            try:
                for slot, (column, _) in enumerate(self._columns):
                    totals[slot] += int(values[column], 16)
            except ValueError:
                raise MalformedFileError(self._stat, f"bad line {line[:80]!r}") from None
        return [
            Sample(metric, {}, float(total))
            for (_, metric), total in zip(self._columns, totals, strict=True)
        ]

    def _parse_header(self, header: str) -> None:
        names = header.split()
        if "entries" not in names:
            raise MalformedFileError(self._stat, f"bad header {header[:80]!r}")
        self._columns = tuple(
            (names.index(column), f"node_nf_conntrack_stat_{column}")
            for column in _STAT_COLUMNS
            if column in names
        )
        self._width = len(names)
        self._header = header
