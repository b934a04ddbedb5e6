"""The real NVML backend, over nvidia-ml-py (``import pynvml``).

Stage: driver -> (this module) -> ``NvmlBackend`` -> ``GpuCollector``. This is the only module
that imports pynvml, and only inside ``init()`` (importing dcmon never loads the driver
library). Every foreign ``pynvml.NVMLError`` is mapped here, once, to the exceptions of
``backend.py``; strings come back decoded; results come back as plain records in NVML's units.

Driver and binding drift is handled by probing, not by version strings: for each device the
first call tries the current API and falls back to the older one when the driver or binding
lacks it (``nvmlDeviceGetCurrentClocksEventReasons`` -> ``…ThrottleReasons``, memory info v2 ->
v1, ``nvmlDeviceGetTemperatureV`` -> ``nvmlDeviceGetTemperature``); the choice is remembered
for the session. Running processes probe the driver's symbols once per session for the R535
struct drift (``_process_layout_for_session``). GPM keeps the previous sample per GPU (and per
MIG GPU instance) and frees samples when the session ends. The pynvml module can be injected
(``PynvmlBackend(module=...)``) so this logic is tested without a driver and without patching
the global module.
"""

from __future__ import annotations

import ctypes
import logging
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
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
    NvmlTimeout,
    NvmlUnavailable,
    PcieCounter,
    PcieLink,
    ProcessUtilization,
    RemappedRows,
    Utilization,
)

_log = logging.getLogger(__name__)

# nvmlReturn_t values from nvml.h; part of NVML's ABI, identical in every binding.
NVML_SUCCESS = 0
_ERROR_UNINITIALIZED = 1
_ERROR_INVALID_ARGUMENT = 2
_ERROR_NOT_SUPPORTED = 3
_ERROR_NO_PERMISSION = 4
_ERROR_NOT_FOUND = 6
_ERROR_DRIVER_NOT_LOADED = 9
_ERROR_INSUFFICIENT_SIZE = 7
_ERROR_TIMEOUT = 10
_ERROR_LIBRARY_NOT_FOUND = 12
_ERROR_FUNCTION_NOT_FOUND = 13
_ERROR_GPU_IS_LOST = 15
_ERROR_RESET_REQUIRED = 16
_ERROR_LIB_RM_VERSION_MISMATCH = 18
_ERROR_ARGUMENT_VERSION_MISMATCH = 25

_ERROR_CLASSES: dict[int, type[NvmlError]] = {
    _ERROR_NOT_SUPPORTED: NvmlNotSupported,
    _ERROR_NO_PERMISSION: NvmlNoPermission,
    _ERROR_NOT_FOUND: NvmlNotFound,
    _ERROR_TIMEOUT: NvmlTimeout,
    _ERROR_FUNCTION_NOT_FOUND: NvmlFunctionNotFound,
    _ERROR_GPU_IS_LOST: NvmlGpuLost,
    _ERROR_RESET_REQUIRED: NvmlGpuLost,
    # The library went away under a running session (driver unloaded or upgraded).
    _ERROR_UNINITIALIZED: NvmlUnavailable,
    _ERROR_DRIVER_NOT_LOADED: NvmlUnavailable,
    _ERROR_LIB_RM_VERSION_MISMATCH: NvmlUnavailable,
}

# Why nvmlInit failed, for people: (reason, remediation hint).
_INIT_FAILURES: dict[int, tuple[str, str]] = {
    _ERROR_LIBRARY_NOT_FOUND: (
        "no NVIDIA driver: NVML library not found",
        "install the NVIDIA driver so that libnvidia-ml.so.1 is on the loader path",
    ),
    _ERROR_DRIVER_NOT_LOADED: (
        "no NVIDIA driver: kernel driver not loaded",
        "load the nvidia kernel module (modprobe nvidia) or reboot after installing the driver",
    ),
    _ERROR_LIB_RM_VERSION_MISMATCH: (
        "NVIDIA driver version mismatch: NVML library and kernel module differ",
        "the driver was upgraded without reloading the kernel module; reboot the node",
    ),
    _ERROR_NO_PERMISSION: (
        "no permission to use the NVIDIA driver",
        "run the agent as a user that can open /dev/nvidiactl and /dev/nvidia*",
    ),
}

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

