"""Fake NVML for tests, at both seams, named after the real failures they reproduce.

- Scenarios: ``ScriptedBackend``s behind the ``NvmlBackend`` seam (what the collector sees).
- ``FakeNvmlLibrary``: a tiny stand-in for the ``pynvml`` module, injected into
  ``PynvmlBackend(module=...)`` to test the real backend's mapping and fallbacks without a
  driver. Nothing here patches the global ``pynvml`` module.
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.collectors.gpu.backend import (
    MemoryInfo,
    NvmlGpuLost,
    NvmlNotSupported,
    NvmlUnavailable,
    Utilization,
)
from agent.collectors.gpu.scripted import DeviceScript, ScriptedBackend, Step, sequence

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
    memory_temp: tuple[int, int, int | float] = (0, 1, 46)
    """(nvmlReturn, valueType, value) of the NVML_FI_DEV_MEMORY_TEMP field entry."""
    clocks_mhz: dict[int, int] = field(default_factory=lambda: {1: 885, 2: 2619})
    max_clocks_mhz: dict[int, int] = field(default_factory=lambda: {1: 1980, 2: 2619})
    reasons: int = 0x1
    errors: dict[str, int] = field(default_factory=dict)
    """pynvml function name -> NVML error code it raises for this device."""

    def __post_init__(self) -> None:
        self.uuid = self.uuid or gpu_uuid(self.index).encode()
        self.bus_id = self.bus_id or bus_id(self.index).encode()


@dataclass(frozen=True)
class FakeHandle:
    index: int


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
            "NVML_FI_DEV_MEMORY_TEMP": 82,
            "nvmlMemory_v2": 0x02000028,
            "nvmlTemperature_v1": 0x100000C,
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
            gpu = self._device(name, handle)
            total, reserved, used, free = gpu.memory
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

        def nvmlDeviceGetFieldValues(handle: FakeHandle, fieldIds: list[int]) -> list[Any]:
            gpu = self._device("nvmlDeviceGetFieldValues", handle)
            assert fieldIds == [82], fieldIds
            status, value_type, number = gpu.memory_temp
            if self.structs is not None:
                entries = (self.structs.c_nvmlFieldValue_t * 1)()
                entry = entries[0]
                entry.fieldId, entry.nvmlReturn, entry.valueType = 82, status, value_type
                setattr(entry.value, _VALUE_MEMBERS[value_type], number)
                return list(entries)
            # Every other union member holds garbage, as reading the wrong member would.
            union: dict[str, int | float] = dict.fromkeys(_VALUE_MEMBERS, 987_654_321)
            if value_type < len(_VALUE_MEMBERS):
                union[_VALUE_MEMBERS[value_type]] = number
            return [
                types.SimpleNamespace(
                    fieldId=82,
                    scopeId=0,
                    timestamp=0,
                    latencyUsec=0,
                    valueType=value_type,
                    nvmlReturn=status,
                    value=types.SimpleNamespace(**union),
                )
            ]

        def nvmlDeviceGetClockInfo(handle: FakeHandle, type: int) -> int:
            return self._device("nvmlDeviceGetClockInfo", handle).clocks_mhz[type]

        def nvmlDeviceGetCurrentClocksEventReasons(handle: FakeHandle) -> int:
            return self._device("nvmlDeviceGetCurrentClocksEventReasons", handle).reasons

        def nvmlDeviceGetCurrentClocksThrottleReasons(handle: FakeHandle) -> int:
            return self._device("nvmlDeviceGetCurrentClocksThrottleReasons", handle).reasons

        return {name: value for name, value in locals().items() if name.startswith("nvml")}
