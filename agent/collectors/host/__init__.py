"""Host collectors: the node's CPU, memory, disks, network, clock and sensors as node_exporter
metrics.

Stage: collectors. Input: the kernel's interfaces under ``HostPaths`` (``/proc``, ``/sys`` and
the host's root, so the agent can run in a container with the host mounted at ``/host``).
Output: ``Sample``s whose names, labels, types and units are node_exporter's, listed in
``agent/wire/catalog/host.toml``.

Every collector reads its files serially, once per tick, and keeps its compiled patterns from
construction. An interface the node does not have (PSI, hwmon, one attribute of one NIC)
yields nothing; a procfs table every Linux has (``/proc/stat``) missing, or any file that exists
but does not parse, raises, and the daemon marks that collector failed for the tick.

``HOST_COLLECTORS`` is the registry: name -> ``HostCollectorFactory`` with its default state and
a ``build(paths, options)``. Nothing is built or started at import.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from agent.collectors.base import Collector, HostPaths
from agent.collectors.host.arp import ArpCollector
from agent.collectors.host.clock import TimeCollector
from agent.collectors.host.conntrack import ConntrackCollector
from agent.collectors.host.cpu import CpuCollector
from agent.collectors.host.cpufreq import CpufreqCollector
from agent.collectors.host.diskstats import DiskstatsCollector
from agent.collectors.host.entropy import EntropyCollector
from agent.collectors.host.filefd import FilefdCollector
from agent.collectors.host.filesystem import FilesystemCollector
from agent.collectors.host.hwmon import HwmonCollector
from agent.collectors.host.infiniband import InfinibandCollector
from agent.collectors.host.kernel_hung import KernelHungCollector
from agent.collectors.host.loadavg import LoadavgCollector
from agent.collectors.host.meminfo import MeminfoCollector
from agent.collectors.host.netclass import NetclassCollector
from agent.collectors.host.netdev import NetdevCollector
from agent.collectors.host.netstat import NetstatCollector
from agent.collectors.host.options import HostOptions
from agent.collectors.host.powersupply import PowerSupplyClassCollector
from agent.collectors.host.pressure import PressureCollector
from agent.collectors.host.procstat import StatCollector
from agent.collectors.host.rapl import RaplCollector
from agent.collectors.host.schedstat import SchedstatCollector
from agent.collectors.host.sockstat import SockstatCollector
from agent.collectors.host.softnet import SoftnetCollector
from agent.collectors.host.textfile import TextfileCollector
from agent.collectors.host.thermal_zone import ThermalZoneCollector
from agent.collectors.host.timex import TimexCollector
from agent.collectors.host.udp_queues import UdpQueuesCollector
from agent.collectors.host.uname import UnameCollector
from agent.collectors.host.vmstat import VmstatCollector
from agent.wire.catalog import default_catalog

__all__ = ["HOST_COLLECTORS", "HostCollectorFactory", "HostOptions", "build_host_collectors"]


@dataclass(frozen=True)
class HostCollectorFactory:
    """How to build one host collector, and whether it runs when not configured."""

    default_enabled: bool
    build: Callable[[HostPaths, HostOptions], Collector]


HOST_COLLECTORS: dict[str, HostCollectorFactory] = {
    "cpu": HostCollectorFactory(True, lambda paths, _options: CpuCollector(paths)),
    "stat": HostCollectorFactory(True, lambda paths, _options: StatCollector(paths)),
    "loadavg": HostCollectorFactory(True, lambda paths, _options: LoadavgCollector(paths)),
    "meminfo": HostCollectorFactory(True, lambda paths, _options: MeminfoCollector(paths)),
    "vmstat": HostCollectorFactory(True, lambda paths, _options: VmstatCollector(paths)),
    "filesystem": HostCollectorFactory(True, FilesystemCollector),
    "diskstats": HostCollectorFactory(True, DiskstatsCollector),
    "netdev": HostCollectorFactory(True, NetdevCollector),
    "netclass": HostCollectorFactory(True, NetclassCollector),
    "pressure": HostCollectorFactory(True, lambda paths, _options: PressureCollector(paths)),
    "hwmon": HostCollectorFactory(True, lambda paths, _options: HwmonCollector(paths)),
    "rapl": HostCollectorFactory(True, lambda paths, _options: RaplCollector(paths)),
    "time": HostCollectorFactory(True, lambda _paths, _options: TimeCollector()),
    "uname": HostCollectorFactory(True, lambda paths, _options: UnameCollector(paths)),
    "filefd": HostCollectorFactory(True, lambda paths, _options: FilefdCollector(paths)),
    "netstat": HostCollectorFactory(True, lambda paths, _options: NetstatCollector(paths)),
    "sockstat": HostCollectorFactory(True, lambda paths, _options: SockstatCollector(paths)),
    "softnet": HostCollectorFactory(True, lambda paths, _options: SoftnetCollector(paths)),
    "udp_queues": HostCollectorFactory(True, lambda paths, _options: UdpQueuesCollector(paths)),
    "conntrack": HostCollectorFactory(True, lambda paths, _options: ConntrackCollector(paths)),
    "arp": HostCollectorFactory(True, ArpCollector),
    "entropy": HostCollectorFactory(True, lambda paths, _options: EntropyCollector(paths)),
    "timex": HostCollectorFactory(True, lambda _paths, _options: TimexCollector()),
    "kernel_hung": HostCollectorFactory(True, lambda paths, _options: KernelHungCollector(paths)),
    "cpufreq": HostCollectorFactory(True, lambda paths, _options: CpufreqCollector(paths)),
    "schedstat": HostCollectorFactory(True, lambda paths, _options: SchedstatCollector(paths)),
    "thermal_zone": HostCollectorFactory(True, lambda paths, _options: ThermalZoneCollector(paths)),
    "powersupplyclass": HostCollectorFactory(
        True, lambda paths, _options: PowerSupplyClassCollector(paths)
    ),
    "infiniband": HostCollectorFactory(True, lambda paths, _options: InfinibandCollector(paths)),
    "textfile": HostCollectorFactory(True, lambda _paths, options: _textfile(options)),
}


def _textfile(options: HostOptions) -> Collector:
    directory = Path(options.textfile_directory) if options.textfile_directory else None
    return TextfileCollector(directory, reserved_names=default_catalog())


def build_host_collectors(
    paths: HostPaths,
    options: HostOptions,
    enabled: dict[str, bool] | None = None,
) -> list[Collector]:
    """Returns: the host collectors to run, in registry order.

    Args:
        paths: where the kernel interfaces are.
        options: exclusions and the statvfs deadline.
        enabled: name -> on/off overrides; a collector not named keeps its default.

    Raises:
        KeyError: ``enabled`` names a collector that does not exist.
    """
    overrides = enabled or {}
    unknown = set(overrides) - set(HOST_COLLECTORS)
    if unknown:
        raise KeyError(f"unknown host collectors: {sorted(unknown)}")
    return [
        factory.build(paths, options)
        for name, factory in HOST_COLLECTORS.items()
        if overrides.get(name, factory.default_enabled)
    ]
