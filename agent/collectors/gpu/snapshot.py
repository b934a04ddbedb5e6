"""What the GPU collector publishes each tick for the stages that attribute GPU use to jobs.

Stage: ``GpuCollector`` -> (this record) -> job attribution (``agent/jobs``). A snapshot is the
collector's latest view of one GPU: its identity, the readings attribution needs, and when each
was taken. Readings on a slower cadence (the energy counter) carry their own timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.collectors.gpu.backend import GpuProcess, ProcessUtilization


@dataclass(frozen=True, slots=True)
class GpuSnapshot:
    """One GPU as last read. Times are the agent's monotonic clock, in seconds.

    Attributes:
        index: NVML index.
        uuid: ``GPU-…`` (empty while the identity is unknown).
        pci_bus_id: NVML's bus id, e.g. ``00000000:65:00.0``.
        monotonic: when the per-tick readings below were taken.
        up: False while the GPU is lost or its driver calls hang; readings are then None/empty.
        utilization_percent: device busy percent (None when unsupported, e.g. under MIG).
        power_w: board power in watts, or None.
        energy_mj: the energy counter (mJ since driver load), or None when unsupported.
        energy_monotonic: when ``energy_mj`` was read (it is read on a slower cadence).
        processes: processes holding a context on the GPU.
        process_utilization: per-process SM/memory samples from the last sample period.
    """

    index: int
    uuid: str
    pci_bus_id: str
    monotonic: float
    up: bool
    utilization_percent: float | None = None
    power_w: float | None = None
    energy_mj: int | None = None
    energy_monotonic: float | None = None
    processes: tuple[GpuProcess, ...] = ()
    process_utilization: tuple[ProcessUtilization, ...] = ()
