"""Inventory: slow-changing facts about the node (host and GPUs), sent only when useful.

Stage: beside the collectors, into the batch. Facts are sent with the first batch, whenever
they change, and every ``refresh_seconds`` so a server that lost them (new database, restore)
learns them again without an agent restart. Host facts come from files (``/proc/cpuinfo`` is
large on big nodes), so they are read only at start and at each refresh; the GPU inventory is
already in memory and is compared every tick.
"""

from __future__ import annotations

import logging
import os
import platform
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Protocol

from agent import __version__
from agent.collectors.base import HostPaths
from agent.wire.schema import GpuFacts, HostFacts, Inventory

_log = logging.getLogger(__name__)


class GpuInventoryView(Protocol):
    """What the GPU collector knows of the node's GPUs."""

    @property
    def driver_version(self) -> str | None: ...
    @property
    def gpus(self) -> Sequence[GpuFacts]: ...
    @property
    def status(self) -> str:
        """Why no GPU data flows, when none does; empty otherwise."""
        ...


GpuInventorySource = Callable[[], GpuInventoryView]


def read_host_facts(paths: HostPaths) -> HostFacts:
    """Returns: OS, kernel, CPU and memory facts read from the host's files."""
    uname = platform.uname()
    return HostFacts(
        os=_os_pretty_name(paths.rootfs),
        kernel=_read(paths.proc / "sys/kernel/osrelease") or uname.release,
        architecture=uname.machine,
        cpu_model=_cpu_model(paths.proc / "cpuinfo"),
        cpu_count=_cpu_count(paths.proc / "stat"),
        memory_total_bytes=_mem_total_bytes(paths.proc / "meminfo"),
        boot_time_seconds=_boot_time(paths.proc / "stat"),
        agent_version=__version__,
    )


class InventoryTracker:
    """Decides when a batch carries the inventory."""

    def __init__(
        self,
        host_facts: Callable[[], HostFacts],
        gpu_inventory: GpuInventorySource | None,
        refresh_seconds: float,
    ) -> None:
        self._host_facts = host_facts
        self._gpu_inventory = gpu_inventory
        self._refresh = refresh_seconds
        self._host: HostFacts | None = None
        self._last: Inventory | None = None
        self._last_sent = float("-inf")

    def due(self, now_monotonic: float) -> Inventory | None:
        """Returns: the inventory if it should go out with this tick, else None."""
        refresh = now_monotonic - self._last_sent >= self._refresh
        if refresh or self._host is None:
            self._host = self._host_facts()
        current = self._compose(self._host)
        if current != self._last or refresh:
            self._last = current
            self._last_sent = now_monotonic
            return current
        return None

    def _compose(self, host: HostFacts) -> Inventory:
        if self._gpu_inventory is None:
            return Inventory(host=host)
        gpu = self._gpu_inventory()
        return Inventory(
            host=host,
            gpus=list(gpu.gpus),
            driver_version=gpu.driver_version,
            gpu_status=gpu.status,
        )


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def _os_pretty_name(rootfs: Path) -> str:
    for candidate in ("etc/os-release", "usr/lib/os-release"):
        for line in _read(rootfs / candidate).splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.partition("=")[2].strip().strip("\"'")[:256]
    return ""


def _cpu_model(cpuinfo: Path) -> str:
    for line in _read(cpuinfo).splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("model name", "Model", "cpu model"):
            return value.strip()[:256]
    return ""


def _cpu_count(stat: Path) -> int:
    count = sum(
        1 for line in _read(stat).splitlines() if line.startswith("cpu") and line[3:4].isdigit()
    )
    return count or (os.cpu_count() or 0)


def _mem_total_bytes(meminfo: Path) -> int:
    for line in _read(meminfo).splitlines():
        if line.startswith("MemTotal:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isdigit():
                return int(parts[1]) * 1024
    return 0


def _boot_time(stat: Path) -> float:
    for line in _read(stat).splitlines():
        if line.startswith("btime "):
            value = line.split()[1]
            if value.isdigit():
                return float(value)
    return 0.0