# NVML's "not available" in 64-bit process memory (WDDM, MIG).
_NOT_AVAILABLE_ULL = (1 << 64) - 1
# Hopper has 18 NVLinks; NVML answers INVALID_ARGUMENT past a GPU's last link.
_DEFAULT_MAX_NVLINKS = 18

# A binding without these is not nvidia-ml-py (e.g. an old unofficial pynvml shadowing it).
_REQUIRED_SYMBOLS = ("NVMLError", "nvmlInit", "nvmlInitWithFlags", "nvmlShutdown")


def load_pynvml() -> Any:
    """Import nvidia-ml-py's ``pynvml`` module.

    Raises:
        NvmlUnavailable: the binding is not installed.
    """
    try:
        import pynvml  # noqa: PLC0415, TID251 (lazy, and this is the one allowed importer)
    except ImportError as exc:
        raise NvmlUnavailable(
            "no NVML binding: nvidia-ml-py is not installed",
            hint="install the agent with its extra: pip install 'dcmon[agent]'",
        ) from exc
    return pynvml


@dataclass(frozen=True)
class _Variant:
    """One way to make a call: the pynvml function, its extra arguments, and a label."""

    label: str
    function: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


class PynvmlBackend:
    """``NvmlBackend`` over the real driver. Thread-safe; calls run unlocked (NVML is thread-safe).

    Args:
        module: a pynvml-compatible module object to use instead of importing ``pynvml``
            (tests pass a small fake; production leaves it None).
    """

    def __init__(self, module: Any = None) -> None:
        self._module = module
        self._nv: Any = None
        self._lock = threading.RLock()  # session start/stop and one-time probes
        self._device_locks: dict[int, threading.RLock] = {}
        self._handles: dict[int, Any] = {}
        self._chosen: dict[tuple[str, int], _Variant] = {}
        self._fallbacks_logged: set[str] = set()
        self._process_layout: str | None = None
        self._gpm_support: dict[int, bool] = {}
        self._gpm_samples: dict[tuple[int, int | None], Any] = {}

    # Session

    def init(self) -> None:
        with self._lock:
            if self._nv is not None:
                return
            nv = self._module if self._module is not None else load_pynvml()
            missing = [name for name in _REQUIRED_SYMBOLS if not hasattr(nv, name)]
            if missing:
                raise NvmlUnavailable(
                    f"the installed pynvml module is not nvidia-ml-py (lacks {', '.join(missing)})",
                    hint="uninstall the 'pynvml'/'nvidia-ml-py3' packages and install nvidia-ml-py",
                )
            try:
                nv.nvmlInit()
            except nv.NVMLError as exc:
                raise _init_failure(exc) from exc
            self._nv = nv
            self._forget_session()

    def shutdown(self) -> None:
        with self._lock:
            if self._nv is not None:
                self._free_gpm_samples()
            nv, self._nv = self._nv, None
            self._forget_session()
            if nv is None:
                return
            try:
                nv.nvmlShutdown()
            except nv.NVMLError as exc:
                raise map_error(exc, "nvmlShutdown") from exc

    def driver_version(self) -> str:
        return _text(self._call("nvmlSystemGetDriverVersion"))

    def device_count(self) -> int:
        return int(self._call("nvmlDeviceGetCount"))

    # Identity

    def uuid(self, index: int) -> str:
        return _text(self._device("nvmlDeviceGetUUID", index))

    def name(self, index: int) -> str:
        return _text(self._device("nvmlDeviceGetName", index))

    def pci_bus_id(self, index: int) -> str:
        return _text(self._device("nvmlDeviceGetPciInfo", index).busId)

    def minor_number(self, index: int) -> int:
        return int(self._device("nvmlDeviceGetMinorNumber", index))

    def serial(self, index: int) -> str:
        return _text(self._device("nvmlDeviceGetSerial", index))

    def vbios_version(self, index: int) -> str:
        return _text(self._device("nvmlDeviceGetVbiosVersion", index))

    def enforced_power_limit_mw(self, index: int) -> int:
        return int(self._device("nvmlDeviceGetEnforcedPowerLimit", index))

    def max_clock_mhz(self, index: int, which: Clock) -> int:
        return int(self._device("nvmlDeviceGetMaxClockInfo", index, self._clock_type(which)))

    # Readings

    def memory_info(self, index: int) -> MemoryInfo:
        variants = []
        if hasattr(self._session(), "nvmlMemory_v2"):
            variants.append(
                _Variant("v2", "nvmlDeviceGetMemoryInfo", (), {"version": self._nv.nvmlMemory_v2})
            )
        variants.append(_Variant("v1", "nvmlDeviceGetMemoryInfo"))
        variant, raw = self._first_working("memory info", index, variants)
        return MemoryInfo(
            total_bytes=int(raw.total),
            used_bytes=int(raw.used),
            free_bytes=int(raw.free),
            reserved_bytes=int(raw.reserved) if variant.label == "v2" else None,
        )

    def utilization(self, index: int) -> Utilization:
        raw = self._device("nvmlDeviceGetUtilizationRates", index)
        return Utilization(gpu_percent=int(raw.gpu), memory_percent=int(raw.memory))

    def power_usage_mw(self, index: int) -> int:
        return int(self._device("nvmlDeviceGetPowerUsage", index))

    def total_energy_mj(self, index: int) -> int:
        return int(self._device("nvmlDeviceGetTotalEnergyConsumption", index))

    def temperature_c(self, index: int) -> int:
        sensor = self._session().NVML_TEMPERATURE_GPU
        variants = [
            _Variant("TemperatureV", "nvmlDeviceGetTemperatureV", (sensor,)),
            _Variant("Temperature", "nvmlDeviceGetTemperature", (sensor,)),
        ]
        return int(self._first_working("GPU temperature", index, variants)[1])

    def memory_temperature_c(self, index: int) -> int:
        field_id = getattr(self._session(), "NVML_FI_DEV_MEMORY_TEMP", _FI_DEV_MEMORY_TEMP)
        entry = self._device("nvmlDeviceGetFieldValues", index, [field_id])[0]
        status = int(entry.nvmlReturn)
        if status != NVML_SUCCESS:
            # The call succeeded but this field failed: map the entry's own status.
            error = _error_for_code(status, "nvmlDeviceGetFieldValues(NVML_FI_DEV_MEMORY_TEMP)")
            if isinstance(error, NvmlGpuLost):
                self._handles.pop(index, None)
            raise error
        return int(_field_number(entry))

    def clock_mhz(self, index: int, which: Clock) -> int:
        return int(self._device("nvmlDeviceGetClockInfo", index, self._clock_type(which)))

    def clocks_event_reasons(self, index: int) -> int:
        variants = [
            _Variant("ClocksEventReasons", "nvmlDeviceGetCurrentClocksEventReasons"),
            _Variant("ClocksThrottleReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"),
        ]
        return int(self._first_working("clock-event reasons", index, variants)[1])

    def supported_clocks_event_reasons(self, index: int) -> int:
        variants = [
            _Variant("ClocksEventReasons", "nvmlDeviceGetSupportedClocksEventReasons"),
            _Variant("ClocksThrottleReasons", "nvmlDeviceGetSupportedClocksThrottleReasons"),
        ]
        return int(self._first_working("supported clock-event reasons", index, variants)[1])

    def encoder_utilization_percent(self, index: int) -> int:
        percent, _period_us = self._device("nvmlDeviceGetEncoderUtilization", index)
        return int(percent)

    def decoder_utilization_percent(self, index: int) -> int:
        percent, _period_us = self._device("nvmlDeviceGetDecoderUtilization", index)
        return int(percent)

    def field_values(self, index: int, fields: Sequence[tuple[int, int]]) -> list[FieldValue]:
        requests = [(int(field_id), int(scope)) for field_id, scope in fields]
        if not requests:
            return []
        entries = self._device("nvmlDeviceGetFieldValues", index, requests)
        values: list[FieldValue] = []
        for (field_id, scope), entry in zip(requests, entries, strict=True):
            status = int(entry.nvmlReturn)
            where = f"nvmlDeviceGetFieldValues(field {field_id}, scope {scope})"
            if status != NVML_SUCCESS:
                # The call succeeded but this entry failed: keep the entry's own status.
                values.append(FieldValue(field_id, scope, None, _error_for_code(status, where)))
                continue
            try:
                values.append(FieldValue(field_id, scope, float(_field_number(entry))))
            except NvmlError as exc:
                values.append(FieldValue(field_id, scope, None, exc))
        if any(isinstance(value.error, NvmlGpuLost) for value in values):
            self._handles.pop(index, None)
        return values

    def remapped_rows(self, index: int) -> RemappedRows:
        correctable, uncorrectable, pending, failure = self._device(
            "nvmlDeviceGetRemappedRows", index
        )
        return RemappedRows(int(correctable), int(uncorrectable), bool(pending), bool(failure))

    def pcie_link(self, index: int) -> PcieLink:
        return PcieLink(
            generation=int(self._device("nvmlDeviceGetCurrPcieLinkGeneration", index)),
            width=int(self._device("nvmlDeviceGetCurrPcieLinkWidth", index)),
            max_generation=int(self._device("nvmlDeviceGetMaxPcieLinkGeneration", index)),
            max_width=int(self._device("nvmlDeviceGetMaxPcieLinkWidth", index)),
        )

    def pcie_replay_count(self, index: int) -> int:
        return int(self._device("nvmlDeviceGetPcieReplayCounter", index))

    def pcie_throughput_kib_per_s(self, index: int, counter: PcieCounter) -> int:
        constant = getattr(self._session(), _PCIE_COUNTERS[counter])
        return int(self._device("nvmlDeviceGetPcieThroughput", index, constant))

    def nvlink_states(self, index: int) -> list[bool]:
        links = int(getattr(self._session(), "NVML_NVLINK_MAX_LINKS", _DEFAULT_MAX_NVLINKS))
        states: list[bool] = []
        for link in range(links):
            try:
                states.append(bool(self._device("nvmlDeviceGetNvLinkState", index, link)))
            except NvmlNotSupported:
                if link == 0:
                    raise  # no NVLink state at all (PCIe boards, some VMs)
                states.append(False)
            except NvmlError as exc:
                if exc.code != _ERROR_INVALID_ARGUMENT:
                    raise
                break  # past the GPU's last link
        return states

    def gpm_supported(self, index: int) -> bool:
        known = self._gpm_support.get(index)
        if known is not None:
            return known
        try:
            supported = bool(self._device("nvmlGpmQueryDeviceSupport", index).isSupportedDevice)
        except (NvmlNotSupported, NvmlFunctionNotFound):
            supported = False
        self._gpm_support[index] = supported
        return supported

    def gpm_metrics(
        self, index: int, metrics: Sequence[GpmMetric], gpu_instance_id: int | None = None
    ) -> dict[GpmMetric, float]:
        if not self.gpm_supported(index):
            raise NvmlNotSupported(f"GPU {index} has no GPM (Hopper or newer needed)")
        nv = self._session()
        with self._device_lock(index):
            sample = self._call("nvmlGpmSampleAlloc")
            try:
                if gpu_instance_id is None:
                    self._device("nvmlGpmSampleGet", index, sample)
                else:
                    self._device("nvmlGpmMigSampleGet", index, gpu_instance_id, sample)
            except NvmlError:
                self._free_gpm_sample(sample)
                raise
            key = (index, gpu_instance_id)
            previous = self._gpm_samples.get(key)
            self._gpm_samples[key] = sample
            if previous is None:
                raise NvmlNotFound("first GPM sample: the metrics need a second one", code=6)
            try:
                request = nv.c_nvmlGpmMetricsGet_t()
                request.version = nv.NVML_GPM_METRICS_GET_VERSION
                request.numMetrics = len(metrics)
                request.sample1 = previous
                request.sample2 = sample
                for slot, metric in enumerate(metrics):
                    request.metrics[slot].metricId = int(metric)
                result = self._call("nvmlGpmMetricsGet", request)
            finally:
                self._free_gpm_sample(previous)
        values: dict[GpmMetric, float] = {}
        for slot, metric in enumerate(metrics):
            entry = result.metrics[slot]
            if int(entry.nvmlReturn) == NVML_SUCCESS and math.isfinite(float(entry.value)):
                values[metric] = float(entry.value)
        return values

    def default_power_limit_mw(self, index: int) -> int:
        return int(self._device("nvmlDeviceGetPowerManagementDefaultLimit", index))

    def persistence_mode(self, index: int) -> bool:
        return int(self._device("nvmlDeviceGetPersistenceMode", index)) == 1

    def compute_mode(self, index: int) -> int:
        return int(self._device("nvmlDeviceGetComputeMode", index))

    def mig_mode(self, index: int) -> MigMode:
        current, pending = self._device("nvmlDeviceGetMigMode", index)
        return MigMode(current=int(current) == 1, pending=int(pending) == 1)

    def mig_instances(self, index: int) -> list[MigInstance]:
        instances: dict[int, MigInstance] = {}
        with self._device_lock(index):
            slots = int(self._device("nvmlDeviceGetMaxMigDeviceCount", index))
            for slot in range(slots):
                try:
                    mig = self._device("nvmlDeviceGetMigDeviceHandleByIndex", index, slot)
                except NvmlNotFound:
                    continue  # an empty slot
                except NvmlError as exc:
                    if exc.code != _ERROR_INVALID_ARGUMENT:
                        raise
                    continue
                try:
                    instance_id = int(self._call("nvmlDeviceGetGpuInstanceId", mig))
                    if instance_id in instances:
                        continue  # another compute instance of the same GPU instance
                    attributes = self._call("nvmlDeviceGetAttributes", mig)
                except NvmlGpuLost:
                    self._handles.pop(index, None)
                    raise
                instances[instance_id] = MigInstance(
                    gpu_instance_id=instance_id,
                    profile=_mig_profile(attributes),
                    memory=self._mig_memory(mig),
                )
        return sorted(instances.values(), key=lambda instance: instance.gpu_instance_id)

    def vgpu_license_status(self, index: int) -> int:
        features = self._device("nvmlDeviceGetGridLicensableFeatures", index)
        if not int(features.isGridLicenseSupported):
            raise NvmlNotSupported(f"GPU {index} is not a licensable vGPU")
        count = int(features.licensableFeaturesCount)
        licensed = any(
            int(features.gridLicensableFeatures[slot].featureState) == 1 for slot in range(count)
        )
        return 1 if licensed else 0

    # Processes

    def running_processes(self, index: int) -> list[GpuProcess]:
        merged: dict[int, GpuProcess] = {}
        for kind in ("Compute", "Graphics"):
            try:
                entries = self._processes(kind, index)
            except (NvmlNotSupported, NvmlFunctionNotFound):
                if kind == "Compute":
                    raise
                continue  # a compute-only board
            for entry in entries:
                pid = int(entry.pid)
                if pid in merged:
                    continue  # one entry per PID; the compute entry wins
                merged[pid] = GpuProcess(
                    pid=pid,
                    used_memory_bytes=_optional_count(entry.usedGpuMemory, _NOT_AVAILABLE_ULL),
                    kind=kind.lower(),
                    gpu_instance_id=_optional_count(getattr(entry, "gpuInstanceId", None)),
                    compute_instance_id=_optional_count(getattr(entry, "computeInstanceId", None)),
                )
        return list(merged.values())

    def process_utilization(self, index: int, since_us: int) -> list[ProcessUtilization]:
        try:
            samples = self._device("nvmlDeviceGetProcessUtilization", index, since_us)
        except NvmlNotFound:
            return []  # no process ran since then (an idle GPU answers this)
        return [
            ProcessUtilization(
                pid=int(sample.pid),
                sm_percent=int(sample.smUtil),
                memory_percent=int(sample.memUtil),
                timestamp_us=int(sample.timeStamp),
            )
            for sample in samples
        ]

    def _processes(self, kind: str, index: int) -> list[Any]:
        layout = self._process_layout_for_session()
        function = f"nvmlDeviceGet{kind}RunningProcesses"
        if layout == "r535":
            return self._processes_r535(f"{function}_v3", index)
        return list(self._device(f"{function}_{layout}", index))

    def _process_layout_for_session(self) -> str:
        """How to list processes with this driver and binding; probed once per session.

        Drivers of the R535 branch (they have ``nvmlDeviceGetConfComputeMemSizeInfo`` but not
        yet ``nvmlDeviceGetRunningProcessDetailList``) fill the ``…RunningProcesses_v3`` calls
        with a wider entry (an extra confidential-computing memory field) without a version
        bump; older and newer drivers use the v2 layout there. Reading one layout as the other
        scrambles PIDs. nvidia-ml-py's own ``_v3`` uses the layout its ``c_nvmlProcessInfo_v3_t``
        declares, so the binding's choice is checked too.

        Returns:
            ``"r535"`` (the ``_v3`` call read with the wide layout), ``"v3"`` or ``"v2"`` (the
            binding's functions of that suffix).
        """
        with self._lock:
            if self._process_layout is not None:
                return self._process_layout
            nv = self._session()
            if self._driver_has("nvmlDeviceGetComputeRunningProcesses_v3"):
                r535 = self._driver_has(
                    "nvmlDeviceGetConfComputeMemSizeInfo"
                ) and not self._driver_has("nvmlDeviceGetRunningProcessDetailList")
                binding_wide = _has_field(
                    getattr(nv, "c_nvmlProcessInfo_v3_t", None), "usedGpuCcProtectedMemory"
                )
                if r535:
                    layout = "v3" if binding_wide else "r535"
                else:
                    layout = "v2" if binding_wide else "v3"
            elif self._driver_has("nvmlDeviceGetComputeRunningProcesses_v2"):
                layout = "v2"
            else:
                raise NvmlFunctionNotFound(
                    "the driver lists no running processes (no _v2 or _v3 call)",
                    code=_ERROR_FUNCTION_NOT_FOUND,
                )
            if layout != "v3":
                _log.info("NVML running processes: using the %s process layout", layout)
            self._process_layout = layout
            return layout

    def _processes_r535(self, function: str, index: int) -> list[Any]:
        """Call an R535 ``…RunningProcesses_v3`` directly, with the entry layout it writes."""
        nv = self._session()
        entry_type = nv.c_nvmlProcessDetail_v1_t  # same fields, same order as R535's v3 entry
        with self._device_lock(index):
            handle = self._handle(index)
            try:
                fn = nv._nvmlGetFunctionPointer(function)
            except nv.NVMLError as exc:
                raise map_error(exc, function) from exc
            count = ctypes.c_uint(0)
            status = int(fn(handle, ctypes.pointer(count), None))
            if status == NVML_SUCCESS:
                return []
            entries: Any = None
            if status == _ERROR_INSUFFICIENT_SIZE:
                count.value = count.value * 2 + 5  # room for processes starting meanwhile
                entries = (entry_type * count.value)()
                status = int(fn(handle, ctypes.pointer(count), entries))
            if status != NVML_SUCCESS:
                error = _error_for_code(status, function)
                if isinstance(error, NvmlGpuLost):
                    self._handles.pop(index, None)
                raise error
            return [entries[slot] for slot in range(count.value)]

    # Plumbing

    def _forget_session(self) -> None:
        self._handles.clear()
        self._chosen.clear()
        self._process_layout = None
        self._gpm_support.clear()
        self._gpm_samples.clear()

    def _driver_has(self, symbol: str) -> bool:
        """Returns: whether the loaded driver library exports ``symbol``."""
        nv = self._session()
        probe = getattr(nv, "_nvmlGetFunctionPointer", None)
        if probe is None:
            return hasattr(nv, symbol)
        try:
            probe(symbol)
        except nv.NVMLError as exc:
            if getattr(exc, "value", None) == _ERROR_FUNCTION_NOT_FOUND:
                return False
            raise map_error(exc, f"looking up {symbol}") from exc
        return True

    def _mig_memory(self, mig: Any) -> MemoryInfo | None:
        nv = self._session()
        try:
            if hasattr(nv, "nvmlMemory_v2"):
                try:
                    raw = self._call("nvmlDeviceGetMemoryInfo", mig, version=nv.nvmlMemory_v2)
                    return MemoryInfo(
                        int(raw.total), int(raw.used), int(raw.free), int(raw.reserved)
                    )
                except (NvmlFunctionNotFound, NvmlNotSupported):
                    pass
            raw = self._call("nvmlDeviceGetMemoryInfo", mig)
        except (NvmlNotSupported, NvmlFunctionNotFound, NvmlNoPermission):
            return None
        return MemoryInfo(int(raw.total), int(raw.used), int(raw.free), None)

    def _free_gpm_sample(self, sample: Any) -> None:
        try:
            self._call("nvmlGpmSampleFree", sample)
        except NvmlError as exc:
            _log.debug("NVML GPM sample not freed: %s", exc)

    def _free_gpm_samples(self) -> None:
        samples, self._gpm_samples = self._gpm_samples, {}
        for sample in samples.values():
            self._free_gpm_sample(sample)

    def _session(self) -> Any:
        if self._nv is None:
            raise NvmlError("NVML is not initialised (call init() first)", code=1)
        return self._nv

    def _clock_type(self, which: Clock) -> Any:
        return getattr(self._session(), _CLOCK_CONSTANTS[which])

    def _call(self, function: str, *args: Any, **kwargs: Any) -> Any:
        """Call one pynvml function under the lock, mapping its errors to ours."""
        nv = self._session()
        fn: Callable[..., Any] | None = getattr(nv, function, None)
        if fn is None:
            raise NvmlFunctionNotFound(
                f"{function} is not in the installed nvidia-ml-py", code=_ERROR_FUNCTION_NOT_FOUND
            )
        # No lock around the call: NVML is thread-safe, and a call that hangs in the driver
        # must not hold up the other GPUs' workers (the collector's watchdog abandons it).
        try:
            return fn(*args, **kwargs)
        except nv.NVMLError as exc:
            raise map_error(exc, function) from exc
        except UnicodeDecodeError as exc:
            raise NvmlError(f"{function}: the driver returned undecodable text") from exc

    def _handle(self, index: int) -> Any:
        handle = self._handles.get(index)
        if handle is None:
            handle = self._call("nvmlDeviceGetHandleByIndex", index)
            self._handles[index] = handle
        return handle

    def _device(self, function: str, index: int, *args: Any, **kwargs: Any) -> Any:
        """Call a per-device function; a lost GPU drops its handle so a later call re-gets it."""
        try:
            return self._call(function, self._handle(index), *args, **kwargs)
        except NvmlGpuLost:
            self._handles.pop(index, None)
            raise

    def _device_lock(self, index: int) -> threading.RLock:
        """Returns: the lock for multi-call sequences on one GPU (GPM samples, MIG walks)."""
        return self._device_locks.setdefault(index, threading.RLock())

    def _first_working(
        self, purpose: str, index: int, variants: list[_Variant]
    ) -> tuple[_Variant, Any]:
        """Use the remembered variant, or probe ``variants`` in order and remember the first
        that answers. A variant is skipped when the driver or binding lacks it or refuses its
        struct version; any other error is raised without deciding anything."""
        chosen = self._chosen.get((purpose, index))
        if chosen is not None:
            return chosen, self._device(chosen.function, index, *chosen.args, **chosen.kwargs)
        last: NvmlError | None = None
        for variant in variants:
            try:
                result = self._device(variant.function, index, *variant.args, **variant.kwargs)
            except (NvmlFunctionNotFound, NvmlNotSupported) as exc:
                last = exc
                continue
            except NvmlError as exc:
                if exc.code != _ERROR_ARGUMENT_VERSION_MISMATCH:
                    raise
                last = exc
                continue
            self._chosen[(purpose, index)] = variant
            if variant is not variants[0] and purpose not in self._fallbacks_logged:
                self._fallbacks_logged.add(purpose)
                _log.info(
                    "NVML %s: %s is unavailable (%s); using %s",
                    purpose,
                    variants[0].function,
                    last,
                    variant.function,
                )
            return variant, result
        assert last is not None  # variants is never empty
        raise last


