"""The ``thermal_zone`` collector: ACPI and platform thermal zones and cooling devices.

Input: ``/sys/class/thermal/thermal_zoneN`` and ``/sys/class/thermal/cooling_deviceN``. Output,
named as node_exporter's: ``node_thermal_zone_temp{zone,type}`` (``temp`` in millidegrees, as
degrees Celsius; upstream's name has no unit suffix), and per cooling device
``node_cooling_device_cur_state{name,type}`` and ``node_cooling_device_max_state{name,type}``
(throttle steps: a ``Processor`` device's P-state limit, a fan's speed step). ``zone`` and
``name`` are the folder's number (``thermal_zone3`` -> ``3``), ``type`` its ``type`` file.

No ``/sys/class/thermal`` (most VMs) yields nothing. Deviations from node_exporter, each so a
reading the node does not have is left out: a zone whose ``temp`` cannot be read (drivers
answer EINVAL or ENODATA for a sensor that is not ready) is left out where node_exporter reports
0; a cooling device whose state cannot be read is left out (node_exporter drops it too), and so
is a negative ``cur_state`` (``intel_powerclamp`` answers -1 while it injects no idle time), the
device's ``max_state`` still reported.
"""

from __future__ import annotations

import os
import re

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host._files import parse_int, read_attribute

MILLIDEGREES_PER_DEGREE = 1000

_ZONE = re.compile(r"^thermal_zone([0-9]+)$")
_COOLING = re.compile(r"^cooling_device([0-9]+)$")


class ThermalZoneCollector:
    """Reads every thermal zone's temperature and every cooling device's state."""

    name = "thermal_zone"

    def __init__(self, paths: HostPaths) -> None:
        self._root = paths.sys / "class" / "thermal"

    def collect(self, now: float) -> list[Sample]:
        """Returns: zone temperatures and cooling states; nothing without the thermal class.

        Raises:
            MalformedFileError: a ``temp`` or state file holds a non-integer.
        """
        try:
            with os.scandir(self._root) as listing:
                names = [entry.name for entry in listing]
        except (FileNotFoundError, NotADirectoryError):
            return []
        zones: list[tuple[int, str]] = []
        coolers: list[tuple[int, str]] = []
        for name in names:
            if match := _ZONE.match(name):
                zones.append((int(match.group(1)), name))
            elif match := _COOLING.match(name):
                coolers.append((int(match.group(1)), name))
        samples: list[Sample] = []
        for number, name in sorted(zones):
            samples.extend(self._zone(f"{self._root}/{name}", str(number)))
        for number, name in sorted(coolers):
            samples.extend(self._cooling_device(f"{self._root}/{name}", str(number)))
        return samples

    @staticmethod
    def _zone(folder: str, zone: str) -> list[Sample]:
        kind = read_attribute(f"{folder}/type")
        text = read_attribute(f"{folder}/temp")
        if kind is None or not text:
            return []
        celsius = parse_int(f"{folder}/temp", text) / MILLIDEGREES_PER_DEGREE
        return [Sample("node_thermal_zone_temp", {"zone": zone, "type": kind}, celsius)]

    @staticmethod
    def _cooling_device(folder: str, name: str) -> list[Sample]:
        kind = read_attribute(f"{folder}/type")
        maximum = read_attribute(f"{folder}/max_state")
        current = read_attribute(f"{folder}/cur_state")
        if kind is None or not maximum or not current:
            return []
        labels = {"name": name, "type": kind}
        current_state = parse_int(f"{folder}/cur_state", current)
        samples = [
            Sample(
                "node_cooling_device_max_state",
                labels,
                float(parse_int(f"{folder}/max_state", maximum)),
            )
        ]
        if current_state >= 0:
            samples.append(
                Sample("node_cooling_device_cur_state", dict(labels), float(current_state))
            )
        return samples
