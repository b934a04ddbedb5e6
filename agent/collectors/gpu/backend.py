"""The NVML seam: ``NvmlBackend``, the records it returns, and the errors it raises.

Stage: hardware -> (this seam) -> ``GpuCollector``. A backend answers one NVML question per
method, for one device addressed by its NVML index, in NVML's own raw units (mW, mJ, bytes,
MHz, degrees C); the unit is part of each method name and the collector converts once. The
real backend (``nvml_backend.py``) works through ``nvml.py``, the only module that touches
pynvml; ``scripted.py`` is the in-memory twin for tests and ``simulated.py`` the synthetic one
for demos and benchmarks.

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

The protocol is index-based and method-per-reading: one method answers one NVML question, and
a new reading is a new method and record here. Counters that NVML exposes as field ids (ECC
totals, violation times, retired pages, NVLink counters, the recovery action) go through one
batched method, ``field_values``, whose entries fail one by one as NVML's do.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
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


class TemperatureThreshold(enum.IntEnum):
    """NVML's temperature thresholds (``nvmlTemperatureThresholds_t``; part of NVML's ABI).

    SHUTDOWN: the GPU shuts down for hardware protection. SLOWDOWN: hardware slowdown begins.
    MEM_MAX / GPU_MAX: the highest temperature the memory / the GPU is meant to run at
    (software slowdown keeps it below).
    """

    SHUTDOWN = 0
    SLOWDOWN = 1
    MEM_MAX = 2
    GPU_MAX = 3


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


class FieldId(enum.IntEnum):
    """NVML field ids (``NVML_FI_DEV_*`` in nvml.h; part of NVML's ABI) read through
    ``field_values``. Scope 0 unless noted; NVLink fields take the link as scope."""

    ECC_CURRENT = 1
    ECC_PENDING = 2
    ECC_SBE_VOL_TOTAL = 3
    ECC_DBE_VOL_TOTAL = 4
    ECC_SBE_AGG_TOTAL = 5
    ECC_DBE_AGG_TOTAL = 6
    RETIRED_SBE = 29
    RETIRED_DBE = 30
    RETIRED_PENDING = 31
    NVLINK_CRC_FLIT_ERROR_COUNT = 38  # scope: link
    NVLINK_CRC_DATA_ERROR_COUNT = 45  # scope: link
    NVLINK_REPLAY_ERROR_COUNT = 52  # scope: link
    NVLINK_RECOVERY_ERROR_COUNT = 59  # scope: link
    PERF_POLICY_POWER = 74  # violation time, ns
    PERF_POLICY_THERMAL = 75
    PERF_POLICY_SYNC_BOOST = 76
    PERF_POLICY_BOARD_LIMIT = 77
    PERF_POLICY_LOW_UTILIZATION = 78
    PERF_POLICY_RELIABILITY = 79
    MEMORY_TEMP = 82
    NVLINK_THROUGHPUT_DATA_TX = 138  # KiB, scope: link
    NVLINK_THROUGHPUT_DATA_RX = 139  # KiB, scope: link
    GPU_RECOVERY_ACTION = 230


@dataclass(frozen=True, slots=True)
class FieldValue:
    """One entry of a batched field read: a value, or the entry's own error (never both).

    NVML checks each entry separately: an unsupported field fails alone while the rest of the
    batch answers (measured on an H100: NVLink fields NOT_SUPPORTED next to good ones).
    """

    field: int
    scope: int
    value: float | None
    error: NvmlError | None = None


class GpmMetric(enum.IntEnum):
    """GPM metric ids (``NVML_GPM_METRIC_*``). Utilizations are 0-100; rates are MiB/s."""

    GRAPHICS_UTIL = 1
    SM_UTIL = 2
    SM_OCCUPANCY = 3
    ANY_TENSOR_UTIL = 5
    DRAM_BW_UTIL = 10
    FP64_UTIL = 11
    FP32_UTIL = 12
    FP16_UTIL = 13
    PCIE_TX_PER_SEC = 20
    PCIE_RX_PER_SEC = 21
    NVLINK_TOTAL_RX_PER_SEC = 60
    NVLINK_TOTAL_TX_PER_SEC = 61


class PcieCounter(enum.Enum):
    """Direction of ``pcie_throughput_kib_per_s`` (``nvmlPcieUtilCounter_t``)."""

    TX = "tx"
    RX = "rx"


class RecoveryAction(enum.IntEnum):
    """``NVML_FI_DEV_GET_GPU_RECOVERY_ACTION`` values: what the operator should do."""

    NONE = 0
    GPU_RESET = 1
    NODE_REBOOT = 2
    DRAIN_P2P = 3
    DRAIN_AND_RESET = 4
    RECOVER_IMEX_DOMAIN = 5
    BUS_RESET = 6
    SYSTEM_REBOOT = 7


@dataclass(frozen=True, slots=True)
class RemappedRows:
    """Row remapping (Ampere and newer): rows remapped so far, and whether a remap waits for a
    GPU reset (``pending``) or could not be done (``failure``)."""

    correctable: int
    uncorrectable: int
    pending: bool
    failure: bool


@dataclass(frozen=True, slots=True)
class PcieLink:
    """PCIe link generation and lane width, as trained now and at most possible."""

    generation: int
    width: int
    max_generation: int
    max_width: int


@dataclass(frozen=True, slots=True)
class MigMode:
    """MIG mode now, and the mode the GPU takes after its next reset."""

    current: bool
    pending: bool


@dataclass(frozen=True, slots=True)
class MigInstance:
    """One MIG GPU instance: its id, its profile as dcgm-exporter names it (``"3g.40gb"``),
    and its framebuffer (None when NVML cannot tell)."""

    gpu_instance_id: int
    profile: str
    memory: MemoryInfo | None


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

    def temperature_threshold_c(self, index: int, which: TemperatureThreshold) -> int:
        """Returns: the GPU's temperature threshold ``which``, in degrees Celsius (fixed by the
        board; NotSupported where the GPU does not report it)."""
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

    def encoder_utilization_percent(self, index: int) -> int:
        """Returns: video encoder busy percent over NVML's last sample period."""
        ...

    def decoder_utilization_percent(self, index: int) -> int:
        """Returns: video decoder busy percent over NVML's last sample period."""
        ...

    def supported_clocks_event_reasons(self, index: int) -> int:
        """Returns: the bitmask of clock-event reasons this GPU can report."""
        ...

    def field_values(self, index: int, fields: Sequence[tuple[int, int]]) -> list[FieldValue]:
        """Read several NVML fields in one driver call.

        Args:
            fields: ``(field id, scope id)`` pairs; scope is the NVLink for link fields, else 0.

        Returns:
            One entry per requested field, in order; each carries its value or its own error.
        """
        ...

    def remapped_rows(self, index: int) -> RemappedRows:
        """Returns: row-remapping counts and flags (NotSupported before Ampere and on MIG)."""
        ...

    def pcie_link(self, index: int) -> PcieLink:
        """Returns: current and maximum PCIe link generation and width (four calls, ~37 us)."""
        ...

    def pcie_replay_count(self, index: int) -> int:
        """Returns: PCIe replays since the driver loaded (~0.16 ms per call)."""
        ...

    def pcie_throughput_kib_per_s(self, index: int, counter: PcieCounter) -> int:
        """Returns: PCIe traffic in KiB/s over a 20 ms window; the call blocks ~21 ms."""
        ...

    def nvlink_states(self, index: int) -> list[bool]:
        """Returns: for each NVLink of the GPU, by link number, whether it is up.

        Raises NotSupported where NVML has no NVLink state (PCIe boards, some VMs).
        """
        ...

    def gpm_supported(self, index: int) -> bool:
        """Returns: whether the GPU offers GPM (GPU performance monitoring, Hopper and newer)."""
        ...

    def gpm_metrics(
        self, index: int, metrics: Sequence[GpmMetric], gpu_instance_id: int | None = None
    ) -> dict[GpmMetric, float]:
        """Take a GPM sample and compute ``metrics`` since the previous sample of this GPU (or
        of its MIG GPU instance ``gpu_instance_id``).

        Returns:
            The metrics NVML could compute, in GPM units (percent 0-100, MiB/s); a metric the
            GPU lacks is left out.

        Raises:
            NvmlNotSupported: the GPU has no GPM.
            NvmlNotFound: this was the first sample since the session started (nothing to
                compare with yet); the next call answers.
        """
        ...

    def default_power_limit_mw(self, index: int) -> int:
        """Returns: the board's default power limit, in milliwatts."""
        ...

    def persistence_mode(self, index: int) -> bool:
        """Returns: whether persistence mode is on."""
        ...

    def compute_mode(self, index: int) -> int:
        """Returns: ``nvmlComputeMode_t`` (0 default, 2 prohibited, 3 exclusive process)."""
        ...

    def mig_mode(self, index: int) -> MigMode:
        """Returns: current and pending MIG mode (~0.15 ms; NotSupported on non-MIG GPUs)."""
        ...

    def mig_instances(self, index: int) -> list[MigInstance]:
        """Returns: the GPU instances of a MIG-enabled GPU, one per GPU instance id."""
        ...

    def vgpu_license_status(self, index: int) -> int:
        """Returns: 1 while a vGPU license is held, 0 while not (NotSupported off vGPU)."""
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
