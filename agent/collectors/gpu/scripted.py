"""An in-memory ``NvmlBackend`` that plays a script: the seam's twin, like httpx's MockTransport.

Stage: stands in for the driver in tests (and under ``simulated.py``). Nothing is patched: the
collector is simply handed this backend.

A script is one ``DeviceScript`` per GPU. Each call of a device is a *step*, and every kind of
step is equally easy to write:

- a value: returned on every call;
- an exception instance or class: raised on every call;
- a callable of the 1-based call count: its result is the step for that call, so it may return
  a value or an exception (``lambda n: 300_000 if n <= 2 else NvmlGpuLost("fell off")``).

``sequence(a, b, c)`` is the usual callable: ``a`` on the first call, ``b`` on the second, ``c``
from then on; ``hang(event)`` blocks the calling thread until the event is set (a driver call
that does not return, for watchdog tests). ``init`` is a step too (script ``NvmlUnavailable``
for "no driver"), and ``fail_device`` makes every call of one device raise until cleared (a GPU
falling off the bus).
Every call is counted per device, so tests can assert what was, and was not, asked.
"""

from __future__ import annotations

import copy
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias, TypeVar, cast

from agent.collectors.gpu.backend import (
    Clock,
    FieldId,
    FieldValue,
    GpmMetric,
    GpuProcess,
    MemoryInfo,
    MigInstance,
    MigMode,
    NvmlError,
    NvmlNotFound,
    NvmlNotSupported,
    PcieCounter,
    PcieLink,
    ProcessUtilization,
    RemappedRows,
    TemperatureThreshold,
    Utilization,
)

_T = TypeVar("_T")

Step: TypeAlias = _T | BaseException | type[BaseException] | Callable[[int], object]
"""A scripted call: a value, an exception (instance or class), or a callable of the call count."""

# Values of one idle NVIDIA H100 80GB HBM3 (SXM), from a real probe (driver 580.159.04).
H100_NAME = "NVIDIA H100 80GB HBM3"
H100_MEMORY_TOTAL_BYTES = 85_520_809_984
H100_MEMORY_RESERVED_BYTES = 503_316_480
H100_POWER_LIMIT_MW = 700_000
H100_MAX_SM_CLOCK_MHZ = 1980
H100_MAX_MEM_CLOCK_MHZ = 2619
H100_PCIE_LINK = PcieLink(generation=5, width=16, max_generation=5, max_width=16)
H100_SUPPORTED_CLOCKS_EVENT_REASONS = 0x1FF

# Model values, not measured: the probe above did not read the temperature thresholds, and no
# H100 SXM figure is in the project's references. Chosen as plausible for a Hopper SXM part:
# hardware slowdown at 89 C, shutdown at 92 C, operating limits 87 C (GPU) and 95 C (HBM).
H100_MODEL_TEMPERATURE_THRESHOLDS_C: dict[TemperatureThreshold, int] = {
    TemperatureThreshold.SHUTDOWN: 92,
    TemperatureThreshold.SLOWDOWN: 89,
    TemperatureThreshold.MEM_MAX: 95,
    TemperatureThreshold.GPU_MAX: 87,
}

# Batched field values of the idle H100 (field id, scope) -> value: ECC on, no errors, no
# violation time, no recovery needed. Retired pages and NVLink fields are absent, so they come
# back NotSupported, as on the probed H100 SXM VM.
H100_FIELDS: dict[tuple[int, int], float] = {
    (FieldId.ECC_CURRENT, 0): 1,
    (FieldId.ECC_PENDING, 0): 1,
    (FieldId.ECC_SBE_VOL_TOTAL, 0): 0,
    (FieldId.ECC_DBE_VOL_TOTAL, 0): 0,
    (FieldId.ECC_SBE_AGG_TOTAL, 0): 0,
    (FieldId.ECC_DBE_AGG_TOTAL, 0): 0,
    (FieldId.PERF_POLICY_POWER, 0): 0,
    (FieldId.PERF_POLICY_THERMAL, 0): 0,
    (FieldId.PERF_POLICY_SYNC_BOOST, 0): 0,
    (FieldId.PERF_POLICY_BOARD_LIMIT, 0): 0,
    (FieldId.PERF_POLICY_LOW_UTILIZATION, 0): 0,
    (FieldId.PERF_POLICY_RELIABILITY, 0): 0,
    (FieldId.MEMORY_TEMP, 0): 46,
    (FieldId.GPU_RECOVERY_ACTION, 0): 0,
}