def _mig_profile(attributes: Any) -> str:
    """Returns: the MIG profile as DCGM and dcgm-exporter name it: slices, then memory in GB."""
    gigabytes = math.ceil(int(attributes.memorySizeMB) / 1024)
    return f"{int(attributes.gpuInstanceSliceCount)}g.{gigabytes}gb"


def _optional_count(value: Any, not_available: int = 0xFFFFFFFF) -> int | None:
    """Returns: ``value`` as int, or None where NVML has no value (None or its sentinel)."""
    if value is None or int(value) == not_available:
        return None
    return int(value)


def _has_field(struct: Any, name: str) -> bool:
    return any(entry[0] == name for entry in getattr(struct, "_fields_", ()))


def map_error(exc: Any, function: str) -> NvmlError:
    """Returns: our exception for a pynvml ``NVMLError`` raised by ``function``.

    The one mapping from pynvml's errors to ``backend.py``'s; other modules that drive pynvml
    (the XID event thread) use it too.
    """
    code = getattr(exc, "value", None)
    return _error_for_code(code if isinstance(code, int) else None, f"{function}: {_describe(exc)}")


def _error_for_code(code: int | None, message: str) -> NvmlError:
    """Returns: our exception for an ``nvmlReturn_t`` code, ``message`` saying where."""
    cls = _ERROR_CLASSES.get(code, NvmlError) if code is not None else NvmlError
    if cls is NvmlUnavailable:
        reason, hint = _INIT_FAILURES.get(code or 0, ("NVML stopped working", ""))
        return NvmlUnavailable(f"{reason} ({message})", hint=hint, code=code)
    return cls(message, code=code)


def _init_failure(exc: Any) -> NvmlUnavailable:
    """Returns: why ``nvmlInit`` (raising pynvml's ``exc``) failed, with a remediation hint."""
    code = getattr(exc, "value", None)
    code = code if isinstance(code, int) else None
    reason, hint = _INIT_FAILURES.get(
        code or 0, (f"NVML failed to initialise: {_describe(exc)}", "see the driver's logs")
    )
    return NvmlUnavailable(reason, hint=hint, code=code)


def _describe(exc: Any) -> str:
    return str(exc) or type(exc).__name__


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
