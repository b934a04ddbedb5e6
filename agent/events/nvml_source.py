"""The NVML XID source: a thread that waits on NVML's event set and queues what it reports.

Stage: driver -> (this thread) -> queue -> ``poll`` -> ``EventsCollector``. NVML reports critical
XIDs (and, on new drivers, changes of the GPU recovery action) through an event set; waiting on
it blocks for up to ``wait_timeout_ms``, so it runs on its own thread and the tick only drains
the queue. The thread opens its own NVML session (NVML counts ``nvmlInit`` calls, so this is
independent of the GPU collector's), registers every GPU, and waits until ``stop``.

The pynvml module comes from ``agent.collectors.gpu.nvml.load_pynvml`` (the one importer) or is
injected, so tests pass a fake module object. Foreign ``NVMLError``s are mapped to the NVML
seam's exceptions by the NVML boundary's own mapping (``agent.collectors.gpu.nvml.map_error``).

Failure policy: no binding, no driver, or no event API -> one WARNING, source off (the kmsg
source carries on). A GPU that cannot be registered (lost, not supported) is skipped with one
line. Waits that fail ``max_consecutive_errors`` times in a row stop the thread with one
WARNING instead of spinning. A full queue drops its oldest observation and counts it.
"""

from __future__ import annotations

import ctypes
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any

from agent.collectors.gpu.backend import (
    NvmlError,
    NvmlFunctionNotFound,
    NvmlGpuLost,
    NvmlNotSupported,
    NvmlTimeout,
    NvmlUnavailable,
)
from agent.collectors.gpu.nvml import load_pynvml, map_error
from agent.events.model import XidObservation, normalise_bus_id
from agent.wire.schema import MAX_GPUS_PER_NODE

_log = logging.getLogger(__name__)

RECOVERY_ACTION_XID = 154  # the XID the driver logs when the recovery action changes

# nvmlReturn_t values (nvml.h ABI).
_NO_INSTANCE = 0xFFFFFFFF  # gpuInstanceId / computeInstanceId when not on a MIG instance
_REQUIRED = (
    "NVMLError",
    "nvmlInit",
    "nvmlShutdown",
    "nvmlDeviceGetCount",
    "nvmlDeviceGetHandleByIndex",
    "nvmlEventSetCreate",
    "nvmlDeviceRegisterEvents",
    "nvmlEventSetWait",
    "nvmlEventTypeXidCriticalError",
)


