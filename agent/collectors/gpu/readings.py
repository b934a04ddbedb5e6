"""What each per-tick NVML reading becomes: catalog metric names, units and range checks.

Stage: part of the GPU collector. Each ``Reading`` is one backend call per GPU per tick and the
samples it yields, converted once from NVML's units to the catalog's (mW -> W, bytes -> MiB as
DCGM reports framebuffer sizes; energy stays a raw mJ counter). A value failing its range check
comes back as None and is dropped by the collector, never sent.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from agent.collectors.gpu.backend import Clock, NvmlBackend

_BYTES_PER_MIB = 1 << 20
_MAX_TEMPERATURE_C = 200  # DCGM discards hotter readings as out of range

GPU_UP = "dcmon_gpu_up"
GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"
MEM_COPY_UTIL = "DCGM_FI_DEV_MEM_COPY_UTIL"
FB_USED = "DCGM_FI_DEV_FB_USED"
FB_FREE = "DCGM_FI_DEV_FB_FREE"
FB_RESERVED = "DCGM_FI_DEV_FB_RESERVED"
POWER_USAGE = "DCGM_FI_DEV_POWER_USAGE"
TOTAL_ENERGY = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
GPU_TEMP = "DCGM_FI_DEV_GPU_TEMP"
MEMORY_TEMP = "DCGM_FI_DEV_MEMORY_TEMP"
SM_CLOCK = "DCGM_FI_DEV_SM_CLOCK"
MEM_CLOCK = "DCGM_FI_DEV_MEM_CLOCK"
CLOCKS_EVENT_REASONS = "DCGM_FI_DEV_CLOCKS_EVENT_REASONS"

Labels = dict[str, str] | None
Values = list[tuple[str, float | None, Labels]]
"""(metric name, value in catalog units, extra labels or None); None values failed a range check.

Extra labels are added to the GPU's own (``gpu, UUID, …``): e.g. ``link`` for a per-NVLink
counter, ``reason`` for one clock-event reason, ``GPU_I_ID``/``GPU_I_PROFILE`` for a MIG
instance.
"""


def _percent(value: int) -> float | None:
    return float(value) if 0 <= value <= 100 else None


def _temperature(value: int) -> float | None:
    return float(value) if 0 <= value <= _MAX_TEMPERATURE_C else None


def _memory_temperature(value: int) -> float | None:
    # Boards without an HBM sensor may answer 0 instead of NotSupported.
    return float(value) if 0 < value <= _MAX_TEMPERATURE_C else None


def _read_utilization(backend: NvmlBackend, index: int) -> Values:
    rates = backend.utilization(index)
    return [
        (GPU_UTIL, _percent(rates.gpu_percent), None),
        (MEM_COPY_UTIL, _percent(rates.memory_percent), None),
    ]


def _read_memory(backend: NvmlBackend, index: int) -> Values:
    memory = backend.memory_info(index)
    values: Values = [
        (FB_USED, memory.used_bytes / _BYTES_PER_MIB, None),
        (FB_FREE, memory.free_bytes / _BYTES_PER_MIB, None),
    ]
    if memory.reserved_bytes is not None:  # absent with NVML's v1 memory call
        values.append((FB_RESERVED, memory.reserved_bytes / _BYTES_PER_MIB, None))
    return values


@dataclass(frozen=True)
class Reading:
    """One backend call (or a few that belong together) per GPU and the metrics it yields.

    Attributes:
        name: stable snake_case name; the capability probe records unsupported readings by it.
        read: ``(backend, index) -> values``; raises ``NvmlError`` subclasses.
        period: seconds between reads; 0 reads every tick. Between reads the last values are
            sent again, so an expensive call (energy ~3 ms, violation status ~0.7 ms, PCIe
            throughput ~21 ms on an H100) costs its price once per period, not per tick.
    """

    name: str
    read: Callable[[NvmlBackend, int], Values]
    period: float = 0.0


READINGS: tuple[Reading, ...] = (
    Reading("utilization", _read_utilization),
    Reading("memory_info", _read_memory),
    Reading("power_usage", lambda b, i: [(POWER_USAGE, b.power_usage_mw(i) / 1000, None)]),
    Reading(
        "total_energy",
        lambda b, i: [(TOTAL_ENERGY, float(b.total_energy_mj(i)), None)],
        period=5.0,
    ),
    Reading("temperature", lambda b, i: [(GPU_TEMP, _temperature(b.temperature_c(i)), None)]),
    Reading(
        "memory_temperature",
        lambda b, i: [(MEMORY_TEMP, _memory_temperature(b.memory_temperature_c(i)), None)],
    ),
    Reading("sm_clock", lambda b, i: [(SM_CLOCK, float(b.clock_mhz(i, Clock.SM)), None)]),
    Reading("mem_clock", lambda b, i: [(MEM_CLOCK, float(b.clock_mhz(i, Clock.MEM)), None)]),
    Reading(
        "clocks_event_reasons",
        lambda b, i: [(CLOCKS_EVENT_REASONS, float(b.clocks_event_reasons(i)), None)],
    ),
)

READING_NAMES: tuple[str, ...] = tuple(reading.name for reading in READINGS)
