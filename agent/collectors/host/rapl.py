"""The ``rapl`` collector: CPU package and DRAM energy from the powercap RAPL zones.

Input: the zones under ``/sys/class/powercap`` (``intel-rapl:0``, its subzones ``intel-rapl:0:0``
..., and any other powercap zone such as ``intel-rapl-mmio:0``). AMD processors report through
the same kernel driver and the same ``intel-rapl:*`` folders, so they need nothing extra. Output:
one counter per zone, named as node_exporter's: ``node_rapl_<zone>_joules_total{index,path}``
for the zone names ``package``, ``core``, ``uncore``, ``dram`` and ``psys``, valued
``energy_uj`` / 1e6. The counter is sent raw; it wraps at ``max_energy_range_uj`` and the
server treats the wrap as a counter reset.

Zone naming and indexing are node_exporter's (its procfs library): folders are visited in
byte order of their names and only those with a ``name`` file are zones; a name ``<word>-<n>``
(``package-1``) is zone ``<word>`` with index ``n``, any other name (``dram``, ``psys``) is
indexed by how many zones of that name came before it. The ``path`` label is the zone's folder
as node_exporter reports it with its default ``--path.sysfs``
(``/sys/class/powercap/intel-rapl:0``), whatever ``HostPaths.sys`` is, so an agent in a
container reports the same series as one on the host. A zone whose name is not one of the five
(a multi-die ``package-0-die-1``, a non-RAPL powercap driver) is skipped with one debug line.

Since the fix for CVE-2020-8694 (PLATYPUS) the kernel lets only root read ``energy_uj``. An
unprivileged agent skips those zones and logs one warning saying so, once; no powercap folder
(VMs, most ARM servers) yields nothing and logs nothing. The zone list is re-read only when the
folder's listing changes (a driver loaded after the agent started).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host._files import parse_int, read_attribute, read_table

logger = logging.getLogger(__name__)

MICROJOULES_PER_JOULE = 1_000_000

LABEL_ROOT = "/sys/class/powercap"
"""Folder shown in the ``path`` label, node_exporter's with its default sysfs root."""

ZONE_METRICS: dict[str, str] = {
    zone: f"node_rapl_{zone}_joules_total" for zone in ("package", "core", "uncore", "dram", "psys")
}
"""Zone name -> metric, for every zone name the catalog lists."""

_INDEXED_NAME = re.compile(r"^([^-]*)-(\+?[0-9]+)$")  # Go's Split into two parts, then Atoi

FileReader = Callable[[Path], str]
"""Reads a file's text; raises ``OSError`` (``PermissionError`` for root-only files)."""


@dataclass(frozen=True)
class RaplZone:
    """One powercap zone: node_exporter's zone name and index, and its folder's name."""

    name: str
    index: int
    folder: str


def zone_name_and_index(raw: str, usages: dict[str, int]) -> tuple[str, int]:
    """Returns: the zone name and index for the text of a zone's ``name`` file.

    Args:
        raw: the ``name`` file's stripped text (``package-0``, ``dram``).
        usages: zone name -> index the next unindexed zone of that name gets; the caller
            records ``index + 1`` under the returned name after each zone.
    """
    match = _INDEXED_NAME.match(raw)
    if match is not None:
        return match.group(1), int(match.group(2))
    return raw, usages.get(raw, 0)


def list_zones(root: Path, folders: list[str]) -> list[RaplZone]:
    """Returns: the zones among ``folders`` (sorted names under ``root``), in that order."""
    zones: list[RaplZone] = []
    usages: dict[str, int] = {}
    for folder in folders:
        raw = read_attribute(root / folder / "name")
        if raw is None:
            continue  # a control-type folder (intel-rapl) or an unreadable zone
        name, index = zone_name_and_index(raw, usages)
        zones.append(RaplZone(name, index, folder))
        usages[name] = index + 1
    return zones


class RaplCollector:
    """Reads the energy counter of every RAPL zone the agent may read.

    Args:
        paths: where sysfs is.
        read_file: reads ``energy_uj``; tests inject one that refuses as the kernel does for
            an unprivileged reader.
    """

    name = "rapl"

    def __init__(self, paths: HostPaths, read_file: FileReader = read_table) -> None:
        self._root = paths.sys / "class" / "powercap"
        self._read_file = read_file
        self._listing: list[str] | None = None
        self._zones: list[RaplZone] = []
        self._told_denied = False
        self._told_skipped: set[str] = set()

    def collect(self, now: float) -> list[Sample]:
        """Returns: one energy counter per readable zone; nothing without powercap.

        Raises:
            MalformedFileError: an ``energy_uj`` holds something other than an integer.
        """
        try:
            with os.scandir(self._root) as listing:
                folders = sorted(entry.name for entry in listing if entry.is_dir())
        except (FileNotFoundError, NotADirectoryError):
            return []
        if folders != self._listing:
            self._zones = list_zones(self._root, folders)
            self._listing = folders
        samples: list[Sample] = []
        denied: list[str] = []
        for zone in self._zones:
            metric = ZONE_METRICS.get(zone.name)
            if metric is None:
                self._skip_once(zone)
                continue
            path = self._root / zone.folder / "energy_uj"
            try:
                text = self._read_file(path)
            except PermissionError:
                denied.append(zone.folder)
                continue
            except OSError as exc:  # the zone went away, or the driver refused (EIO, ENODATA)
                logger.debug("rapl %s: energy_uj unreadable: %s", zone.folder, exc)
                continue
            joules = parse_int(path, text.strip()) / MICROJOULES_PER_JOULE
            labels = {"index": str(zone.index), "path": f"{LABEL_ROOT}/{zone.folder}"}
            samples.append(Sample(metric, labels, joules))
        if denied and not self._told_denied:
            self._told_denied = True
            logger.warning(
                "rapl: no permission to read energy_uj of %s; since the CVE-2020-8694 fix the "
                "kernel lets only root read RAPL energy counters. Run the agent as root, or make "
                "the energy_uj files readable by its user (a udev or systemd-tmpfiles rule), to "
                "report CPU package and DRAM energy; until then these zones are skipped",
                ", ".join(denied),
            )
        return samples

    def _skip_once(self, zone: RaplZone) -> None:
        if zone.folder not in self._told_skipped:
            self._told_skipped.add(zone.folder)
            logger.debug(
                "rapl %s: zone name %r has no catalog metric; skipped", zone.folder, zone.name
            )
