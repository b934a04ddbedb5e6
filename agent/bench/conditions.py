"""What the GPUs did while the benchmark ran: NVML sampled on its own thread, per test.

Stage: job (while the worker runs). Input: the NVML seam and the benchmarked GPUs. Every
``interval_s`` (0.5 s) the thread reads each GPU's SM clock (MHz), board power (W), temperature
(C) and clock-event reasons. The job opens a window on a GPU when a test starts on it
(``begin``) and closes it when the result arrives (``end``), which summarises the window's
samples as ``Conditions`` (min, median, max; the reasons seen). A window keeps at most
``MAX_KEPT`` evenly spaced samples (older ones are thinned by half when it fills), so a
week-long burn costs no more memory than a minute's; min and max stay exact.

``throttle_findings`` judges the reasons each GPU showed over the whole run:

- HW_SLOWDOWN, HW_THERMAL_SLOWDOWN, HW_POWER_BRAKE_SLOWDOWN fail: the board's hardware held the
  clocks down (overtemperature, a power brake asserted by the chassis, a failing supply). The
  figures are then not the GPU's, and a healthy GPU in a healthy chassis never shows them.
- SW_THERMAL_SLOWDOWN warns: the driver held the clocks to stay under its thermal limit, so
  the cooling is marginal (airflow, fans, inlet temperature) though nothing is broken.
- SW_POWER_CAP is no finding: a GPU under a sustained full load is expected to run at its
  power cap (that is how it boosts); a cap set below the default is already the pre-check's
  ``power_limit`` warning.

No failure of the thread is silent: a reading that fails is counted (``read_errors``), anything
else is logged and counted (``errors``) and sampling goes on.
"""

from __future__ import annotations

import logging
import statistics
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from agent.bench.checks import Finding
from agent.bench.result import Conditions
from agent.collectors.gpu.backend import Clock, ClocksEventReason, NvmlBackend, NvmlError

_log = logging.getLogger(__name__)

INTERVAL_S = 0.5
MAX_KEPT = 4096
HARDWARE = ("HW_SLOWDOWN", "HW_THERMAL_SLOWDOWN", "HW_POWER_BRAKE_SLOWDOWN")
SOFTWARE_THERMAL = "SW_THERMAL_SLOWDOWN"


def reason_names(mask: int) -> list[str]:
    """Returns: NVML's names of the clock-event reasons set in ``mask``."""
    return [r.name for r in ClocksEventReason if r.name and mask & r]


@dataclass
class _Series:
    """Samples of one reading: exact min and max, a thinned list for the median."""

    low: float = float("inf")
    high: float = float("-inf")
    kept: list[float] = field(default_factory=list)
    stride: int = 1
    seen: int = 0

    def add(self, value: float) -> None:
        self.low, self.high = min(self.low, value), max(self.high, value)
        if self.seen % self.stride == 0:
            self.kept.append(value)
            if len(self.kept) >= MAX_KEPT:
                self.kept = self.kept[::2]
                self.stride *= 2
        self.seen += 1

    def spread(self) -> tuple[float, float, float] | tuple[()]:
        if not self.kept:
            return ()
        return (self.low, float(statistics.median(self.kept)), self.high)


@dataclass
class _Window:
    samples: int = 0
    clock: _Series = field(default_factory=_Series)
    power: _Series = field(default_factory=_Series)
    temperature: _Series = field(default_factory=_Series)
    reasons: dict[str, None] = field(default_factory=dict)  # ordered set

    def conditions(self) -> Conditions:
        return Conditions(
            self.samples, self.clock.spread(), self.power.spread(), self.temperature.spread(),
            tuple(self.reasons),
        )  # fmt: skip


class Sampler:
    """Samples ``devices`` through ``nvml`` every ``interval_s`` seconds on its own thread."""

    def __init__(
        self,
        nvml: NvmlBackend,
        devices: Sequence[int],
        *,
        interval_s: float = INTERVAL_S,
    ) -> None:
        self._nvml = nvml
        self._devices = tuple(devices)
        self._interval_s = interval_s
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._windows: dict[int, _Window] = {}
        self._seen: dict[int, dict[str, int]] = {d: {} for d in self._devices}
        self._samples: dict[int, int] = dict.fromkeys(self._devices, 0)
        self._thread: threading.Thread | None = None
        self.errors = 0
        self.read_errors = 0

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._main, name="dcmon-bench-sampler")
            self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                _log.warning("the NVML sampler did not stop within %g s (a call hung?)",
                             timeout_s)  # fmt: skip

    def begin(self, device: int) -> None:
        """A test starts on ``device``: its samples from now on are that test's."""
        with self._lock:
            self._windows[device] = _Window()

    def end(self, device: int) -> Conditions | None:
        """Returns: the conditions of the test that ran on ``device`` (None: not sampled)."""
        with self._lock:
            window = self._windows.pop(device, None)
        return None if window is None or device not in self._seen else window.conditions()

    def seen(self, device: int) -> tuple[int, Mapping[str, int]]:
        """Returns: the samples of ``device`` over the run, and how many showed each reason."""
        with self._lock:
            return self._samples.get(device, 0), dict(self._seen.get(device, {}))

    def sample(self) -> None:
        """Read every device once (the thread's step; tests call it directly)."""
        nvml = self._nvml
        for device in self._devices:
            clock = self._read(lambda d: float(nvml.clock_mhz(d, Clock.SM)), device)
            power = self._read(lambda d: nvml.power_usage_mw(d) / 1000, device)
            temperature = self._read(lambda d: float(nvml.temperature_c(d)), device)
            mask = self._read(lambda d: float(nvml.clocks_event_reasons(d)), device)
            names = [] if mask is None else reason_names(int(mask))
            with self._lock:
                self._samples[device] += 1
                for name in names:
                    self._seen[device][name] = self._seen[device].get(name, 0) + 1
                window = self._windows.get(device)
                if window is None:
                    continue
                window.samples += 1
                for series, value in ((window.clock, clock), (window.power, power),
                                      (window.temperature, temperature)):  # fmt: skip
                    if value is not None:
                        series.add(value)
                window.reasons.update(dict.fromkeys(names))

    def _read(self, call: Callable[[int], float], device: int) -> float | None:
        try:
            return call(device)
        except NvmlError as exc:
            if self.read_errors == 0:
                _log.info("an NVML reading failed while sampling (counted from now): %s", exc)
            self.read_errors += 1
            return None

    def _main(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except Exception:  # noqa: BLE001 (the sampler's per-round supervisor: log, count)
                _log.exception("NVML sampling round failed")
                self.errors += 1
            if self._stop.wait(self._interval_s):
                return


def throttle_findings(samples: int, seen: Mapping[str, int]) -> list[Finding]:
    """Returns: the findings for the clock-event reasons one GPU showed (see the module)."""
    out = []
    hardware = [f"{name} ({seen[name]} of {samples} samples)" for name in HARDWARE if name in seen]
    if hardware:
        out.append(
            Finding("fail", "throttle", f"hardware slowdown during the run: {', '.join(hardware)}")
        )
    if SOFTWARE_THERMAL in seen:
        out.append(
            Finding(
                "warn",
                "throttle",
                f"software thermal slowdown in {seen[SOFTWARE_THERMAL]} of {samples} samples: "
                "the cooling is marginal",
            )
        )
    return out
