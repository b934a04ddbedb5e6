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
from then on. ``init`` is a step too (script ``NvmlUnavailable`` for "no driver"), and
``fail_device`` makes every call of one device raise until cleared (a GPU falling off the bus).
Every call is counted per device, so tests can assert what was, and was not, asked.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeAlias, TypeVar, cast

from agent.collectors.gpu.backend import Clock, MemoryInfo, NvmlError, Utilization

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


def sequence(*steps: object) -> Callable[[int], object]:
    """Returns: a step that plays ``steps`` in order, one per call, repeating the last one."""
    if not steps:
        raise ValueError("sequence() needs at least one step")

    def play(count: int) -> object:
        return steps[min(count, len(steps)) - 1]

    return play


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

    def _step(self, index: int | None, call: str, step: Step[_T]) -> _T:
        self.calls[(index, call)] += 1
        if self._before_call is not None:
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
