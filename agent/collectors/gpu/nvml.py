"""The NVML boundary: loading nvidia-ml-py (``import pynvml``), the session, one call function.

Stage: driver -> (this module) -> ``nvml_backend.PynvmlBackend`` (with ``nvml_processes`` and
``nvml_gpm``) -> ``NvmlBackend`` -> ``GpuCollector``. Input: the pynvml module, imported here
or injected (``NvmlSession(module=...)``) so the logic above it is tested without a driver and
without patching the global module. Output: what pynvml's functions return, raw; every foreign
``pynvml.NVMLError`` mapped, once, to the exceptions of ``backend.py``.

This is the only module that imports pynvml, and only inside ``load_pynvml()`` (importing dcmon
never loads the driver library); the modules above it receive the module object and every call
from an ``NvmlSession``. The session caches device handles (a lost GPU drops its handle), and
``first_working`` probes API variants for driver and binding drift, remembering per device the
first one that answers. What other parts learn or hold during a session (``SessionState``) is
dropped when it ends.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from agent.collectors.gpu.backend import (
    NvmlError,
    NvmlFunctionNotFound,
    NvmlGpuLost,
    NvmlNoPermission,
    NvmlNotFound,
    NvmlNotSupported,
    NvmlTimeout,
    NvmlUnavailable,
)

_log = logging.getLogger(__name__)

# nvmlReturn_t values from nvml.h; part of NVML's ABI, identical in every binding.
NVML_SUCCESS = 0
_ERROR_UNINITIALIZED = 1
ERROR_INVALID_ARGUMENT = 2
_ERROR_NOT_SUPPORTED = 3
_ERROR_NO_PERMISSION = 4
_ERROR_NOT_FOUND = 6
_ERROR_DRIVER_NOT_LOADED = 9
ERROR_INSUFFICIENT_SIZE = 7
_ERROR_TIMEOUT = 10
_ERROR_LIBRARY_NOT_FOUND = 12
ERROR_FUNCTION_NOT_FOUND = 13
_ERROR_GPU_IS_LOST = 15
_ERROR_RESET_REQUIRED = 16
_ERROR_LIB_RM_VERSION_MISMATCH = 18
_ERROR_ARGUMENT_VERSION_MISMATCH = 25

_ERROR_CLASSES: dict[int, type[NvmlError]] = {
    _ERROR_NOT_SUPPORTED: NvmlNotSupported,
    _ERROR_NO_PERMISSION: NvmlNoPermission,
    _ERROR_NOT_FOUND: NvmlNotFound,
    _ERROR_TIMEOUT: NvmlTimeout,
    ERROR_FUNCTION_NOT_FOUND: NvmlFunctionNotFound,
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
class Variant:
    """One way to make a call: the pynvml function, its extra arguments, and a label."""

    label: str
    function: str
    args: tuple[Any, ...] = ()
    kwargs: dict[str, Any] = field(default_factory=dict)


class SessionState(Protocol):
    """What a part of the backend learns or holds during one NVML session."""

    def release(self) -> None:
        """Free what is held in the driver; called while the session is still up."""
        ...

    def forget(self) -> None:
        """Drop what was learned; called when a session starts and after it ends."""
        ...


class NvmlSession:
    """One NVML session over the pynvml module. Thread-safe; calls run unlocked.

    Args:
        module: a pynvml-compatible module object to use instead of importing ``pynvml``
            (tests pass a small fake; production leaves it None).
    """

    def __init__(self, module: Any = None) -> None:
        self._module = module
        self._nv: Any = None
        self.lock = threading.RLock()  # session start/stop and one-time probes
        self._device_locks: dict[int, threading.RLock] = {}
        self._handles: dict[int, Any] = {}
        self._chosen: dict[tuple[str, int], Variant] = {}
        self._fallbacks_logged: set[str] = set()
        self._states: list[SessionState] = []

    def keep(self, state: SessionState) -> None:
        """Have ``state`` released and forgotten with each session."""
        self._states.append(state)

    def init(self) -> None:
        """Start the session (``nvmlInit``); a no-op while one is running.

        Raises:
            NvmlUnavailable: no binding, not nvidia-ml-py, or NVML cannot start (and why).
        """
        with self.lock:
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
        """End the session (``nvmlShutdown``); a no-op when none is running."""
        with self.lock:
            if self._nv is not None:
                for state in self._states:
                    state.release()
            nv, self._nv = self._nv, None
            self._forget_session()
            if nv is None:
                return
            try:
                nv.nvmlShutdown()
            except nv.NVMLError as exc:
                raise map_error(exc, "nvmlShutdown") from exc

    def module(self) -> Any:
        """Returns: the pynvml module of the running session (its constants and structs).

        Raises:
            NvmlError: no session is running.
        """
        if self._nv is None:
            raise NvmlError("NVML is not initialised (call init() first)", code=1)
        return self._nv

    def call(self, function: str, *args: Any, **kwargs: Any) -> Any:
        """Call one pynvml function, mapping its errors to ours."""
        nv = self.module()
        fn: Callable[..., Any] | None = getattr(nv, function, None)
        if fn is None:
            raise NvmlFunctionNotFound(
                f"{function} is not in the installed nvidia-ml-py", code=ERROR_FUNCTION_NOT_FOUND
            )
        # No lock around the call: NVML is thread-safe, and a call that hangs in the driver
        # must not hold up the other GPUs' workers (the collector's watchdog abandons it).
        try:
            return fn(*args, **kwargs)
        except nv.NVMLError as exc:
            raise map_error(exc, function) from exc
        except UnicodeDecodeError as exc:
            raise NvmlError(f"{function}: the driver returned undecodable text") from exc

    def handle(self, index: int) -> Any:
        """Returns: the device handle of GPU ``index``, fetched once per session."""
        handle = self._handles.get(index)
        if handle is None:
            handle = self.call("nvmlDeviceGetHandleByIndex", index)
            self._handles[index] = handle
        return handle

    def forget_handle(self, index: int) -> None:
        """Drop a lost GPU's handle so that a later call gets it again."""
        self._handles.pop(index, None)

    def device(self, function: str, index: int, *args: Any, **kwargs: Any) -> Any:
        """Call a per-device function; a lost GPU drops its handle so a later call re-gets it."""
        try:
            return self.call(function, self.handle(index), *args, **kwargs)
        except NvmlGpuLost:
            self.forget_handle(index)
            raise

    def device_lock(self, index: int) -> threading.RLock:
        """Returns: the lock for multi-call sequences on one GPU (GPM samples, MIG walks)."""
        return self._device_locks.setdefault(index, threading.RLock())

    def driver_has(self, symbol: str) -> bool:
        """Returns: whether the loaded driver library exports ``symbol``."""
        nv = self.module()
        probe = getattr(nv, "_nvmlGetFunctionPointer", None)
        if probe is None:
            return hasattr(nv, symbol)
        try:
            probe(symbol)
        except nv.NVMLError as exc:
            if getattr(exc, "value", None) == ERROR_FUNCTION_NOT_FOUND:
                return False
            raise map_error(exc, f"looking up {symbol}") from exc
        return True

    def function_pointer(self, function: str) -> Any:
        """Returns: the driver's C function ``function`` (ctypes), for a call the binding
        cannot make right; it returns an ``nvmlReturn_t`` (see ``error_for_code``)."""
        nv = self.module()
        try:
            return nv._nvmlGetFunctionPointer(function)
        except nv.NVMLError as exc:
            raise map_error(exc, function) from exc

    def first_working(
        self, purpose: str, index: int, variants: list[Variant]
    ) -> tuple[Variant, Any]:
        """Use the remembered variant, or probe ``variants`` in order and remember the first
        that answers. A variant is skipped when the driver or binding lacks it or refuses its
        struct version; any other error is raised without deciding anything."""
        chosen = self._chosen.get((purpose, index))
        if chosen is not None:
            return chosen, self.device(chosen.function, index, *chosen.args, **chosen.kwargs)
        last: NvmlError | None = None
        for variant in variants:
            try:
                result = self.device(variant.function, index, *variant.args, **variant.kwargs)
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

    def _forget_session(self) -> None:
        self._handles.clear()
        self._chosen.clear()
        for state in self._states:
            state.forget()


def map_error(exc: Any, function: str) -> NvmlError:
    """Returns: our exception for a pynvml ``NVMLError`` raised by ``function``.

    The one mapping from pynvml's errors to ``backend.py``'s; other modules that drive pynvml
    (the XID event thread) use it too.
    """
    code = getattr(exc, "value", None)
    return error_for_code(code if isinstance(code, int) else None, f"{function}: {_describe(exc)}")


def error_for_code(code: int | None, message: str) -> NvmlError:
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