# GPM of an idle Hopper GPU: nothing active, a trickle of PCIe traffic (MiB/s).
H100_IDLE_GPM: dict[GpmMetric, float] = {
    GpmMetric.GRAPHICS_UTIL: 0.0,
    GpmMetric.SM_UTIL: 0.0,
    GpmMetric.SM_OCCUPANCY: 0.0,
    GpmMetric.ANY_TENSOR_UTIL: 0.0,
    GpmMetric.DRAM_BW_UTIL: 0.0,
    GpmMetric.FP64_UTIL: 0.0,
    GpmMetric.FP32_UTIL: 0.0,
    GpmMetric.FP16_UTIL: 0.0,
    GpmMetric.PCIE_TX_PER_SEC: 0.75,
    GpmMetric.PCIE_RX_PER_SEC: 1.0,
}


def sequence(*steps: object) -> Callable[[int], object]:
    """Returns: a step that plays ``steps`` in order, one per call, repeating the last one."""
    if not steps:
        raise ValueError("sequence() needs at least one step")

    def play(count: int) -> object:
        return steps[min(count, len(steps)) - 1]

    return play


def hang(release: threading.Event, then: object = None) -> Callable[[int], object]:
    """Returns: a step that blocks the caller until ``release`` is set, then plays ``then``
    (a value or an exception): a driver call that does not return, as after some XIDs."""

    def wait(count: int) -> object:
        release.wait()
        return then

    return wait


def _first_gpm_sample() -> Callable[[int], object]:
    """GPM as NVML answers it: nothing on the first sample, idle values from then on."""
    return sequence(NvmlNotFound("no previous GPM sample to compare with", code=6), H100_IDLE_GPM)


def _idle_memory() -> MemoryInfo:
    total, reserved = H100_MEMORY_TOTAL_BYTES, H100_MEMORY_RESERVED_BYTES
    return MemoryInfo(total, 0, total - reserved, reserved)


@dataclass
class DeviceScript:
    """The script of one GPU. Defaults are an idle H100 as a real probe saw it.

    Mutable on purpose: a test may change a step between ticks.
    """

    uuid: Step[str]
    pci_bus_id: Step[str]
    minor_number: Step[int]
    name: Step[str] = H100_NAME
    serial: Step[str] = "1650923000000"
    vbios_version: Step[str] = "96.00.99.00.01"
    enforced_power_limit_mw: Step[int] = H100_POWER_LIMIT_MW
    temperature_thresholds_c: dict[TemperatureThreshold, Step[int]] = field(
        default_factory=lambda: dict(H100_MODEL_TEMPERATURE_THRESHOLDS_C)
    )
    """Thresholds by kind (model values by default); a missing kind answers NotSupported."""
    memory_info: Step[MemoryInfo] = field(default_factory=_idle_memory)
    utilization: Step[Utilization] = field(default_factory=lambda: Utilization(0, 0))
    power_usage_mw: Step[int] = 128_727
    total_energy_mj: Step[int] = 2_273_122
    temperature_c: Step[int] = 43
    memory_temperature_c: Step[int] = 46
    clocks_mhz: dict[Clock, Step[int]] = field(
        default_factory=lambda: {Clock.SM: 885, Clock.MEM: H100_MAX_MEM_CLOCK_MHZ}
    )
    max_clocks_mhz: dict[Clock, Step[int]] = field(
        default_factory=lambda: {Clock.SM: H100_MAX_SM_CLOCK_MHZ, Clock.MEM: H100_MAX_MEM_CLOCK_MHZ}
    )
    clocks_event_reasons: Step[int] = 0x1
    supported_clocks_event_reasons: Step[int] = H100_SUPPORTED_CLOCKS_EVENT_REASONS
    encoder_utilization_percent: Step[int] = 0
    decoder_utilization_percent: Step[int] = 0
    fields: dict[tuple[int, int], Step[float]] = field(default_factory=lambda: dict(H100_FIELDS))
    """Batched field values by (field id, scope); a missing field answers NotSupported."""
    remapped_rows: Step[RemappedRows] = field(
        default_factory=lambda: RemappedRows(0, 0, pending=False, failure=False)
    )
    pcie_link: Step[PcieLink] = H100_PCIE_LINK
    pcie_replay_count: Step[int] = 0
    pcie_throughput_kib_per_s: dict[PcieCounter, Step[int]] = field(
        default_factory=lambda: {PcieCounter.TX: 768, PcieCounter.RX: 1024}
    )
    nvlink_states: Step[list[bool]] = field(
        default_factory=lambda: NvmlNotSupported("nvmlDeviceGetNvLinkState: Not Supported", code=3)
    )
    gpm_supported: Step[bool] = True
    gpm_metrics: Step[dict[GpmMetric, float]] = field(default_factory=_first_gpm_sample)
    mig_gpm_metrics: dict[int, Step[dict[GpmMetric, float]]] = field(default_factory=dict)
    """GPM per MIG GPU instance id."""
    default_power_limit_mw: Step[int] = H100_POWER_LIMIT_MW
    persistence_mode: Step[bool] = True
    compute_mode: Step[int] = 0
    mig_mode: Step[MigMode] = field(default_factory=lambda: MigMode(current=False, pending=False))
    mig_instances: Step[list[MigInstance]] = field(default_factory=list)
    vgpu_license_status: Step[int] = field(
        default_factory=lambda: NvmlNotSupported("not a licensed vGPU", code=3)
    )
    running_processes: Step[list[GpuProcess]] = field(default_factory=list)
    process_utilization: Step[list[ProcessUtilization]] = field(default_factory=list)
    """All samples; ``process_utilization(since_us)`` returns those newer than ``since_us``."""


