"""The real NVML backend, over nvidia-ml-py (``import pynvml``).

Stage: driver -> (this module) -> ``NvmlBackend`` -> ``GpuCollector``. This is the only module
that imports pynvml, and only inside ``init()`` (importing dcmon never loads the driver
library). Every foreign ``pynvml.NVMLError`` is mapped here, once, to the exceptions of
``backend.py``; strings come back decoded; results come back as plain records in NVML's units.

Driver and binding drift is handled by probing, not by version strings: for each device the
first call tries the current API and falls back to the older one when the driver or binding
lacks it (``nvmlDeviceGetCurrentClocksEventReasons`` -> ``…ThrottleReasons``, memory info v2 ->
v1, ``nvmlDeviceGetTemperatureV`` -> ``nvmlDeviceGetTemperature``); the choice is remembered
for the session. The pynvml module can be injected (``PynvmlBackend(module=...)``) so this logic
is tested without a driver and without patching the global module.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agent.collectors.gpu.backend import (
    Clock,
    MemoryInfo,
    NvmlError,
    NvmlFunctionNotFound,
    NvmlGpuLost,
    NvmlNoPermission,
    NvmlNotFound,
    NvmlNotSupported,
    NvmlTimeout,
    NvmlUnavailable,
    Utilization,
)

_log = logging.getLogger(__name__)

# nvmlReturn_t values from nvml.h; part of NVML's ABI, identical in every binding.
NVML_SUCCESS = 0
_ERROR_UNINITIALIZED = 1
_ERROR_NOT_SUPPORTED = 3
_ERROR_NO_PERMISSION = 4
_ERROR_NOT_FOUND = 6
_ERROR_DRIVER_NOT_LOADED = 9
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
    """``NvmlBackend`` over the real driver. Thread-safe: one lock serialises NVML use.

    Args:
        module: a pynvml-compatible module object to use instead of importing ``pynvml``
            (tests pass a small fake; production leaves it None).
    """

    def __init__(self, module: Any = None) -> None:
        self._module = module
        self._nv: Any = None
        self._lock = threading.RLock()
        self._handles: dict[int, Any] = {}
        self._chosen: dict[tuple[str, int], _Variant] = {}
        self._fallbacks_logged: set[str] = set()

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
            self._handles.clear()
            self._chosen.clear()

    def shutdown(self) -> None:
        with self._lock:
            nv, self._nv = self._nv, None
            self._handles.clear()
            self._chosen.clear()
            if nv is None:
                return
            try:
                nv.nvmlShutdown()
            except nv.NVMLError as exc:
                raise _mapped(exc, "nvmlShutdown") from exc

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
                with self._lock:
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

    # Plumbing

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
        with self._lock:
            try:
                return fn(*args, **kwargs)
            except nv.NVMLError as exc:
                raise _mapped(exc, function) from exc
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
        with self._lock:
            try:
                return self._call(function, self._handle(index), *args, **kwargs)
            except NvmlGpuLost:
                self._handles.pop(index, None)
                raise

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


def _mapped(exc: Any, function: str) -> NvmlError:
    """Returns: our exception for a pynvml ``NVMLError`` raised by ``function``."""
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
    """Returns: why ``nvmlInit`` failed, with a remediation hint."""
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
