"""Fake NVML for tests, at both seams, named after the real failures they reproduce.

- Scenarios: ``ScriptedBackend``s behind the ``NvmlBackend`` seam (what the collector sees).
- ``FakeNvmlLibrary``: a tiny stand-in for the ``pynvml`` module, injected into
  ``PynvmlBackend(module=...)`` to test the real backend's mapping and fallbacks without a
  driver. Nothing here patches the global ``pynvml`` module.
"""

from __future__ import annotations

import ctypes
import threading
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.collectors.gpu.backend import (
    FieldId,
    GpmMetric,
    GpuProcess,
    MemoryInfo,
    MigInstance,
    MigMode,
    NvmlGpuLost,
    NvmlNotFound,
    NvmlNotSupported,
    NvmlUnavailable,
    ProcessUtilization,
    Utilization,
)
from agent.collectors.gpu.scripted import (
    H100_IDLE_GPM,
    DeviceScript,
    ScriptedBackend,
    Step,
    hang,
    sequence,
)

HOSTNAME = "node-a1"
DGX_BUS_NUMBERS = (0x18, 0x2A, 0x3A, 0x5D, 0x9A, 0xAB, 0xBA, 0xDB)
GLITCH_UTILIZATION = 4_294_967_295  # NVML's glitch value (NVIDIA/DCGM #199)


def gpu_uuid(index: int) -> str:
    return f"GPU-3f1c0a52-7d4e-4b8a-9c2e-5a6b7c8d9e{index:02x}"


def bus_id(index: int) -> str:
    return f"00000000:{DGX_BUS_NUMBERS[index]:02X}:00.0"


def h100(index: int, **steps: Any) -> DeviceScript:
    """One idle H100 whose readings differ per index, so a mix-up of GPUs shows in values.

    Readings (NVML units): memory used = index GiB; power = 100 W + index W; energy =
    2,000,000 + index mJ; temperature 40 + index C, memory 45 + index C; SM clock 885 MHz.
    """
    total, reserved, used = 85_520_809_984, 503_316_480, index << 30
    script = DeviceScript(
        uuid=gpu_uuid(index),
        pci_bus_id=bus_id(index),
        minor_number=index,
        serial=f"16509230{index:05d}",
        memory_info=MemoryInfo(total, used, total - reserved - used, reserved),
        utilization=Utilization(10 * index, 5 * index),
        power_usage_mw=100_000 + 1_000 * index,
        total_energy_mj=2_000_000 + index,
        temperature_c=40 + index,
        memory_temperature_c=45 + index,
    )
    for name, step in steps.items():
        setattr(script, name, step)
    return script


def healthy_h100_node(count: int = 8) -> ScriptedBackend:
    """Eight idle H100 80GB HBM3 SXM GPUs, everything supported (a DGX H100)."""
    return ScriptedBackend([h100(index) for index in range(count)])


NO_DRIVER = NvmlUnavailable(
    "no NVIDIA driver: NVML library not found",
    hint="install the NVIDIA driver so that libnvidia-ml.so.1 is on the loader path",
    code=12,
)


def driver_missing() -> ScriptedBackend:
    """A CPU-only node: libnvidia-ml.so.1 is not installed, init always fails."""
    return ScriptedBackend([h100(0)], init=NO_DRIVER)


def driver_appears_after(failed_inits: int) -> ScriptedBackend:
    """The driver gets installed (or loaded) while the agent runs: init works after N failures."""
    return ScriptedBackend(
        [h100(index) for index in range(2)],
        init=sequence(*([NO_DRIVER] * failed_inits), None),
    )


def gpu_falls_off_the_bus(lost: int, from_tick: int, until_tick: int) -> ScriptedBackend:
    """XID 79: GPU ``lost`` stops answering on tick ``from_tick`` and is back on ``until_tick``.

    Scripted on the first reading of each tick (utilization), by its call count.
    """
    backend = healthy_h100_node()
    healthy = Utilization(10 * lost, 5 * lost)

    def utilization(call: int) -> object:
        if from_tick <= call < until_tick:
            return NvmlGpuLost("nvmlDeviceGetUtilizationRates: GPU is lost", code=15)
        return healthy

    backend.devices[lost].utilization = utilization
    return backend


def geforce_without_hbm_sensor() -> ScriptedBackend:
    """RTX 4090s: no memory-temperature sensor and no serial (dcgm-exporter #460)."""
    devices = []
    for index in range(2):
        total, reserved, used = 25_757_220_864, 400_556_032, 1 << 30
        devices.append(
            DeviceScript(
                uuid=gpu_uuid(index),
                pci_bus_id=bus_id(index),
                minor_number=index,
                name="NVIDIA GeForce RTX 4090",
                serial=NvmlNotSupported("nvmlDeviceGetSerial: Not Supported", code=3),
                memory_info=MemoryInfo(total, used, total - reserved - used, reserved),
                memory_temperature_c=NvmlNotSupported("memory temperature field", code=3),
                enforced_power_limit_mw=450_000,
                power_usage_mw=30_000,
            )
        )
    return ScriptedBackend(devices)