class ScriptedBackend:
    """``NvmlBackend`` that answers from ``DeviceScript``s and counts every call.

    Args:
        devices: one script per GPU, in NVML index order.
        driver_version: step for ``driver_version()``.
        init: step for ``init()``; its value is ignored, an exception makes init fail.
        device_count: step for ``device_count()``; defaults to ``len(devices)``.
        before_call: called with the call's name before each call (latency simulation).
    """

    def __init__(
        self,
        devices: Sequence[DeviceScript],
        *,
        driver_version: Step[str] = "580.159.04",
        init: Step[None] = None,
        device_count: Step[int] | None = None,
        before_call: Callable[[str], None] | None = None,
    ) -> None:
        self.devices = list(devices)
        self.driver_version_step = driver_version
        self.init_step = init
        self.device_count_step = device_count
        self.calls: Counter[tuple[int | None, str]] = Counter()
        self._before_call = before_call
        self._device_errors: dict[int, BaseException | type[BaseException]] = {}
        self._initialized = False

    # Script control

    @property
    def initialized(self) -> bool:
        """Whether an NVML session is open."""
        return self._initialized

    def call_count(self, call: str, index: int | None = None) -> int:
        """Returns: how often ``call`` was made on device ``index`` (None: system calls)."""
        return self.calls[(index, call)]

    def fail_device(self, index: int, error: BaseException | type[BaseException] | None) -> None:
        """Make every call of device ``index`` raise ``error`` from now on (None: stop)."""
        if error is None:
            self._device_errors.pop(index, None)
        else:
            self._device_errors[index] = error

    # Session

    def init(self) -> None:
        self._step(None, "init", self.init_step)
        self._initialized = True

    def shutdown(self) -> None:
        self.calls[(None, "shutdown")] += 1
        self._initialized = False

    def driver_version(self) -> str:
        self._require_session()
        return self._step(None, "driver_version", self.driver_version_step)

    def device_count(self) -> int:
        self._require_session()
        step = len(self.devices) if self.device_count_step is None else self.device_count_step
        return self._step(None, "device_count", step)

    # Identity

    def uuid(self, index: int) -> str:
        return self._device_step(index, "uuid", self._script(index).uuid)

    def name(self, index: int) -> str:
        return self._device_step(index, "name", self._script(index).name)

    def pci_bus_id(self, index: int) -> str:
        return self._device_step(index, "pci_bus_id", self._script(index).pci_bus_id)

    def minor_number(self, index: int) -> int:
        return self._device_step(index, "minor_number", self._script(index).minor_number)

    def serial(self, index: int) -> str:
        return self._device_step(index, "serial", self._script(index).serial)

    def vbios_version(self, index: int) -> str:
        return self._device_step(index, "vbios_version", self._script(index).vbios_version)

    def enforced_power_limit_mw(self, index: int) -> int:
        step = self._script(index).enforced_power_limit_mw
        return self._device_step(index, "enforced_power_limit_mw", step)

    def max_clock_mhz(self, index: int, which: Clock) -> int:
        step = self._clock_step(self._script(index).max_clocks_mhz, which)
        return self._device_step(index, f"max_clock_mhz:{which.value}", step)

    def temperature_threshold_c(self, index: int, which: TemperatureThreshold) -> int:
        steps = self._script(index).temperature_thresholds_c
        missing = NvmlNotSupported(f"temperature threshold {which.name}: Not Supported", code=3)
        call = f"temperature_threshold_c:{which.name.lower()}"
        return self._device_step(index, call, steps.get(which, missing))

    # Readings

    def memory_info(self, index: int) -> MemoryInfo:
        return self._device_step(index, "memory_info", self._script(index).memory_info)

    def utilization(self, index: int) -> Utilization:
        return self._device_step(index, "utilization", self._script(index).utilization)

    def power_usage_mw(self, index: int) -> int:
        return self._device_step(index, "power_usage_mw", self._script(index).power_usage_mw)

    def total_energy_mj(self, index: int) -> int:
        return self._device_step(index, "total_energy_mj", self._script(index).total_energy_mj)

    def temperature_c(self, index: int) -> int:
        return self._device_step(index, "temperature_c", self._script(index).temperature_c)

    def memory_temperature_c(self, index: int) -> int:
        step = self._script(index).memory_temperature_c
        return self._device_step(index, "memory_temperature_c", step)

    def clock_mhz(self, index: int, which: Clock) -> int:
        step = self._clock_step(self._script(index).clocks_mhz, which)
        return self._device_step(index, f"clock_mhz:{which.value}", step)

    def clocks_event_reasons(self, index: int) -> int:
        step = self._script(index).clocks_event_reasons
        return self._device_step(index, "clocks_event_reasons", step)

    def supported_clocks_event_reasons(self, index: int) -> int:
        step = self._script(index).supported_clocks_event_reasons
        return self._device_step(index, "supported_clocks_event_reasons", step)

    def encoder_utilization_percent(self, index: int) -> int:
        step = self._script(index).encoder_utilization_percent
        return self._device_step(index, "encoder_utilization_percent", step)

    def decoder_utilization_percent(self, index: int) -> int:
        step = self._script(index).decoder_utilization_percent
        return self._device_step(index, "decoder_utilization_percent", step)

    def field_values(self, index: int, fields: Sequence[tuple[int, int]]) -> list[FieldValue]:
        script = self._script(index)
        # One driver call (counted, and failing as a whole for a failed device) ...
        self._device_step(index, "field_values", None)
        # ... whose entries then answer one by one, each from its own step.
        values = []
        for field_id, scope in fields:
            key = (int(field_id), int(scope))
            step = script.fields.get(key)
            if step is None:
                error = NvmlNotSupported(f"field {key[0]} scope {key[1]}: Not Supported", code=3)
                values.append(FieldValue(key[0], key[1], None, error))
                continue
            try:
                value = self._step(index, f"field:{key[0]}:{key[1]}", step, timed=False)
            except NvmlError as exc:
                values.append(FieldValue(key[0], key[1], None, exc))
            else:
                values.append(FieldValue(key[0], key[1], float(value)))
        return values

    def remapped_rows(self, index: int) -> RemappedRows:
        return self._device_step(index, "remapped_rows", self._script(index).remapped_rows)

    def pcie_link(self, index: int) -> PcieLink:
        return self._device_step(index, "pcie_link", self._script(index).pcie_link)

    def pcie_replay_count(self, index: int) -> int:
        step = self._script(index).pcie_replay_count
        return self._device_step(index, "pcie_replay_count", step)

    def pcie_throughput_kib_per_s(self, index: int, counter: PcieCounter) -> int:
        steps = self._script(index).pcie_throughput_kib_per_s
        step = steps.get(counter, NvmlNotSupported(f"PCIe {counter.value} counter", code=3))
        return self._device_step(index, f"pcie_throughput_kib_per_s:{counter.value}", step)

    def nvlink_states(self, index: int) -> list[bool]:
        return self._device_step(index, "nvlink_states", self._script(index).nvlink_states)

    def gpm_supported(self, index: int) -> bool:
        return self._device_step(index, "gpm_supported", self._script(index).gpm_supported)

    def gpm_metrics(
        self, index: int, metrics: Sequence[GpmMetric], gpu_instance_id: int | None = None
    ) -> dict[GpmMetric, float]:
        script = self._script(index)
        if not self._device_step(index, "gpm_supported", script.gpm_supported):
            self._device_step(index, "gpm_metrics", NvmlNotSupported("no GPM", code=3))
        if gpu_instance_id is None:
            step = script.gpm_metrics
            call = "gpm_metrics"
        else:
            missing = NvmlError(f"no GPU instance {gpu_instance_id}", code=2)
            step = script.mig_gpm_metrics.get(gpu_instance_id, missing)
            call = f"gpm_metrics:{gpu_instance_id}"
        values = self._device_step(index, call, step)
        return {metric: values[metric] for metric in metrics if metric in values}

    def default_power_limit_mw(self, index: int) -> int:
        step = self._script(index).default_power_limit_mw
        return self._device_step(index, "default_power_limit_mw", step)

    def persistence_mode(self, index: int) -> bool:
        return self._device_step(index, "persistence_mode", self._script(index).persistence_mode)

    def compute_mode(self, index: int) -> int:
        return self._device_step(index, "compute_mode", self._script(index).compute_mode)

    def mig_mode(self, index: int) -> MigMode:
        return self._device_step(index, "mig_mode", self._script(index).mig_mode)

    def mig_instances(self, index: int) -> list[MigInstance]:
        return self._device_step(index, "mig_instances", self._script(index).mig_instances)

    def vgpu_license_status(self, index: int) -> int:
        step = self._script(index).vgpu_license_status
        return self._device_step(index, "vgpu_license_status", step)

    # Processes

    def running_processes(self, index: int) -> list[GpuProcess]:
        step = self._script(index).running_processes
        return list(self._device_step(index, "running_processes", step))

    def process_utilization(self, index: int, since_us: int) -> list[ProcessUtilization]:
        step = self._script(index).process_utilization
        try:
            samples = self._device_step(index, "process_utilization", step)
        except NvmlNotFound:
            return []
        return [sample for sample in samples if sample.timestamp_us > since_us]

    # Plumbing

    def _require_session(self) -> None:
        if not self._initialized:
            raise NvmlError("NVML is not initialised (call init() first)", code=1)

    def _script(self, index: int) -> DeviceScript:
        self._require_session()
        if not 0 <= index < len(self.devices):
            raise NvmlError(f"no GPU with index {index}", code=2)
        return self.devices[index]

    @staticmethod
    def _clock_step(steps: dict[Clock, Step[int]], which: Clock) -> Step[int]:
        return steps.get(which, NvmlError(f"clock {which.value} is not scripted", code=2))

    def _device_step(self, index: int, call: str, step: Step[_T]) -> _T:
        error = self._device_errors.get(index)
        return self._step(index, call, step if error is None else error)

    def _step(self, index: int | None, call: str, step: Step[_T], *, timed: bool = True) -> _T:
        self.calls[(index, call)] += 1
        if timed and self._before_call is not None:
            self._before_call(call)
        outcome: object = step
        if callable(outcome) and not _is_exception_class(outcome):
            outcome = outcome(self.calls[(index, call)])
        if _is_exception_class(outcome):
            raise cast(type[BaseException], outcome)(f"scripted failure of {call}")
        if isinstance(outcome, BaseException):
            # A copy per raise, so tracebacks and contexts never pile up on the scripted object.
            raise copy.copy(outcome).with_traceback(None)
        return cast(_T, outcome)


def _is_exception_class(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, BaseException)