class NvmlEventSource:
    """XID source over NVML events, read on a background thread.

    Args:
        module: a pynvml-compatible module object (tests); None loads nvidia-ml-py.
        wall: the wall clock stamped on events, in Unix seconds.
        wait_timeout_ms: how long one ``nvmlEventSetWait`` may block (bounds ``stop``).
        max_consecutive_errors: failed waits in a row after which the thread gives up.
        error_pause_seconds: pause after a failed wait, so a broken driver is not hammered.
        max_queued: observations held between polls; the oldest are dropped beyond this.
        quiet_when_absent: log "no binding / no driver" at INFO rather than WARNING (for the
            ``auto`` GPU backend, which is quiet on hosts without NVIDIA GPUs).
    """

    name = "nvml"

    def __init__(
        self,
        module: Any = None,
        *,
        wall: Callable[[], float] = time.time,
        wait_timeout_ms: int = 1000,
        max_consecutive_errors: int = 1000,
        error_pause_seconds: float = 0.01,
        max_queued: int = 1000,
        quiet_when_absent: bool = False,
    ) -> None:
        self._module = module
        self._wall = wall
        self._timeout_ms = wait_timeout_ms
        self._max_errors = max_consecutive_errors
        self._error_pause = error_pause_seconds
        self._queue: deque[XidObservation] = deque()
        self._max_queued = max_queued
        self._quiet = quiet_when_absent
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._dropped = 0
        self._registered: dict[Hashable, tuple[int, str | None]] = {}
        self._ready = threading.Event()  # set once registration finished (or failed)

    @property
    def active(self) -> bool:
        """Whether the thread is running (False before ``start``, after ``stop`` or failure)."""
        return self._thread is not None and self._thread.is_alive()

    @property
    def dropped(self) -> int:
        """Observations dropped because the queue was full."""
        with self._lock:
            return self._dropped

    @property
    def registered_gpus(self) -> list[int]:
        """NVML indices of the GPUs registered for events (after ``wait_ready``)."""
        return sorted(index for index, _ in self._registered.values())

    def start(self) -> None:
        """Start the thread (once; later calls do nothing)."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._main, name="dcmon-xid-events", daemon=True)
        self._thread.start()

    def wait_ready(self, timeout: float) -> bool:
        """Returns: whether registration finished (successfully or not) within ``timeout`` s."""
        return self._ready.wait(timeout)

    def poll(self, now: float) -> list[XidObservation]:
        """Returns: the observations queued since the last poll, oldest first."""
        with self._lock:
            observations = list(self._queue)
            self._queue.clear()
        return observations

    def stop(self, timeout: float = 1.5) -> None:
        """Ask the thread to end and wait up to ``timeout`` seconds for it."""
        self._stop.set()
        thread = self._thread
        if thread is None or thread is threading.current_thread():
            return
        thread.join(timeout)
        if thread.is_alive():
            _log.warning("XID event thread did not stop within %g s (NVML call hung?)", timeout)

    def close(self) -> None:
        """Same as ``stop()``: the source's end of life."""
        self.stop()

    # The thread

    def _main(self) -> None:
        try:
            self._run()
        except Exception:  # noqa: BLE001 (the thread's last resort: log, source off)
            _log.exception("XID events from NVML off: the event thread failed")
        finally:
            self._ready.set()

    def _run(self) -> None:
        try:
            nv = self._module if self._module is not None else load_pynvml()
        except NvmlUnavailable as exc:
            self._off(str(exc), absent=True)
            return
        missing = [name for name in _REQUIRED if not hasattr(nv, name)]
        if missing:
            self._off(f"the pynvml module lacks {', '.join(missing)}")
            return
        try:
            nv.nvmlInit()
        except nv.NVMLError as exc:
            # The GPU collector explains a missing driver; this line only says the source is off.
            self._off(f"NVML failed to start: {map_error(exc, 'nvmlInit')}", absent=True)
            return
        try:
            event_set = self._register(nv)
            self._ready.set()
            if event_set is not None:
                try:
                    self._wait_loop(nv, event_set)
                finally:
                    self._quietly(nv, "nvmlEventSetFree", event_set)
        finally:
            self._quietly(nv, "nvmlShutdown")

    def _register(self, nv: Any) -> Any:
        """Register every GPU for XID (and recovery-action) events.

        Returns: the event set, or None when no GPU could be registered (source off).
        """
        xid_type = int(nv.nvmlEventTypeXidCriticalError)
        recovery_type = int(getattr(nv, "nvmlEventTypeGpuRecoveryAction", 0))
        try:
            count = min(int(nv.nvmlDeviceGetCount()), MAX_GPUS_PER_NODE)
            event_set = nv.nvmlEventSetCreate()
        except nv.NVMLError as exc:
            self._off(f"cannot create an NVML event set: {map_error(exc, 'nvmlEventSetCreate')}")
            return None
        for index in range(count):
            try:
                self._register_gpu(nv, event_set, index, xid_type, recovery_type)
            except NvmlFunctionNotFound as exc:
                self._quietly(nv, "nvmlEventSetFree", event_set)
                self._off(f"the driver has no event API ({exc})")
                return None
            except NvmlUnavailable as exc:
                self._quietly(nv, "nvmlEventSetFree", event_set)
                self._off(str(exc))
                return None
            except NvmlError as exc:
                _log.warning("GPU %d: not registered for XID events: %s", index, exc)
        if not self._registered:
            self._quietly(nv, "nvmlEventSetFree", event_set)
            self._off("no GPU could be registered for events")
            return None
        _log.info("XID events from NVML: %d GPU(s) registered", len(self._registered))
        return event_set

    def _register_gpu(
        self, nv: Any, event_set: Any, index: int, xid_type: int, recovery_type: int
    ) -> None:
        """Register one GPU. Raises: ``NvmlError`` (mapped) when it cannot be registered."""
        try:
            handle = nv.nvmlDeviceGetHandleByIndex(index)
        except nv.NVMLError as exc:
            raise map_error(exc, "nvmlDeviceGetHandleByIndex") from exc
        bus = self._bus_id(nv, handle)
        wanted = xid_type | recovery_type
        supported = self._supported_types(nv, handle)
        if supported is not None:
            wanted &= supported
            if not wanted & xid_type:
                raise NvmlNotSupported("the GPU does not report XID events")
        try:
            nv.nvmlDeviceRegisterEvents(handle, wanted, event_set)
        except nv.NVMLError as exc:
            error = map_error(exc, "nvmlDeviceRegisterEvents")
            if not isinstance(error, NvmlNotSupported) or wanted == xid_type:
                raise error from exc
            try:  # an older driver that knows XIDs but not recovery actions
                nv.nvmlDeviceRegisterEvents(handle, xid_type, event_set)
            except nv.NVMLError as retry:
                raise map_error(retry, "nvmlDeviceRegisterEvents") from retry
        self._registered[_handle_key(handle)] = (index, bus)

    def _bus_id(self, nv: Any, handle: Any) -> str | None:
        try:
            raw = nv.nvmlDeviceGetPciInfo(handle).busId
        except (nv.NVMLError, AttributeError) as exc:
            _log.debug("PCI bus id unreadable for XID events: %s", exc)
            return None
        text = raw.decode("ascii", errors="replace") if isinstance(raw, bytes) else str(raw)
        return normalise_bus_id(text)

    def _supported_types(self, nv: Any, handle: Any) -> int | None:
        """Returns: the event types the GPU supports, or None when the binding cannot say."""
        if not hasattr(nv, "nvmlDeviceGetSupportedEventTypes"):
            return None
        try:
            return int(nv.nvmlDeviceGetSupportedEventTypes(handle))
        except nv.NVMLError as exc:
            error = map_error(exc, "nvmlDeviceGetSupportedEventTypes")
            if isinstance(error, NvmlGpuLost | NvmlUnavailable):
                raise error from exc
            return None

    def _wait_loop(self, nv: Any, event_set: Any) -> None:
        xid_type = int(nv.nvmlEventTypeXidCriticalError)
        recovery_type = int(getattr(nv, "nvmlEventTypeGpuRecoveryAction", 0))
        errors = 0
        while not self._stop.is_set():
            try:
                data = nv.nvmlEventSetWait(event_set, self._timeout_ms)
            except nv.NVMLError as exc:
                error = map_error(exc, "nvmlEventSetWait")
                if isinstance(error, NvmlTimeout):
                    errors = 0
                    continue
                errors += 1
                if errors == 1:
                    _log.debug("NVML event wait failed: %s", error)
                if errors >= self._max_errors:
                    _log.warning(
                        "XID events from NVML off: %d waits in a row failed (last: %s)",
                        errors,
                        error,
                    )
                    return
                self._stop.wait(self._error_pause)
                continue
            errors = 0
            observation = self._observation(nv, data, xid_type, recovery_type)
            if observation is not None:
                self._enqueue(observation)

    def _observation(
        self, nv: Any, data: Any, xid_type: int, recovery_type: int
    ) -> XidObservation | None:
        event_type = int(data.eventType)
        value = int(data.eventData)
        index, bus = self._gpu_of(nv, data.device)
        where = _instance_note(data)
        if event_type & xid_type:
            return XidObservation(
                source="nvml",
                time=self._wall(),
                code=value,
                pci_bus_id=bus,
                gpu_index=index,
                message=f"NVML critical XID event: Xid {value}{where}",
            )
        if recovery_type and event_type & recovery_type:
            return XidObservation(
                source="nvml",
                time=self._wall(),
                code=RECOVERY_ACTION_XID,
                pci_bus_id=bus,
                gpu_index=index,
                message=f"NVML GPU recovery action event: action {value}{where}",
                recovery_action=value,
            )
        _log.debug("ignored NVML event of type 0x%x", event_type)
        return None

    def _gpu_of(self, nv: Any, handle: Any) -> tuple[int | None, str | None]:
        """Returns: NVML index and bus id of the device an event names (None, None if unknown)."""
        known = self._registered.get(_handle_key(handle))
        if known is not None:
            return known
        if handle is None or not hasattr(nv, "nvmlDeviceGetIndex"):
            return None, None
        try:
            index = int(nv.nvmlDeviceGetIndex(handle))
        except nv.NVMLError as exc:
            _log.debug("NVML event for an unknown device: %s", exc)
            return None, None
        buses = [bus for known_index, bus in self._registered.values() if known_index == index]
        return index, buses[0] if buses else None

    def _enqueue(self, observation: XidObservation) -> None:
        with self._lock:
            if len(self._queue) >= self._max_queued:
                self._queue.popleft()
                self._dropped += 1
                if self._dropped == 1:
                    _log.warning(
                        "XID event queue full (%d): dropping the oldest; is the agent ticking?",
                        self._max_queued,
                    )
            self._queue.append(observation)

    def _off(self, reason: str, *, absent: bool = False) -> None:
        level = logging.INFO if absent and self._quiet else logging.WARNING
        _log.log(level, "XID events from NVML off: %s", reason)

    @staticmethod
    def _quietly(nv: Any, function: str, *args: Any) -> None:
        try:
            getattr(nv, function)(*args)
        except (nv.NVMLError, AttributeError) as exc:
            _log.debug("%s failed: %s", function, exc)


def _handle_key(handle: Any) -> Hashable:
    """Returns: a key equal for two handles of the same device (ctypes pointers compare by
    identity, so the pointer value is used; other objects, e.g. a fake's, are their own key)."""
    try:
        return ctypes.cast(handle, ctypes.c_void_p).value
    except (TypeError, ctypes.ArgumentError):
        return handle if isinstance(handle, Hashable) else id(handle)


def _instance_note(data: Any) -> str:
    """Returns: " (GPU instance N, compute instance M)" for an event on a MIG instance."""
    gpu_instance = getattr(data, "gpuInstanceId", _NO_INSTANCE)
    compute_instance = getattr(data, "computeInstanceId", _NO_INSTANCE)
    if not isinstance(gpu_instance, int) or gpu_instance == _NO_INSTANCE:
        return ""
    if isinstance(compute_instance, int) and compute_instance != _NO_INSTANCE:
        return f" (GPU instance {gpu_instance}, compute instance {compute_instance})"
    return f" (GPU instance {gpu_instance})"