def utilization_glitch() -> ScriptedBackend:
    """GPU 1 reports utilization 4294967295 (NVIDIA/DCGM #199); memory copy util is fine."""
    backend = healthy_h100_node(2)
    backend.devices[1].utilization = Utilization(GLITCH_UTILIZATION, 7)
    return backend


def flaky_energy_counter(step: Step[int]) -> ScriptedBackend:
    """GPU 0's energy counter fails as ``step`` says; GPU 1 is healthy."""
    backend = healthy_h100_node(2)
    backend.devices[0].total_energy_mj = step
    return backend


def field_not_supported() -> ScriptedBackend:
    """Batched field reads where some entries answer NotSupported and the rest of the batch works:
    GPU 0 reports no power-violation time and no aggregate ECC counts, GPU 1 no ECC mode at all
    (a board without ECC), so its whole ECC reading is unsupported."""
    backend = healthy_h100_node(2)
    for key in ((FieldId.PERF_POLICY_POWER, 0), (FieldId.ECC_SBE_AGG_TOTAL, 0)):
        del backend.devices[0].fields[key]
    backend.devices[0].fields[(FieldId.ECC_DBE_AGG_TOTAL, 0)] = NvmlNotSupported(
        "field 6: Not Supported", code=3
    )
    for field_id in (1, 2, 3, 4, 5, 6):
        backend.devices[1].fields.pop((field_id, 0), None)
    return backend


MIG_INSTANCES = (
    MigInstance(1, "3g.40gb", MemoryInfo(42_949_672_960, 8 << 30, (40 << 30) - (8 << 30), None)),
    MigInstance(2, "2g.20gb", MemoryInfo(21_474_836_480, 0, 20 << 30, None)),
)


def mig_enabled() -> ScriptedBackend:
    """An H100 in MIG mode with two GPU instances (3g.40gb busy, 2g.20gb idle).

    As NVML behaves under MIG: device utilization, remapped rows and per-process utilization
    are NotSupported; GPM answers per GPU instance (after a first sample), not per device.
    """
    not_on_mig = NvmlNotSupported("Not Supported under MIG", code=3)
    script = h100(
        0,
        mig_mode=MigMode(current=True, pending=True),
        mig_instances=list(MIG_INSTANCES),
        utilization=not_on_mig,
        remapped_rows=not_on_mig,
        process_utilization=not_on_mig,
        gpm_metrics=not_on_mig,
    )
    busy = {**H100_IDLE_GPM, GpmMetric.GRAPHICS_UTIL: 93.0, GpmMetric.SM_UTIL: 81.5}
    busy[GpmMetric.ANY_TENSOR_UTIL] = 55.0
    busy[GpmMetric.DRAM_BW_UTIL] = 40.0
    no_previous = NvmlNotFound("no previous GPM sample", code=6)
    script.mig_gpm_metrics = {
        1: sequence(no_previous, busy),
        2: sequence(no_previous, H100_IDLE_GPM),
    }
    return ScriptedBackend([script])


def call_hangs(
    release: threading.Event, call: str = "power_usage_mw", index: int = 0, count: int = 2
) -> ScriptedBackend:
    """A driver call that does not return (as after XID 79/119): on GPU ``index`` of a healthy
    node, ``call`` blocks until ``release`` is set, then answers as before."""
    backend = healthy_h100_node(count)
    script = backend.devices[index]
    answer = getattr(script, call)
    setattr(script, call, hang(release, answer))
    return backend


def process_vanishes_between_calls() -> ScriptedBackend:
    """PID 2222 exits between the two calls: ``running_processes`` still lists it, while
    ``process_utilization`` (asked right after) only has samples for PID 1111."""
    script = h100(
        0,
        running_processes=[
            GpuProcess(1111, 7_226_785_792),
            GpuProcess(2222, 1 << 30),
        ],
        process_utilization=[ProcessUtilization(1111, 56, 9, 1_760_000_000_000_000)],
    )
    return ScriptedBackend([script])


# The pynvml module stand-in


