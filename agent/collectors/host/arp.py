"""The ``arp`` collector: IPv4 neighbour-table entries per interface, from ``/proc/net/arp``.

Input: the table (a header line, then ``IP address  HW type  Flags  HW address  Mask  Device``
per entry; the kernel leaves out ``NOARP`` entries, as node_exporter's netlink reading does).
Absent when IPv4 is off, which yields nothing. Output, as node_exporter's arp: the gauge
``node_arp_entries{device}``, entries per interface, incomplete and failed ones included. A
count near ``net.ipv4.neigh.default.gc_thresh3`` means the kernel is about to refuse new
neighbours ("neighbour table overflow"), a known failure of large flat L2 fabrics.

Deviation from node_exporter (whose ``--collector.arp.device-exclude`` defaults to nothing):
interfaces that ``HostOptions.network_devices_exclude`` leaves out of netdev and netclass (pod
interfaces by default) are left out here too, for the same reason: one short-lived series per
pod.
"""

from __future__ import annotations

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host._files import MalformedFileError, read_optional
from agent.collectors.host.options import ExclusionFilter, HostOptions

_COLUMNS = 6


class ArpCollector:
    """Counts the neighbour entries of each interface."""

    name = "arp"

    def __init__(self, paths: HostPaths, options: HostOptions) -> None:
        self._path = paths.proc / "net" / "arp"
        self._exclude = ExclusionFilter(options.network_devices_exclude)

    def collect(self, now: float) -> list[Sample]:
        """Returns: one entry count per interface that has entries.

        Raises:
            MalformedFileError: an entry line does not have six columns.
        """
        text = read_optional(self._path)
        if text is None:
            return []
        counts: dict[str, int] = {}
        for line in text.splitlines()[1:]:
            columns = line.split()
            if not columns:
                continue
            if len(columns) != _COLUMNS:
                raise MalformedFileError(self._path, f"bad entry {line[:80]!r}")
            device = columns[5]
            counts[device] = counts.get(device, 0) + 1
        return [
            Sample("node_arp_entries", {"device": device}, float(count))
            for device, count in counts.items()
            if not self._exclude.excludes(device)
        ]
