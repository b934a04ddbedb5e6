"""The ``netclass`` collector: link state of each interface from ``/sys/class/net``.

Output per interface (``{device}``), as node_exporter's netclass: ``node_network_up`` (1 when
``operstate`` is ``up``), ``node_network_mtu_bytes``, ``node_network_speed_bytes`` (link speed,
Mbit/s x 125000 = bytes per second) and ``node_network_carrier``. An attribute the driver
cannot answer (speed or carrier of a link that is down answer EINVAL) is left out, and an
interface that vanishes mid-read (pod churn) simply yields less.

Deviation from node_exporter: a negative speed (the kernel's -1, "unknown") is left out where
node_exporter reports it as -125000 unless ``--collector.netclass.ignore-invalid-speed`` is set
(the announced default of its 2.x).
"""

from __future__ import annotations

import os

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host._files import parse_int, read_attribute
from agent.collectors.host.options import ExclusionFilter, HostOptions

MBIT_BYTES_PER_SECOND = 125_000
"""Bytes per second in one Mbit/s."""


class NetclassCollector:
    """Reads ``operstate``, ``mtu``, ``speed`` and ``carrier`` of each interface."""

    name = "netclass"

    def __init__(self, paths: HostPaths, options: HostOptions) -> None:
        self._root = paths.sys / "class" / "net"
        self._exclude = ExclusionFilter(options.network_devices_exclude)

    def collect(self, now: float) -> list[Sample]:
        """Returns: the link-state gauges of every interface; nothing without ``/sys/class/net``.

        Raises:
            MalformedFileError: ``mtu``, ``speed`` or ``carrier`` holds a non-integer.
        """
        try:
            with os.scandir(self._root) as listing:
                entries = sorted(entry.name for entry in listing if entry.is_dir())
        except (FileNotFoundError, NotADirectoryError):
            return []
        samples: list[Sample] = []
        for device in entries:
            if not self._exclude.excludes(device):
                samples.extend(self._interface(device))
        return samples

    def _interface(self, device: str) -> list[Sample]:
        folder = f"{self._root}/{device}"
        samples: list[Sample] = []
        operstate = read_attribute(f"{folder}/operstate")
        if operstate is not None:
            samples.append(Sample("node_network_up", {"device": device}, float(operstate == "up")))
        mtu = read_attribute(f"{folder}/mtu")
        if mtu is not None:
            value = parse_int(f"{folder}/mtu", mtu)
            samples.append(Sample("node_network_mtu_bytes", {"device": device}, float(value)))
        speed = read_attribute(f"{folder}/speed")
        if speed is not None:
            mbits = parse_int(f"{folder}/speed", speed)
            if mbits >= 0:
                bytes_per_second = float(mbits * MBIT_BYTES_PER_SECOND)
                samples.append(
                    Sample("node_network_speed_bytes", {"device": device}, bytes_per_second)
                )
        carrier = read_attribute(f"{folder}/carrier")
        if carrier is not None:
            value = parse_int(f"{folder}/carrier", carrier)
            samples.append(Sample("node_network_carrier", {"device": device}, float(value)))
        return samples