class FakeNVMLError(Exception):
    """Shaped like pynvml's ``NVMLError``: the nvmlReturn_t code is in ``.value``."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return {3: "Not Supported", 13: "Function Not Found", 15: "GPU is lost"}.get(
            self.value, f"NVML error {self.value}"
        )


@dataclass
class FakeGpu:
    """What one fake device answers, in pynvml's shapes (strings as bytes, like old bindings)."""

    index: int
    uuid: bytes = b""
    name: bytes = b"NVIDIA H100 80GB HBM3"
    bus_id: bytes = b""
    serial: str = "1650923000001"
    vbios: str = "96.00.99.00.01"
    memory: tuple[int, int, int, int] = (85_520_809_984, 503_316_480, 0, 85_017_493_504)
    """total, reserved, used, free (v2 shape; v1 reports used + reserved as used)."""
    utilization: tuple[int, int] = (0, 0)
    power_mw: int = 128_727
    limit_mw: int = 700_000
    energy_mj: int = 2_273_122
    temperature_c: int = 43
    temperature_thresholds: dict[int, int] = field(
        default_factory=lambda: {0: 92, 1: 89, 2: 95, 3: 87}
    )
    """nvmlTemperatureThresholds_t -> degrees C (shutdown, slowdown, memory max, GPU max: the
    scripted twin's model values); absent thresholds answer NOT_SUPPORTED."""
    memory_temp: tuple[int, int, int | float] = (0, 1, 46)
    """(nvmlReturn, valueType, value) of the NVML_FI_DEV_MEMORY_TEMP field entry."""
    clocks_mhz: dict[int, int] = field(default_factory=lambda: {1: 885, 2: 2619})
    max_clocks_mhz: dict[int, int] = field(default_factory=lambda: {1: 1980, 2: 2619})
    reasons: int = 0x1
    supported_reasons: int = 0x1FF
    encoder: tuple[int, int] = (0, 167_000)
    """(percent, sampling period in us), as nvmlDeviceGetEncoderUtilization answers."""
    decoder: tuple[int, int] = (0, 167_000)
    fields: dict[tuple[int, int], tuple[int, int, int | float]] = field(
        default_factory=lambda: dict(H100_FIELD_ENTRIES)
    )
    """(field, scope) -> (nvmlReturn, valueType, value); absent fields answer NOT_SUPPORTED."""
    remapped_rows: tuple[int, int, int, int] = (0, 0, 0, 0)
    pcie: tuple[int, int, int, int] = (5, 16, 5, 16)
    """current generation, current width, max generation, max width."""
    pcie_replays: int = 0
    pcie_kib_s: dict[int, int] = field(default_factory=lambda: {0: 768, 1: 1024})
    nvlink_states: list[int] | None = None
    """State per link (1 up); None: NOT_SUPPORTED, as on the probed H100 VM."""
    gpm_supported: int = 1
    gpm: dict[int, float] = field(
        default_factory=lambda: {int(k): v for k, v in H100_IDLE_GPM.items()}
    )
    """GPM metric id -> value between two samples of the device."""
    mig_gpm: dict[int, dict[int, float]] = field(default_factory=dict)
    default_limit_mw: int = 700_000
    persistence: int = 1
    compute_mode: int = 0
    mig_mode: tuple[int, int] = (0, 0)
    mig_devices: list[FakeMigDevice] = field(default_factory=list)
    grid: tuple[int, list[int]] = (0, [])
    """(isGridLicenseSupported, featureState per licensable feature)."""
    compute_processes: list[tuple[int, int]] = field(default_factory=list)
    """(pid, used bytes) per compute process."""
    graphics_processes: list[tuple[int, int]] = field(default_factory=list)
    process_samples: list[tuple[int, int, int, int]] = field(default_factory=list)
    """(pid, timestamp us, SM %, memory %); empty answers NOT_FOUND, as an idle GPU does."""
    errors: dict[str, int] = field(default_factory=dict)
    """pynvml function name -> NVML error code it raises for this device."""

    def __post_init__(self) -> None:
        self.uuid = self.uuid or gpu_uuid(self.index).encode()
        self.bus_id = self.bus_id or bus_id(self.index).encode()


@dataclass(frozen=True)
class FakeMigDevice:
    """One MIG device (compute instance) of a FakeGpu: its GPU instance and that instance's size."""

    gpu_instance_id: int
    slices: int
    memory_mb: int
    used_bytes: int = 0


# Field entries of an idle H100: ECC on without errors, no violation time, no recovery action.
H100_FIELD_ENTRIES: dict[tuple[int, int], tuple[int, int, int | float]] = {
    (1, 0): (0, 1, 1),
    (2, 0): (0, 1, 1),
    **{(field_id, 0): (0, 3, 0) for field_id in (3, 4, 5, 6, 74, 75, 76, 77, 78, 79)},
    (230, 0): (0, 1, 0),
}


@dataclass(frozen=True)
class FakeHandle:
    index: int


@dataclass(frozen=True)
class FakeMigHandle:
    parent: int
    slot: int


class FakeGpmSample:
    """An opaque GPM sample buffer; records what filled it."""

    def __init__(self) -> None:
        self.device: int | None = None
        self.gpu_instance_id: int | None = None
        self.sequence = 0


class FakeGpmMetricsGet:
    """Stands in for ``c_nvmlGpmMetricsGet_t`` (a struct with a fixed array of metrics)."""

    def __init__(self) -> None:
        self.version = 0
        self.numMetrics = 0
        self.sample1: Any = None
        self.sample2: Any = None
        self.metrics = [
            types.SimpleNamespace(metricId=0, nvmlReturn=0, value=0.0) for _ in range(477)
        ]


