"""The real NVML backend: ``NvmlBackend`` over an NVML session (nvidia-ml-py).

Stage: ``NvmlSession`` (``nvml.py``, the one importer of pynvml) -> (this) -> ``NvmlBackend``
-> ``GpuCollector``. Input: an NVML index per call. Output: plain records in NVML's units
(``backend.py``), strings decoded, errors already mapped by the session; running processes come
from ``nvml_processes.py`` and GPM metrics from ``nvml_gpm.py``.

Driver and binding drift is handled by probing, not by version strings: for each device the
first call tries the current API and falls back to the older one when the driver or binding
lacks it (``nvmlDeviceGetCurrentClocksEventReasons`` -> ``…ThrottleReasons``, memory info v2 ->
v1, ``nvmlDeviceGetTemperatureV`` -> ``nvmlDeviceGetTemperature``); the choice is remembered
for the session (``NvmlSession.first_working``). The pynvml module can be injected
(``PynvmlBackend(module=...)``) so this logic is tested without a driver and without patching
the global module.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from agent.collectors.gpu.backend import (
    Clock,
    FieldValue,
    GpmMetric,
    GpuProcess,
    MemoryInfo,
    MigInstance,
    MigMode,
    NvmlError,
    NvmlFunctionNotFound,
    NvmlGpuLost,
    NvmlNoPermission,
    NvmlNotFound,
    NvmlNotSupported,
    PcieCounter,
    PcieLink,
    ProcessUtilization,
    RemappedRows,
    TemperatureThreshold,
    Utilization,
)
from agent.collectors.gpu.nvml import (
    ERROR_INVALID_ARGUMENT,
    NVML_SUCCESS,
    NvmlSession,
    Variant,
    error_for_code,
)
from agent.collectors.gpu.nvml_gpm import NvmlGpm
from agent.collectors.gpu.nvml_processes import NvmlProcesses

# NVML_FI_DEV_MEMORY_TEMP from nvml.h (stable field id), used if the binding lacks the name.
_FI_DEV_MEMORY_TEMP = 82

# nvmlValueType_t -> the member of the c_nvmlValue_t union that holds the value.
_VALUE_MEMBERS = ("dVal", "uiVal", "ulVal", "ullVal", "sllVal", "siVal", "usVal")

_CLOCK_CONSTANTS = {
    Clock.GRAPHICS: "NVML_CLOCK_GRAPHICS",
    Clock.SM: "NVML_CLOCK_SM",
    Clock.MEM: "NVML_CLOCK_MEM",
    Clock.VIDEO: "NVML_CLOCK_VIDEO",
}

_PCIE_COUNTERS = {
    PcieCounter.TX: "NVML_PCIE_UTIL_TX_BYTES",
    PcieCounter.RX: "NVML_PCIE_UTIL_RX_BYTES",
}

# pynvml's names of ``nvmlTemperatureThresholds_t``; the enum's values are NVML's ABI, used
# where a binding lacks a name.
_THRESHOLD_CONSTANTS = {
    TemperatureThreshold.SHUTDOWN: "NVML_TEMPERATURE_THRESHOLD_SHUTDOWN",
    TemperatureThreshold.SLOWDOWN: "NVML_TEMPERATURE_THRESHOLD_SLOWDOWN",
    TemperatureThreshold.MEM_MAX: "NVML_TEMPERATURE_THRESHOLD_MEM_MAX",
    TemperatureThreshold.GPU_MAX: "NVML_TEMPERATURE_THRESHOLD_GPU_MAX",
}

# Hopper has 18 NVLinks; NVML answers INVALID_ARGUMENT past a GPU's last link.
_DEFAULT_MAX_NVLINKS = 18


class PynvmlBackend:
    """``NvmlBackend`` over the real driver. Thread-safe; calls run unlocked (NVML is thread-safe).

    Args:
        module: a pynvml-compatible module object to use instead of importing ``pynvml``
            (tests pass a small fake; production leaves it None).
    """

    def __init__(self, module: Any = None) -> None:
        self._nvml = NvmlSession(module)
        self._processes = NvmlProcesses(self._nvml)
        self._gpm = NvmlGpm(self._nvml)
        self._nvml.keep(self._processes)
        self._nvml.keep(self._gpm)

    # Session

    def init(self) -> None:
        self._nvml.init()

    def shutdown(self) -> None:
        self._nvml.shutdown()

    def driver_version(self) -> str:
        return _text(self._nvml.call("nvmlSystemGetDriverVersion"))

    def device_count(self) -> int:
        return int(self._nvml.call("nvmlDeviceGetCount"))

    # Identity

    def uuid(self, index: int) -> str:
        return _text(self._nvml.device("nvmlDeviceGetUUID", index))

    def name(self, index: int) -> str:
        return _text(self._nvml.device("nvmlDeviceGetName", index))

    def pci_bus_id(self, index: int) -> str:
        return _text(self._nvml.device("nvmlDeviceGetPciInfo", index).busId)

    def minor_number(self, index: int) -> int:
        return int(self._nvml.device("nvmlDeviceGetMinorNumber", index))

    def serial(self, index: int) -> str:
        return _text(self._nvml.device("nvmlDeviceGetSerial", index))

    def vbios_version(self, index: int) -> str:
        return _text(self._nvml.device("nvmlDeviceGetVbiosVersion", index))

    def enforced_power_limit_mw(self, index: int) -> int:
        return int(self._nvml.device("nvmlDeviceGetEnforcedPowerLimit", index))

    def max_clock_mhz(self, index: int, which: Clock) -> int:
        return int(self._nvml.device("nvmlDeviceGetMaxClockInfo", index, self._clock_type(which)))

    def temperature_threshold_c(self, index: int, which: TemperatureThreshold) -> int:
        kind = getattr(self._nvml.module(), _THRESHOLD_CONSTANTS[which], int(which))
        return int(self._nvml.device("nvmlDeviceGetTemperatureThreshold", index, kind))

    # Readings

    def memory_info(self, index: int) -> MemoryInfo:
        nv = self._nvml.module()
        variants = []
        if hasattr(nv, "nvmlMemory_v2"):
            variants.append(
                Variant("v2", "nvmlDeviceGetMemoryInfo", (), {"version": nv.nvmlMemory_v2})
            )
        variants.append(Variant("v1", "nvmlDeviceGetMemoryInfo"))
        variant, raw = self._nvml.first_working("memory info", index, variants)
        return MemoryInfo(
            total_bytes=int(raw.total),
            used_bytes=int(raw.used),
            free_bytes=int(raw.free),
            reserved_bytes=int(raw.reserved) if variant.label == "v2" else None,
        )

    def utilization(self, index: int) -> Utilization:
        raw = self._nvml.device("nvmlDeviceGetUtilizationRates", index)
        return Utilization(gpu_percent=int(raw.gpu), memory_percent=int(raw.memory))

    def power_usage_mw(self, index: int) -> int:
        return int(self._nvml.device("nvmlDeviceGetPowerUsage", index))

    def total_energy_mj(self, index: int) -> int:
        return int(self._nvml.device("nvmlDeviceGetTotalEnergyConsumption", index))

    def temperature_c(self, index: int) -> int:
        sensor = self._nvml.module().NVML_TEMPERATURE_GPU
        variants = [
            Variant("TemperatureV", "nvmlDeviceGetTemperatureV", (sensor,)),
            Variant("Temperature", "nvmlDeviceGetTemperature", (sensor,)),
        ]
        return int(self._nvml.first_working("GPU temperature", index, variants)[1])

    def memory_temperature_c(self, index: int) -> int:
        field_id = getattr(self._nvml.module(), "NVML_FI_DEV_MEMORY_TEMP", _FI_DEV_MEMORY_TEMP)
        entry = self._nvml.device("nvmlDeviceGetFieldValues", index, [field_id])[0]
        status = int(entry.nvmlReturn)
        if status != NVML_SUCCESS:
            # The call succeeded but this field failed: map the entry's own status.
            error = error_for_code(status, "nvmlDeviceGetFieldValues(NVML_FI_DEV_MEMORY_TEMP)")
            if isinstance(error, NvmlGpuLost):
                self._nvml.forget_handle(index)
            raise error
        return int(_field_number(entry))

    def clock_mhz(self, index: int, which: Clock) -> int:
        return int(self._nvml.device("nvmlDeviceGetClockInfo", index, self._clock_type(which)))

    def clocks_event_reasons(self, index: int) -> int:
        variants = [
            Variant("ClocksEventReasons", "nvmlDeviceGetCurrentClocksEventReasons"),
            Variant("ClocksThrottleReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"),
        ]
        return int(self._nvml.first_working("clock-event reasons", index, variants)[1])

    def supported_clocks_event_reasons(self, index: int) -> int:
        variants = [
            Variant("ClocksEventReasons", "nvmlDeviceGetSupportedClocksEventReasons"),
            Variant("ClocksThrottleReasons", "nvmlDeviceGetSupportedClocksThrottleReasons"),
        ]
        return int(self._nvml.first_working("supported clock-event reasons", index, variants)[1])

    def encoder_utilization_percent(self, index: int) -> int:
        percent, _period_us = self._nvml.device("nvmlDeviceGetEncoderUtilization", index)
        return int(percent)

    def decoder_utilization_percent(self, index: int) -> int:
        percent, _period_us = self._nvml.device("nvmlDeviceGetDecoderUtilization", index)
        return int(percent)

    def field_values(self, index: int, fields: Sequence[tuple[int, int]]) -> list[FieldValue]:
        requests = [(int(field_id), int(scope)) for field_id, scope in fields]
        if not requests:
            return []
        entries = self._nvml.device("nvmlDeviceGetFieldValues", index, requests)
        values: list[FieldValue] = []
        for (field_id, scope), entry in zip(requests, entries, strict=True):
            status = int(entry.nvmlReturn)
            where = f"nvmlDeviceGetFieldValues(field {field_id}, scope {scope})"
            if status != NVML_SUCCESS:
                # The call succeeded but this entry failed: keep the entry's own status.
                values.append(FieldValue(field_id, scope, None, error_for_code(status, where)))
                continue
            try:
                values.append(FieldValue(field_id, scope, float(_field_number(entry))))
            except NvmlError as exc:
                values.append(FieldValue(field_id, scope, None, exc))
        if any(isinstance(value.error, NvmlGpuLost) for value in values):
            self._nvml.forget_handle(index)
        return values

    def remapped_rows(self, index: int) -> RemappedRows:
        correctable, uncorrectable, pending, failure = self._nvml.device(
            "nvmlDeviceGetRemappedRows", index
        )
        return RemappedRows(int(correctable), int(uncorrectable), bool(pending), bool(failure))

    def pcie_link(self, index: int) -> PcieLink:
        return PcieLink(
            generation=int(self._nvml.device("nvmlDeviceGetCurrPcieLinkGeneration", index)),
            width=int(self._nvml.device("nvmlDeviceGetCurrPcieLinkWidth", index)),
            max_generation=int(self._nvml.device("nvmlDeviceGetMaxPcieLinkGeneration", index)),
            max_width=int(self._nvml.device("nvmlDeviceGetMaxPcieLinkWidth", index)),
        )

    def pcie_replay_count(self, index: int) -> int:
        return int(self._nvml.device("nvmlDeviceGetPcieReplayCounter", index))

    def pcie_throughput_kib_per_s(self, index: int, counter: PcieCounter) -> int:
        constant = getattr(self._nvml.module(), _PCIE_COUNTERS[counter])
        return int(self._nvml.device("nvmlDeviceGetPcieThroughput", index, constant))

    def nvlink_states(self, index: int) -> list[bool]:
        links = int(getattr(self._nvml.module(), "NVML_NVLINK_MAX_LINKS", _DEFAULT_MAX_NVLINKS))
        states: list[bool] = []
        for link in range(links):
            try:
                states.append(bool(self._nvml.device("nvmlDeviceGetNvLinkState", index, link)))
            except NvmlNotSupported:
                if link == 0:
                    raise  # no NVLink state at all (PCIe boards, some VMs)
                states.append(False)
            except NvmlError as exc:
                if exc.code != ERROR_INVALID_ARGUMENT:
                    raise
                break  # past the GPU's last link
        return states

    def gpm_supported(self, index: int) -> bool:
        return self._gpm.supported(index)

    def gpm_metrics(
        self, index: int, metrics: Sequence[GpmMetric], gpu_instance_id: int | None = None
    ) -> dict[GpmMetric, float]:
        return self._gpm.metrics(index, metrics, gpu_instance_id)

    def default_power_limit_mw(self, index: int) -> int:
        return int(self._nvml.device("nvmlDeviceGetPowerManagementDefaultLimit", index))

    def persistence_mode(self, index: int) -> bool:
        return int(self._nvml.device("nvmlDeviceGetPersistenceMode", index)) == 1

    def compute_mode(self, index: int) -> int:
        return int(self._nvml.device("nvmlDeviceGetComputeMode", index))

    def mig_mode(self, index: int) -> MigMode:
        current, pending = self._nvml.device("nvmlDeviceGetMigMode", index)
        return MigMode(current=int(current) == 1, pending=int(pending) == 1)

    def mig_instances(self, index: int) -> list[MigInstance]:
        instances: dict[int, MigInstance] = {}
        with self._nvml.device_lock(index):
            slots = int(self._nvml.device("nvmlDeviceGetMaxMigDeviceCount", index))
            for slot in range(slots):
                try:
                    mig = self._nvml.device("nvmlDeviceGetMigDeviceHandleByIndex", index, slot)
                except NvmlNotFound:
                    continue  # an empty slot
                except NvmlError as exc:
                    if exc.code != ERROR_INVALID_ARGUMENT:
                        raise
                    continue
                try:
                    instance_id = int(self._nvml.call("nvmlDeviceGetGpuInstanceId", mig))
                    if instance_id in instances:
                        continue  # another compute instance of the same GPU instance
                    attributes = self._nvml.call("nvmlDeviceGetAttributes", mig)
                except NvmlGpuLost:
                    self._nvml.forget_handle(index)
                    raise
                instances[instance_id] = MigInstance(
                    gpu_instance_id=instance_id,
                    profile=_mig_profile(attributes),
                    memory=self._mig_memory(mig),
                )
        return sorted(instances.values(), key=lambda instance: instance.gpu_instance_id)

    def vgpu_license_status(self, index: int) -> int:
        features = self._nvml.device("nvmlDeviceGetGridLicensableFeatures", index)
        if not int(features.isGridLicenseSupported):
            raise NvmlNotSupported(f"GPU {index} is not a licensable vGPU")
        count = int(features.licensableFeaturesCount)
        licensed = any(
            int(features.gridLicensableFeatures[slot].featureState) == 1 for slot in range(count)
        )
        return 1 if licensed else 0

    # Processes

    def running_processes(self, index: int) -> list[GpuProcess]:
        return self._processes.running(index)

    def process_utilization(self, index: int, since_us: int) -> list[ProcessUtilization]:
        return self._processes.utilization(index, since_us)

    # Plumbing

    def _mig_memory(self, mig: Any) -> MemoryInfo | None:
        nv = self._nvml.module()
        try:
            if hasattr(nv, "nvmlMemory_v2"):
                try:
                    raw = self._nvml.call("nvmlDeviceGetMemoryInfo", mig, version=nv.nvmlMemory_v2)
                    return MemoryInfo(
                        int(raw.total), int(raw.used), int(raw.free), int(raw.reserved)
                    )
                except (NvmlFunctionNotFound, NvmlNotSupported):
                    pass
            raw = self._nvml.call("nvmlDeviceGetMemoryInfo", mig)
        except (NvmlNotSupported, NvmlFunctionNotFound, NvmlNoPermission):
            return None
        return MemoryInfo(int(raw.total), int(raw.used), int(raw.free), None)

    def _clock_type(self, which: Clock) -> Any:
        return getattr(self._nvml.module(), _CLOCK_CONSTANTS[which])


def _mig_profile(attributes: Any) -> str:
    """Returns: the MIG profile as DCGM and dcgm-exporter name it: slices, then memory in GB."""
    gigabytes = math.ceil(int(attributes.memorySizeMB) / 1024)
    return f"{int(attributes.gpuInstanceSliceCount)}g.{gigabytes}gb"


def _text(value: Any) -> str:
    """Returns: ``value`` as str; older bindings return bytes."""
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise NvmlError("the driver returned undecodable text") from exc
    return str(value)


def _field_number(entry: Any) -> float | int:
    """Returns: the number in an ``nvmlFieldValue_t``, read from the union member its type names."""
    value_type = int(entry.valueType)
    if not 0 <= value_type < len(_VALUE_MEMBERS):
        raise NvmlError(f"field value of unknown type {value_type}")
    number = getattr(entry.value, _VALUE_MEMBERS[value_type])
    return float(number) if value_type == 0 else int(number)
