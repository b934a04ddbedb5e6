"""The ``hwmon`` collector: temperature sensors from ``/sys/class/hwmon``, as node_exporter's.

Output: ``node_hwmon_temp_celsius{chip,sensor}`` (``tempN_input``), ``node_hwmon_temp_max_celsius``
and ``node_hwmon_temp_crit_celsius`` (driver thresholds), and ``node_hwmon_chip_names{chip,
chip_name}`` = 1 mapping each chip to its driver name. Millidegrees become degrees Celsius.

Naming is node_exporter's: the ``chip`` label is built from the device the hwmon belongs to,
which is stable across reboots where ``hwmonN`` numbering is not: ``<parent dir>_<device dir>``
of the resolved ``device`` link (``platform_coretemp_0``, ``nvme_nvme0``,
``pci0000:00_0000:00:18_3``), else the ``name`` file, else ``hwmonN``; every part lower-cased
with characters outside ``[a-z0-9:_]`` replaced by ``_``. ``sensor`` is the cleaned
``tempN_label`` (``package_id_0``, ``composite``) or else ``tempN``. Sensor files are read from
the hwmon folder and from its ``device`` folder (older drivers put them there). A sensor whose
label repeats another's on the same chip is skipped, where node_exporter would fail the scrape.
No ``/sys/class/hwmon`` (most VMs) yields nothing.
"""

from __future__ import annotations

import logging
import os
import re

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host._files import read_attribute

logger = logging.getLogger(__name__)

MILLIDEGREES_PER_DEGREE = 1000

_INVALID = re.compile(r"[^a-z0-9:_]")
_TEMP_FILE = re.compile(r"^temp(\d+)(?:_(input|max|crit|label))?$")
_METRIC_FOR = {
    "input": "node_hwmon_temp_celsius",
    "": "node_hwmon_temp_celsius",  # a bare tempN file holds the reading on some drivers
    "max": "node_hwmon_temp_max_celsius",
    "crit": "node_hwmon_temp_crit_celsius",
}


def clean_name(text: str) -> str:
    """Returns: ``text`` lower-cased, invalid characters as ``_``, outer ``_`` stripped."""
    return _INVALID.sub("_", text.lower()).strip("_")


def chip_name(folder: str, name_file: str | None = None) -> str:
    """Returns: node_exporter's ``chip`` label for one ``/sys/class/hwmon/hwmonN`` folder.

    Args:
        folder: the hwmon folder.
        name_file: its ``name`` file's text when the caller has read it already.
    """
    device = f"{folder}/device"
    if os.path.exists(device):
        parent, leaf = os.path.split(os.path.realpath(device))
        kind, name = clean_name(os.path.basename(parent)), clean_name(leaf)
        if kind and name:
            return f"{kind}_{name}"
        if name:
            return name
    named = name_file if name_file is not None else read_attribute(f"{folder}/name")
    if named and clean_name(named):
        return clean_name(named)
    return clean_name(os.path.basename(os.path.realpath(folder)))


class HwmonCollector:
    """Reads every hwmon chip's temperature sensors."""

    name = "hwmon"

    def __init__(self, paths: HostPaths) -> None:
        self._root = paths.sys / "class" / "hwmon"

    def collect(self, now: float) -> list[Sample]:
        """Returns: temperature and chip-name samples; nothing when hwmon is absent."""
        try:
            with os.scandir(self._root) as listing:
                folders = sorted(entry.path for entry in listing if entry.is_dir())
        except (FileNotFoundError, NotADirectoryError):
            return []
        samples: list[Sample] = []
        for folder in folders:
            samples.extend(self._chip(folder))
        return samples

    def _chip(self, folder: str) -> list[Sample]:
        named = read_attribute(f"{folder}/name")
        chip = chip_name(folder, named)
        samples: list[Sample] = []
        if named and clean_name(named):
            samples.append(
                Sample("node_hwmon_chip_names", {"chip": chip, "chip_name": clean_name(named)}, 1.0)
            )
        # sensor number -> property ("" for a bare tempN) -> file text; later folders win.
        sensors: dict[int, dict[str, str]] = {}
        for where in (folder, f"{folder}/device"):
            self._read_sensors(where, sensors)
        taken: set[str] = set()
        for number in sorted(sensors):
            values = sensors[number]
            sensor = clean_name(values.get("label", "")) or f"temp{number}"
            if sensor in taken:
                logger.debug("hwmon %s: sensor name %r repeats; skipped", chip, sensor)
                continue
            taken.add(sensor)
            labels = {"chip": chip, "sensor": sensor}
            for prop, metric in _METRIC_FOR.items():
                if prop == "input" and "" in values:
                    continue  # the bare file is the reading; node_exporter does the same
                try:
                    millidegrees = float(values[prop])
                except (KeyError, ValueError):
                    continue
                samples.append(Sample(metric, dict(labels), millidegrees / MILLIDEGREES_PER_DEGREE))
        return samples

    @staticmethod
    def _read_sensors(folder: str, sensors: dict[int, dict[str, str]]) -> None:
        try:
            with os.scandir(folder) as listing:
                names = [entry.name for entry in listing if entry.name.startswith("temp")]
        except (FileNotFoundError, NotADirectoryError, PermissionError):
            return
        for file_name in names:
            match = _TEMP_FILE.match(file_name)
            if match is None:
                continue
            text = read_attribute(f"{folder}/{file_name}")
            if text is not None:
                sensors.setdefault(int(match.group(1)), {})[match.group(2) or ""] = text