class ProcessInfoV2(ctypes.Structure):
    """The v2 process entry (nvidia-ml-py's ``c_nvmlProcessInfo_v2_t`` and ``_v3_t``)."""

    _fields_ = [
        ("pid", ctypes.c_uint),
        ("usedGpuMemory", ctypes.c_ulonglong),
        ("gpuInstanceId", ctypes.c_uint),
        ("computeInstanceId", ctypes.c_uint),
    ]


class ProcessDetailV1(ctypes.Structure):
    """The wide entry: R535's v3 process entry, and ``c_nvmlProcessDetail_v1_t``."""

    _fields_ = [
        ("pid", ctypes.c_uint),
        ("usedGpuMemory", ctypes.c_ulonglong),
        ("gpuInstanceId", ctypes.c_uint),
        ("computeInstanceId", ctypes.c_uint),
        ("usedGpuCcProtectedMemory", ctypes.c_ulonglong),
    ]


R535_DRIVER_LACKS = frozenset({"nvmlDeviceGetRunningProcessDetailList"})
"""What an R535 driver lacks next to R550+: it has ConfComputeMemSizeInfo but no detail list."""


_VALUE_MEMBERS = ("dVal", "uiVal", "ulVal", "ullVal", "sllVal", "siVal", "usVal")


class FakeNvmlLibrary:
    """Builds a pynvml-like module over ``FakeGpu``s and records every call made through it.

    Args:
        gpus: the devices.
        init_error: NVML error code ``nvmlInit`` raises (12: library not found, ...).
        missing: names absent from the module (an older nvidia-ml-py).
        driver_lacks: functions that raise FUNCTION_NOT_FOUND (an older driver).
        structs: a real pynvml module; when given, results are its ctypes structs.
    """

    def __init__(
        self,
        gpus: list[FakeGpu],
        *,
        init_error: int | None = None,
        missing: frozenset[str] = frozenset(),
        driver_lacks: frozenset[str] = frozenset(),
        structs: Any = None,
    ) -> None:
        self.gpus = gpus
        self.init_error = init_error
        self.missing = missing
        self.driver_lacks = driver_lacks
        self.structs = structs
        self.calls: list[str] = []
        self.initialized = False
        self.live_gpm_samples: set[int] = set()
        self._gpm_sequence = 0

    @property
    def r535(self) -> bool:
        """Whether the fake driver is of the R535 branch (wide ``_v3`` process entries)."""
        return (
            "nvmlDeviceGetConfComputeMemSizeInfo" not in self.driver_lacks
            and "nvmlDeviceGetRunningProcessDetailList" in self.driver_lacks
        )

    def count(self, function: str) -> int:
        return self.calls.count(function)

    def module(self) -> types.SimpleNamespace:
        """Returns: the module object to pass as ``PynvmlBackend(module=...)``."""
        namespace: dict[str, Any] = {
            "NVMLError": FakeNVMLError,
            "NVML_CLOCK_GRAPHICS": 0,
            "NVML_CLOCK_SM": 1,
            "NVML_CLOCK_MEM": 2,
            "NVML_CLOCK_VIDEO": 3,
            "NVML_TEMPERATURE_GPU": 0,
            "NVML_TEMPERATURE_THRESHOLD_SHUTDOWN": 0,
            "NVML_TEMPERATURE_THRESHOLD_SLOWDOWN": 1,
            "NVML_TEMPERATURE_THRESHOLD_MEM_MAX": 2,
            "NVML_TEMPERATURE_THRESHOLD_GPU_MAX": 3,
            "NVML_FI_DEV_MEMORY_TEMP": 82,
            "nvmlMemory_v2": 0x02000028,
            "nvmlTemperature_v1": 0x100000C,
            "NVML_PCIE_UTIL_TX_BYTES": 0,
            "NVML_PCIE_UTIL_RX_BYTES": 1,
            "NVML_NVLINK_MAX_LINKS": 36,
            "NVML_GPM_METRICS_GET_VERSION": 1,
            "c_nvmlGpmMetricsGet_t": FakeGpmMetricsGet,
            "c_nvmlProcessInfo_v2_t": ProcessInfoV2,
            "c_nvmlProcessInfo_v3_t": ProcessInfoV2,
            "c_nvmlProcessDetail_v1_t": ProcessDetailV1,
        }
        namespace.update(self._functions())
        for name in self.missing:
            namespace.pop(name, None)
        return types.SimpleNamespace(**namespace)

    # What the module's functions do

    def _enter(self, function: str, handle: FakeHandle | None = None) -> FakeGpu | None:
        self.calls.append(function)
        if function not in ("nvmlInit", "nvmlInitWithFlags") and not self.initialized:
            raise FakeNVMLError(1)
        if function in self.driver_lacks:
            raise FakeNVMLError(13)
        if handle is None:
            return None
        gpu = self.gpus[handle.index]
        if function in gpu.errors:
            raise FakeNVMLError(gpu.errors[function])
        return gpu

    def _device(self, function: str, handle: FakeHandle) -> FakeGpu:
        gpu = self._enter(function, handle)
        assert gpu is not None
        return gpu

    def _mig(self, function: str, handle: FakeMigHandle) -> FakeMigDevice:
        gpu = self._device(function, FakeHandle(handle.parent))
        return gpu.mig_devices[handle.slot]

    def _driver_process_bytes(self, processes: list[tuple[int, int]], wide: bool) -> bytes:
        """What the driver writes for ``processes``: entries of the layout it was built with."""
        layout = ProcessDetailV1 if wide else ProcessInfoV2
        entries = (layout * max(len(processes), 1))()
        for slot, (pid, used) in enumerate(processes):
            entries[slot].pid, entries[slot].usedGpuMemory = pid, used
            entries[slot].gpuInstanceId = entries[slot].computeInstanceId = 0xFFFFFFFF
        return bytes(entries)[: ctypes.sizeof(layout) * len(processes)]

    def _processes(self, gpu: FakeGpu, kind: str) -> list[tuple[int, int]]:
        return gpu.compute_processes if kind == "Compute" else gpu.graphics_processes

    def _binding_processes(self, function: str, handle: FakeHandle, suffix: str) -> list[Any]:
        """nvidia-ml-py's own ``…RunningProcesses_v2/_v3``: it reads the driver's bytes with
        its v2-layout struct, which scrambles entries when the driver wrote R535's wide ones."""
        gpu = self._device(function, handle)
        processes = self._processes(gpu, "Compute" if "Compute" in function else "Graphics")
        data = self._driver_process_bytes(processes, wide=self.r535 and suffix == "_v3")
        size = ctypes.sizeof(ProcessInfoV2) * max(len(processes), 1)
        parsed = (ProcessInfoV2 * max(len(processes), 1)).from_buffer_copy(
            data[:size].ljust(size, b"\0")
        )
        result = []
        for slot in range(len(processes)):
            entry = parsed[slot]
            used = None if entry.usedGpuMemory == (1 << 64) - 1 else entry.usedGpuMemory
            result.append(
                types.SimpleNamespace(
                    pid=entry.pid,
                    usedGpuMemory=used,
                    gpuInstanceId=entry.gpuInstanceId,
                    computeInstanceId=entry.computeInstanceId,
                )
            )
        return result

    def _raw_processes(self, function: str) -> Callable[..., int]:
        """The C entry point behind ``_nvmlGetFunctionPointer``: fills a caller's array."""
        kind = "Compute" if "Compute" in function else "Graphics"

        def call(handle: FakeHandle, count: Any, array: Any) -> int:
            gpu = self._device(f"raw {function}", handle)
            processes = self._processes(gpu, kind)
            if array is None or count.contents.value < len(processes):
                count.contents.value = len(processes)
                return 7 if processes else 0
            data = self._driver_process_bytes(processes, wide=self.r535)
            assert ctypes.sizeof(array) >= len(data), "the caller's array is too small"
            ctypes.memmove(array, data, len(data))
            count.contents.value = len(processes)
            return 0

        return call

    def _struct(self, name: str, **values: Any) -> Any:
        if self.structs is None:
            return types.SimpleNamespace(**values)
        return getattr(self.structs, name)(**values)

    def _functions(self) -> dict[str, Callable[..., Any]]:
        def nvmlInit() -> None:
            self._enter("nvmlInit")
            if self.init_error is not None:
                raise FakeNVMLError(self.init_error)
            self.initialized = True

        def nvmlInitWithFlags(flags: int) -> None:
            nvmlInit()

        def nvmlShutdown() -> None:
            self._enter("nvmlShutdown")
            self.initialized = False

        def nvmlSystemGetDriverVersion() -> str:
            self._enter("nvmlSystemGetDriverVersion")
            return "580.159.04"

        def nvmlDeviceGetCount() -> int:
            self._enter("nvmlDeviceGetCount")
            return len(self.gpus)

        def nvmlDeviceGetHandleByIndex(index: int) -> FakeHandle:
            self._enter("nvmlDeviceGetHandleByIndex")
            if not 0 <= index < len(self.gpus):
                raise FakeNVMLError(2)
            if "nvmlDeviceGetHandleByIndex" in self.gpus[index].errors:
                raise FakeNVMLError(self.gpus[index].errors["nvmlDeviceGetHandleByIndex"])
            return FakeHandle(index)

        def nvmlDeviceGetUUID(handle: FakeHandle) -> bytes:
            return self._device("nvmlDeviceGetUUID", handle).uuid

        def nvmlDeviceGetName(handle: FakeHandle) -> bytes:
            return self._device("nvmlDeviceGetName", handle).name

        def nvmlDeviceGetPciInfo(handle: FakeHandle) -> Any:
            gpu = self._device("nvmlDeviceGetPciInfo", handle)
            return self._struct("nvmlPciInfo_t", busId=gpu.bus_id)

        def nvmlDeviceGetMinorNumber(handle: FakeHandle) -> int:
            return self._device("nvmlDeviceGetMinorNumber", handle).index

        def nvmlDeviceGetSerial(handle: FakeHandle) -> str:
            return self._device("nvmlDeviceGetSerial", handle).serial

        def nvmlDeviceGetVbiosVersion(handle: FakeHandle) -> str:
            return self._device("nvmlDeviceGetVbiosVersion", handle).vbios

        def nvmlDeviceGetEnforcedPowerLimit(handle: FakeHandle) -> int:
            return self._device("nvmlDeviceGetEnforcedPowerLimit", handle).limit_mw

        def nvmlDeviceGetMaxClockInfo(handle: FakeHandle, type: int) -> int:
            return self._device("nvmlDeviceGetMaxClockInfo", handle).max_clocks_mhz[type]

        def nvmlDeviceGetMemoryInfo(handle: FakeHandle, version: int | None = None) -> Any:
            name = "nvmlDeviceGetMemoryInfo_v2" if version else "nvmlDeviceGetMemoryInfo"
            if isinstance(handle, FakeMigHandle):
                mig = self._mig(name, handle)
                total, reserved, used = mig.memory_mb << 20, 0, mig.used_bytes
                free = total - used
            else:
                total, reserved, used, free = self._device(name, handle).memory
            if version:
                return self._struct(
                    "c_nvmlMemory_v2_t",
                    version=version,
                    total=total,
                    reserved=reserved,
                    free=free,
                    used=used,
                )
            return self._struct("c_nvmlMemory_t", total=total, free=free, used=used + reserved)

        def nvmlDeviceGetUtilizationRates(handle: FakeHandle) -> Any:
            gpu = self._device("nvmlDeviceGetUtilizationRates", handle)
            rate, memory = gpu.utilization
            return self._struct("c_nvmlUtilization_t", gpu=rate, memory=memory)

        def nvmlDeviceGetPowerUsage(handle: FakeHandle) -> int:
            return self._device("nvmlDeviceGetPowerUsage", handle).power_mw

        def nvmlDeviceGetTotalEnergyConsumption(handle: FakeHandle) -> int:
            return self._device("nvmlDeviceGetTotalEnergyConsumption", handle).energy_mj

        def nvmlDeviceGetTemperatureV(handle: FakeHandle, sensor: int, version: int = 0) -> int:
            return self._device("nvmlDeviceGetTemperatureV", handle).temperature_c

        def nvmlDeviceGetTemperature(handle: FakeHandle, sensor: int) -> int:
            return self._device("nvmlDeviceGetTemperature", handle).temperature_c

        def nvmlDeviceGetTemperatureThreshold(handle: FakeHandle, threshold: int) -> int:
            gpu = self._device("nvmlDeviceGetTemperatureThreshold", handle)
            if threshold not in gpu.temperature_thresholds:
                raise FakeNVMLError(3)
            return gpu.temperature_thresholds[threshold]

        def nvmlDeviceGetFieldValues(handle: FakeHandle, fieldIds: list[Any]) -> list[Any]:
            gpu = self._device("nvmlDeviceGetFieldValues", handle)
            requests = [item if isinstance(item, tuple) else (item, 0) for item in fieldIds]
            answers = []
            for field_id, scope in requests:
                if (field_id, scope) == (82, 0):
                    answers.append(gpu.memory_temp)
                else:
                    answers.append(gpu.fields.get((field_id, scope), (3, 0, 0)))
            if self.structs is not None:
                entries = (self.structs.c_nvmlFieldValue_t * len(requests))()
                for entry, (field_id, scope), (status, value_type, number) in zip(
                    entries, requests, answers, strict=True
                ):
                    entry.fieldId, entry.scopeId = field_id, scope
                    entry.nvmlReturn, entry.valueType = status, value_type
                    setattr(entry.value, _VALUE_MEMBERS[value_type], number)
                return list(entries)
            result = []
            for (field_id, scope), (status, value_type, number) in zip(
                requests, answers, strict=True
            ):
                # Every other union member holds garbage, as reading the wrong member would.
                union: dict[str, int | float] = dict.fromkeys(_VALUE_MEMBERS, 987_654_321)
                if value_type < len(_VALUE_MEMBERS):
                    union[_VALUE_MEMBERS[value_type]] = number
                result.append(
                    types.SimpleNamespace(
                        fieldId=field_id,
                        scopeId=scope,
                        timestamp=0,
                        latencyUsec=0,
                        valueType=value_type,
                        nvmlReturn=status,
                        value=types.SimpleNamespace(**union),
                    )
                )
            return result

        def nvmlDeviceGetClockInfo(handle: FakeHandle, type: int) -> int:
            return self._device("nvmlDeviceGetClockInfo", handle).clocks_mhz[type]

        def nvmlDeviceGetCurrentClocksEventReasons(handle: FakeHandle) -> int:
            return self._device("nvmlDeviceGetCurrentClocksEventReasons", handle).reasons

        def nvmlDeviceGetCurrentClocksThrottleReasons(handle: FakeHandle) -> int:
            return self._device("nvmlDeviceGetCurrentClocksThrottleReasons", handle).reasons

        def nvmlDeviceGetSupportedClocksEventReasons(handle: FakeHandle) -> int:
            gpu = self._device("nvmlDeviceGetSupportedClocksEventReasons", handle)
            return gpu.supported_reasons

        def nvmlDeviceGetSupportedClocksThrottleReasons(handle: FakeHandle) -> int:
            gpu = self._device("nvmlDeviceGetSupportedClocksThrottleReasons", handle)
            return gpu.supported_reasons

        def nvmlDeviceGetEncoderUtilization(handle: FakeHandle) -> list[int]:
            return list(self._device("nvmlDeviceGetEncoderUtilization", handle).encoder)

        def nvmlDeviceGetDecoderUtilization(handle: FakeHandle) -> list[int]:
            return list(self._device("nvmlDeviceGetDecoderUtilization", handle).decoder)

        def nvmlDeviceGetRemappedRows(device: FakeHandle) -> tuple[int, int, int, int]:
            return self._device("nvmlDeviceGetRemappedRows", device).remapped_rows

        def nvmlDeviceGetCurrPcieLinkGeneration(handle: FakeHandle) -> int:
            return self._device("nvmlDeviceGetCurrPcieLinkGeneration", handle).pcie[0]

        def nvmlDeviceGetCurrPcieLinkWidth(handle: FakeHandle) -> int:
            return self._device("nvmlDeviceGetCurrPcieLinkWidth", handle).pcie[1]

        def nvmlDeviceGetMaxPcieLinkGeneration(handle: FakeHandle) -> int:
            return self._device("nvmlDeviceGetMaxPcieLinkGeneration", handle).pcie[2]

        def nvmlDeviceGetMaxPcieLinkWidth(handle: FakeHandle) -> int:
            return self._device("nvmlDeviceGetMaxPcieLinkWidth", handle).pcie[3]

        def nvmlDeviceGetPcieReplayCounter(handle: FakeHandle) -> int:
            return self._device("nvmlDeviceGetPcieReplayCounter", handle).pcie_replays

        def nvmlDeviceGetPcieThroughput(device: FakeHandle, counter: int) -> int:
            return self._device("nvmlDeviceGetPcieThroughput", device).pcie_kib_s[counter]

        def nvmlDeviceGetNvLinkState(device: FakeHandle, link: int) -> int:
            states = self._device("nvmlDeviceGetNvLinkState", device).nvlink_states
            if states is None:
                raise FakeNVMLError(3)
            if link >= len(states):
                raise FakeNVMLError(2)
            return states[link]

        def nvmlGpmQueryDeviceSupport(device: FakeHandle) -> Any:
            gpu = self._device("nvmlGpmQueryDeviceSupport", device)
            return types.SimpleNamespace(version=1, isSupportedDevice=gpu.gpm_supported)

        def nvmlGpmSampleAlloc() -> FakeGpmSample:
            self._enter("nvmlGpmSampleAlloc")
            sample = FakeGpmSample()
            self.live_gpm_samples.add(id(sample))
            return sample

        def nvmlGpmSampleFree(gpmSample: FakeGpmSample) -> None:
            self._enter("nvmlGpmSampleFree")
            self.live_gpm_samples.discard(id(gpmSample))

        def nvmlGpmSampleGet(device: FakeHandle, gpmSample: FakeGpmSample) -> FakeGpmSample:
            self._device("nvmlGpmSampleGet", device)
            self._gpm_sequence += 1
            gpmSample.device, gpmSample.sequence = device.index, self._gpm_sequence
            return gpmSample

        def nvmlGpmMigSampleGet(
            device: FakeHandle, gpuInstanceId: int, gpmSample: FakeGpmSample
        ) -> FakeGpmSample:
            gpu = self._device("nvmlGpmMigSampleGet", device)
            if gpuInstanceId not in gpu.mig_gpm:
                raise FakeNVMLError(2)
            self._gpm_sequence += 1
            gpmSample.device, gpmSample.sequence = device.index, self._gpm_sequence
            gpmSample.gpu_instance_id = gpuInstanceId
            return gpmSample

        def nvmlGpmMetricsGet(metricsGet: FakeGpmMetricsGet) -> FakeGpmMetricsGet:
            self._enter("nvmlGpmMetricsGet")
            first, second = metricsGet.sample1, metricsGet.sample2
            assert metricsGet.version == 1
            for sample in (first, second):
                assert id(sample) in self.live_gpm_samples, "a freed or foreign GPM sample"
            assert first.device == second.device and first.sequence < second.sequence
            assert first.gpu_instance_id == second.gpu_instance_id
            gpu = self.gpus[second.device]
            table = (
                gpu.gpm if second.gpu_instance_id is None else gpu.mig_gpm[second.gpu_instance_id]
            )
            for slot in range(metricsGet.numMetrics):
                entry = metricsGet.metrics[slot]
                if entry.metricId in table:
                    entry.nvmlReturn, entry.value = 0, table[entry.metricId]
                else:
                    entry.nvmlReturn, entry.value = 3, 0.0
            return metricsGet

        def nvmlDeviceGetPowerManagementDefaultLimit(handle: FakeHandle) -> int:
            return self._device("nvmlDeviceGetPowerManagementDefaultLimit", handle).default_limit_mw

        def nvmlDeviceGetPersistenceMode(handle: FakeHandle) -> int:
            return self._device("nvmlDeviceGetPersistenceMode", handle).persistence

        def nvmlDeviceGetComputeMode(handle: FakeHandle) -> int:
            return self._device("nvmlDeviceGetComputeMode", handle).compute_mode

        def nvmlDeviceGetMigMode(device: FakeHandle) -> list[int]:
            return list(self._device("nvmlDeviceGetMigMode", device).mig_mode)

        def nvmlDeviceGetMaxMigDeviceCount(device: FakeHandle) -> int:
            self._device("nvmlDeviceGetMaxMigDeviceCount", device)
            return 7

        def nvmlDeviceGetMigDeviceHandleByIndex(device: FakeHandle, index: int) -> FakeMigHandle:
            gpu = self._device("nvmlDeviceGetMigDeviceHandleByIndex", device)
            if index >= len(gpu.mig_devices):
                raise FakeNVMLError(6)
            return FakeMigHandle(device.index, index)

        def nvmlDeviceGetGpuInstanceId(device: FakeMigHandle) -> int:
            return self._mig("nvmlDeviceGetGpuInstanceId", device).gpu_instance_id

        def nvmlDeviceGetAttributes(device: FakeMigHandle) -> Any:
            mig = self._mig("nvmlDeviceGetAttributes", device)
            return types.SimpleNamespace(
                gpuInstanceSliceCount=mig.slices, memorySizeMB=mig.memory_mb
            )

        def nvmlDeviceGetGridLicensableFeatures(handle: FakeHandle) -> Any:
            supported, states = self._device("nvmlDeviceGetGridLicensableFeatures", handle).grid
            return types.SimpleNamespace(
                isGridLicenseSupported=supported,
                licensableFeaturesCount=len(states),
                gridLicensableFeatures=[types.SimpleNamespace(featureState=s) for s in states],
            )

        def nvmlDeviceGetComputeRunningProcesses_v3(handle: FakeHandle) -> list[Any]:
            return self._binding_processes("nvmlDeviceGetComputeRunningProcesses_v3", handle, "_v3")

        def nvmlDeviceGetComputeRunningProcesses_v2(handle: FakeHandle) -> list[Any]:
            return self._binding_processes("nvmlDeviceGetComputeRunningProcesses_v2", handle, "_v2")

        def nvmlDeviceGetGraphicsRunningProcesses_v3(handle: FakeHandle) -> list[Any]:
            name = "nvmlDeviceGetGraphicsRunningProcesses_v3"
            return self._binding_processes(name, handle, "_v3")

        def nvmlDeviceGetGraphicsRunningProcesses_v2(handle: FakeHandle) -> list[Any]:
            name = "nvmlDeviceGetGraphicsRunningProcesses_v2"
            return self._binding_processes(name, handle, "_v2")

        def nvmlDeviceGetProcessUtilization(handle: FakeHandle, timeStamp: int) -> list[Any]:
            gpu = self._device("nvmlDeviceGetProcessUtilization", handle)
            samples = [sample for sample in gpu.process_samples if sample[1] > timeStamp]
            if not samples:
                raise FakeNVMLError(6)
            return [
                types.SimpleNamespace(pid=pid, timeStamp=stamp, smUtil=sm, memUtil=memory)
                for pid, stamp, sm, memory in samples
            ]

        def _nvmlGetFunctionPointer(name: str) -> Callable[..., int]:
            self._enter(f"lookup {name}")
            if name in self.driver_lacks:
                raise FakeNVMLError(13)
            if name.endswith("RunningProcesses_v3") or name.endswith("RunningProcesses_v2"):
                return self._raw_processes(name)

            def unused(*args: Any) -> int:
                raise AssertionError(f"{name} is only probed, never called")

            return unused

        return {
            name: value
            for name, value in locals().items()
            if name.startswith("nvml") or name == "_nvmlGetFunctionPointer"
        }


def r535_struct_drift() -> FakeNvmlLibrary:
    """An R535 driver (XuehaiPan/nvitop #75): its ``…RunningProcesses_v3`` write wide entries,
    which nvidia-ml-py's own ``_v3`` reads with the v2 layout, scrambling the second PID on."""
    gpu = FakeGpu(
        0,
        compute_processes=[(4242, 7_226_785_792), (4343, 1 << 30)],
        graphics_processes=[(4242, 7_226_785_792), (5151, 64 << 20)],
    )
    return FakeNvmlLibrary([gpu], driver_lacks=R535_DRIVER_LACKS)
