"""A small stand-in for the ``pynvml`` module's event API, injected into ``NvmlEventSource``.

Each GPU can fail any call with an NVML error code; ``nvmlEventSetWait`` plays a script of
event records and error codes, then times out (after a short real sleep, as the driver would
block) until the test stops the source.
"""

from __future__ import annotations

import threading
import time
import types
from dataclasses import dataclass, field
from typing import Any

XID_CRITICAL = 0x8
RECOVERY_ACTION = 0x8000

SUCCESS_TIMEOUT = 10
NOT_SUPPORTED = 3
FUNCTION_NOT_FOUND = 13
GPU_IS_LOST = 15
DRIVER_NOT_LOADED = 9
UNKNOWN = 999


class FakeNVMLError(Exception):
    """Like pynvml's ``NVMLError``: carries the ``nvmlReturn_t`` in ``value``."""

    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


@dataclass(frozen=True)
class FakeHandle:
    index: int


@dataclass
class FakeGpu:
    bus_id: bytes
    supported: int = XID_CRITICAL | RECOVERY_ACTION
    errors: dict[str, int] = field(default_factory=dict)  # function name -> error code


@dataclass
class FakeEventApi:
    """The fake's state: GPUs, the wait script, and what the source did to it."""

    gpus: list[FakeGpu]
    script: list[Any] = field(default_factory=list)  # event records or error codes
    init_error: int | None = None
    register_errors: list[int] = field(default_factory=list)  # raised by successive calls
    with_recovery_type: bool = True
    registered: dict[int, int] = field(default_factory=dict)  # index -> mask
    calls: list[str] = field(default_factory=list)
    waits: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def event(self, index: int | None, event_type: int, data: int, **extra: int) -> Any:
        device = FakeHandle(index) if index is not None else None
        return types.SimpleNamespace(device=device, eventType=event_type, eventData=data, **extra)

    def module(self) -> types.SimpleNamespace:
        """Returns: the module object to inject."""
        api = self

        def check(name: str, handle: FakeHandle | None = None) -> None:
            api.calls.append(name)
            if handle is not None and name in api.gpus[handle.index].errors:
                raise FakeNVMLError(api.gpus[handle.index].errors[name])

        def nvmlInit() -> None:
            api.calls.append("nvmlInit")
            if api.init_error is not None:
                raise FakeNVMLError(api.init_error)

        def nvmlShutdown() -> None:
            api.calls.append("nvmlShutdown")

        def nvmlDeviceGetCount() -> int:
            return len(api.gpus)

        def nvmlDeviceGetHandleByIndex(index: int) -> FakeHandle:
            check("nvmlDeviceGetHandleByIndex", FakeHandle(index))
            return FakeHandle(index)

        def nvmlDeviceGetPciInfo(handle: FakeHandle) -> Any:
            check("nvmlDeviceGetPciInfo", handle)
            return types.SimpleNamespace(busId=api.gpus[handle.index].bus_id)

        def nvmlDeviceGetSupportedEventTypes(handle: FakeHandle) -> int:
            check("nvmlDeviceGetSupportedEventTypes", handle)
            return api.gpus[handle.index].supported

        def nvmlEventSetCreate() -> str:
            api.calls.append("nvmlEventSetCreate")
            return "event-set"

        def nvmlEventSetFree(event_set: str) -> None:
            api.calls.append("nvmlEventSetFree")

        def nvmlDeviceRegisterEvents(handle: FakeHandle, mask: int, event_set: str) -> None:
            check("nvmlDeviceRegisterEvents", handle)
            if api.register_errors:
                raise FakeNVMLError(api.register_errors.pop(0))
            api.registered[handle.index] = mask

        def nvmlEventSetWait(event_set: str, timeout_ms: int) -> Any:
            with api.lock:
                api.waits += 1
                step = api.script.pop(0) if api.script else SUCCESS_TIMEOUT
            if isinstance(step, int):
                if step == SUCCESS_TIMEOUT:
                    time.sleep(min(timeout_ms, 20) / 1000)
                raise FakeNVMLError(step)
            return step

        names = {name: value for name, value in locals().items() if name.startswith("nvml")}
        module = types.SimpleNamespace(
            NVMLError=FakeNVMLError, nvmlEventTypeXidCriticalError=XID_CRITICAL, **names
        )
        if api.with_recovery_type:
            module.nvmlEventTypeGpuRecoveryAction = RECOVERY_ACTION
        return module


def two_gpus(**kwargs: Any) -> FakeEventApi:
    return FakeEventApi([FakeGpu(b"00000000:18:00.0"), FakeGpu(b"00000000:2A:00.0")], **kwargs)
