"""Shared helpers for the job-attribution tests: recorded trees and GPU snapshots."""

from __future__ import annotations

from pathlib import Path

from agent.collectors.gpu.backend import GpuProcess, ProcessUtilization
from agent.collectors.gpu.snapshot import GpuSnapshot

DATA = Path(__file__).resolve().parents[2] / "data" / "jobs"

# The user database of the recorded trees; uid 1005 deliberately has no entry.
USERS = {
    0: "root",
    998: "inference",
    1000: "triton",
    1001: "trainer",
    1002: "analyst",
    1003: "simulator",
    1004: "notebook",
}


def user_name(uid: int) -> str | None:
    return USERS.get(uid)


def proc_root(tree: str) -> Path:
    return DATA / tree / "proc"


def snapshot(
    monotonic: float,
    *,
    index: int = 0,
    processes: dict[int, int | None] | None = None,
    sm: dict[int, int] | None = None,
    utilization: float | None = 50.0,
    energy_mj: int | None = None,
    energy_monotonic: float | None = None,
    power_w: float | None = None,
    up: bool = True,
) -> GpuSnapshot:
    """A GPU snapshot: ``processes`` maps PID -> used bytes, ``sm`` PID -> SM percent."""
    return GpuSnapshot(
        index=index,
        uuid=f"GPU-{index:08d}-0000-0000-0000-000000000000",
        pci_bus_id=f"00000000:{0x18 + index:02X}:00.0",
        monotonic=monotonic,
        up=up,
        utilization_percent=utilization,
        power_w=power_w,
        energy_mj=energy_mj,
        energy_monotonic=energy_monotonic,
        processes=tuple(GpuProcess(pid, used) for pid, used in (processes or {}).items()),
        process_utilization=tuple(
            ProcessUtilization(pid, percent, 0, int(monotonic * 1e6))
            for pid, percent in (sm or {}).items()
        ),
    )
