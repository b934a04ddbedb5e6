"""The NVML seam: ``NvmlBackend``, the records it returns, and the errors it raises.

Stage: hardware -> (this seam) -> ``GpuCollector``. A backend answers one NVML question per
method, for one device addressed by its NVML index, in NVML's own raw units (mW, mJ, bytes,
MHz, degrees C); the unit is part of each method name and the collector converts once. The
real backend (``nvml.py``) is the only module that touches pynvml; ``scripted.py`` is the
in-memory twin for tests and ``simulated.py`` the synthetic one for demos and benchmarks.

Exception hierarchy (every backend raises only these; foreign errors are mapped at the seam)::

    NvmlError                   any NVML failure; ``code`` is NVML's nvmlReturn_t when known
     ├── NvmlUnavailable        NVML cannot start: library missing, driver not loaded,
     │                          library/kernel-module version mismatch, no permission, or a
     │                          broken/absent binding; ``hint`` says what to do about it
     ├── NvmlNotSupported       this device or driver does not offer the reading (permanent)
     ├── NvmlFunctionNotFound   the driver (or the Python binding) lacks the symbol (permanent
     │                          until the driver changes; callers may fall back to an older API)
     ├── NvmlGpuLost            the device fell off the bus or needs a reset
     ├── NvmlNoPermission       the reading needs privileges the agent does not have
     ├── NvmlNotFound           nothing to report (e.g. no process samples since a timestamp)
     └── NvmlTimeout            the driver gave up waiting

The protocol is index-based and method-per-reading so that later readings (ECC, remapped rows,
PCIe, NVLink, violation counters, processes, events, GPM, batched field values) are added as
new methods and new records here without changing the existing ones.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol


class NvmlError(Exception):
    """An NVML call failed.

    Attributes:
        code: NVML's ``nvmlReturn_t`` value when the failure came from NVML, else None.
    """

    def __init__(self, message: str, *, code: int | None = None) -> None:
        super().__init__(message)
        self.code = code


class NvmlUnavailable(NvmlError):  # noqa: N818 (NVML's names, httpx-style)
    """NVML cannot be used on this host at all (no driver, wrong driver, no binding).

    Attributes:
        hint: what an operator can do about it, in one sentence (may be empty).
    """

    def __init__(self, message: str, *, hint: str = "", code: int | None = None) -> None:
        super().__init__(message, code=code)
        self.hint = hint


class NvmlNotSupported(NvmlError):  # noqa: N818 (NVML's names, httpx-style)
    """The device or driver does not support this reading; asking again will not help."""


class NvmlFunctionNotFound(NvmlError):  # noqa: N818 (NVML's names, httpx-style)
    """The loaded driver library, or the installed binding, lacks the function."""


class NvmlGpuLost(NvmlError):  # noqa: N818 (NVML's names, httpx-style)
    """The GPU is lost (fell off the bus) or requires a reset before it answers again."""


class NvmlNoPermission(NvmlError):  # noqa: N818 (NVML's names, httpx-style)
    """The reading needs more privileges than the agent has."""


class NvmlNotFound(NvmlError):  # noqa: N818 (NVML's names, httpx-style)
    """NVML found nothing to report for the query."""


class NvmlTimeout(NvmlError):  # noqa: N818 (NVML's names, httpx-style)
    """The driver timed out answering."""


class Clock(enum.Enum):
    """NVML clock domains (``nvmlClockType_t``)."""

    GRAPHICS = "graphics"
    SM = "sm"
    MEM = "mem"
    VIDEO = "video"


class ClocksEventReason(enum.IntFlag):
    """Bits of ``clocks_event_reasons`` (NVML's ``nvmlClocksEventReason*``/``…Throttle…``)."""

    GPU_IDLE = 0x1
    APPLICATIONS_CLOCKS_SETTING = 0x2
    SW_POWER_CAP = 0x4
    HW_SLOWDOWN = 0x8
    SYNC_BOOST = 0x10
    SW_THERMAL_SLOWDOWN = 0x20
    HW_THERMAL_SLOWDOWN = 0x40
    HW_POWER_BRAKE_SLOWDOWN = 0x80
    DISPLAY_CLOCK_SETTING = 0x100


@dataclass(frozen=True, slots=True)
class MemoryInfo:
    """Framebuffer memory of one device, in bytes.

    ``reserved_bytes`` is None when only NVML's v1 call is available: v1 has no reserve field
    and counts the driver's reserve as used.
    """

    total_bytes: int
    used_bytes: int
    free_bytes: int
    reserved_bytes: int | None


@dataclass(frozen=True, slots=True)
class Utilization:
    """Percent of the last sample period (1/6 s to 1 s) in which the GPU or memory was busy.

    Raw NVML values: not range-checked here (NVML has reported glitches up to 2**32-1).
    """

    gpu_percent: int
    memory_percent: int


@dataclass(frozen=True, slots=True)
class GpuProcess:
    """A process holding a context on the GPU (NVML reports host PIDs, never container PIDs).

    ``used_memory_bytes`` is None where NVML cannot tell (MIG, WDDM).
    """

    pid: int
    used_memory_bytes: int | None
    kind: str = "compute"  # "compute" or "graphics"
    gpu_instance_id: int | None = None
    compute_instance_id: int | None = None


@dataclass(frozen=True, slots=True)
class ProcessUtilization:
    """One process's share of the GPU over NVML's last sample period, in percent."""

    pid: int
    sm_percent: int
    memory_percent: int
    timestamp_us: int


class NvmlBackend(Protocol):
    """What the GPU collector needs from NVML; every method may raise ``NvmlError`` subclasses.

    ``init`` must succeed before any other call; ``shutdown`` ends the session and a later
    ``init`` starts a new one. Devices are addressed by NVML index, ``0 <= index <
    device_count()``.
    """

    def init(self) -> None:
        """Start an NVML session.

        Raises:
            NvmlUnavailable: NVML cannot be used on this host (the exception says why).
        """
        ...

    def shutdown(self) -> None:
        """End the NVML session (a no-op when none is open)."""
        ...

    def driver_version(self) -> str:
        """Returns: the kernel driver version, e.g. ``"580.159.04"``."""
        ...

    def device_count(self) -> int:
        """Returns: the number of GPUs NVML can see (MIG instances not included)."""
        ...

    # Identity: static, read once per session.

    def uuid(self, index: int) -> str:
        """Returns: the device UUID, ``"GPU-<uuid>"``."""
        ...

    def name(self, index: int) -> str:
        """Returns: the product name, e.g. ``"NVIDIA H100 80GB HBM3"``."""
        ...

    def pci_bus_id(self, index: int) -> str:
        """Returns: the PCI bus id as NVML formats it, e.g. ``"00000000:00:06.0"``."""
        ...

    def minor_number(self, index: int) -> int:
        """Returns: the minor number of the device node, N in ``/dev/nvidiaN``."""
        ...

    def serial(self, index: int) -> str:
        """Returns: the board serial number (NotSupported on most consumer boards)."""
        ...

    def vbios_version(self, index: int) -> str:
        """Returns: the VBIOS version string."""
        ...

    def enforced_power_limit_mw(self, index: int) -> int:
        """Returns: the power limit the board currently enforces, in milliwatts."""
        ...

    def max_clock_mhz(self, index: int, which: Clock) -> int:
        """Returns: the highest clock of the domain, in MHz (slow on some GPUs: ~1.4 ms)."""
        ...

    # Readings: cheap unless noted, read every tick.

    def memory_info(self, index: int) -> MemoryInfo:
        """Returns: framebuffer total/used/free/reserved bytes (v2 call, v1 as fallback)."""
        ...

    def utilization(self, index: int) -> Utilization:
        """Returns: GPU and memory-controller busy percent over the last sample period."""
        ...

    def power_usage_mw(self, index: int) -> int:
        """Returns: board power draw in milliwatts (a 1 s average on Ampere and newer)."""
        ...

    def total_energy_mj(self, index: int) -> int:
        """Returns: energy used since the driver loaded, in millijoules (~3 ms per call)."""
        ...

    def temperature_c(self, index: int) -> int:
        """Returns: GPU core temperature in degrees Celsius."""
        ...

    def memory_temperature_c(self, index: int) -> int:
        """Returns: memory (HBM) temperature in degrees Celsius (datacenter parts only)."""
        ...

    def clock_mhz(self, index: int, which: Clock) -> int:
        """Returns: the current clock of the domain, in MHz."""
        ...

    def clocks_event_reasons(self, index: int) -> int:
        """Returns: the bitmask of reasons the clocks are held down (``nvmlClocksEventReason*``)."""
        ...

    # Processes: cheap (~8 us), read every tick for job attribution.

    def running_processes(self, index: int) -> list[GpuProcess]:
        """Returns: compute and graphics processes on the GPU, one entry per PID.

        Implementations probe the process-struct layout (the R535 drift) once per session.
        """
        ...

    def process_utilization(self, index: int, since_us: int) -> list[ProcessUtilization]:
        """Returns: per-process utilization samples newer than ``since_us`` (NVML's clock, us).

        NVML answers NotFound when no process ran since then; implementations return [].
        """
        ...
