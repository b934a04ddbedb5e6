"""The ``ipmi_power`` collector: the whole node's power draw, as its BMC measures it (IPMI DCMI).

Stage: collectors. Input: ``ipmitool dcmi power reading`` over the in-band BMC device
(``/dev/ipmi0``, ``/dev/ipmi/0`` or ``/dev/ipmidev/0``). Output:
``ipmi_dcmi_power_consumption_watts`` (the name prometheus-community's ipmi_exporter gives the
instantaneous reading) and, when the BMC reports them,
``dcmon_ipmi_dcmi_power_{minimum,maximum,average}_watts`` over the BMC's statistics window and
``dcmon_ipmi_dcmi_power_sampling_period_seconds``, the window's length.
No labels: node identity is added downstream. Catalog: ``agent/wire/catalog/power.toml``.

Optional and detected: with no ``ipmitool`` on PATH or no BMC device node the collector yields
nothing (one info line; detection is repeated every period, as the IPMI modules may load after
the agent). A BMC answers slowly (a second or more, sometimes much worse), so the command runs on
its own thread every ``period_seconds`` with a ``timeout_seconds`` deadline, and ``collect``
only hands out the last good reading while it is younger than three periods: the tick never
waits for the BMC. After ``failures_before_backoff`` failures in a row (no DCMI support, power
measurement not activated, BMC not answering) the command is tried only every
``backoff_seconds``, with one warning line; the first good reading after that logs one line.

As ipmi_exporter does, a reading counts only while the BMC says power measurement is
activated; a 0 W reading is refused too (the node runs this agent, so it draws power).

Errors, all mapped at the seam::

    IpmiError
    ├── IpmiCommandError   the command could not run, timed out or exited non-zero
    └── DcmiOutputError    it ran but its output holds no usable reading
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.collectors.base import Sample

logger = logging.getLogger(__name__)

IPMITOOL = "ipmitool"
DCMI_POWER_READING = ("dcmi", "power", "reading")
DEVICE_NODES = ("ipmi0", "ipmi/0", "ipmidev/0")
"""BMC device nodes of the kernel's IPMI driver, relative to the device root."""
FRESH_PERIODS = 3
"""A reading is handed out while it is younger than this many periods."""
POWER_METRIC = "ipmi_dcmi_power_consumption_watts"

CommandRunner = Callable[[Sequence[str], float], str]
"""Runs an argument vector with a deadline in seconds; returns its standard output.

Raises ``IpmiCommandError`` when the command cannot run, overruns or exits non-zero.
"""


class IpmiError(Exception):
    """No power reading could be had from the BMC."""


class IpmiCommandError(IpmiError):
    """The command could not be started, did not finish in time, or exited non-zero."""


class DcmiOutputError(IpmiError):
    """The command ran but its output holds no usable power reading."""


@dataclass(frozen=True)
class DcmiPowerReading:
    """One DCMI power reading, in watts; the statistics are None when the BMC leaves them out.

    Attributes:
        watts: the instantaneous power draw of the node.
        minimum_watts: the lowest draw in the BMC's statistics window.
        maximum_watts: the highest draw in that window.
        average_watts: the average draw over that window.
        sampling_period_seconds: the window's length in seconds.
    """

    watts: float
    minimum_watts: float | None = None
    maximum_watts: float | None = None
    average_watts: float | None = None
    sampling_period_seconds: float | None = None


_WATTS = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*watts?$", re.IGNORECASE)
_PERIOD = re.compile(r"^([0-9]+)\s*(seconds?|milliseconds?)\.?$", re.IGNORECASE)
_WATT_FIELDS = {
    "instantaneous power reading": "watts",
    "minimum during sampling period": "minimum_watts",
    "maximum during sampling period": "maximum_watts",
    "average power reading over sample period": "average_watts",
}


def parse_power_reading(text: str) -> DcmiPowerReading:
    """Returns: the reading in the output of ``ipmitool dcmi power reading``.

    Raises:
        DcmiOutputError: no instantaneous reading, a 0 W one, or power measurement is not
            activated on the BMC.
    """
    values: dict[str, float] = {}
    state: str | None = None
    for line in text.splitlines():
        key, separator, rest = line.partition(":")
        if not separator:
            continue
        key, rest = key.strip().lower(), rest.strip()
        field = _WATT_FIELDS.get(key)
        if field is not None:
            match = _WATTS.match(rest)
            if match is not None:
                values[field] = float(match.group(1))
        elif key == "sampling period":
            match = _PERIOD.match(rest)
            if match is not None:
                scale = 1000.0 if match.group(2).lower().startswith("milli") else 1.0
                values["sampling_period_seconds"] = int(match.group(1)) / scale
        elif key == "power reading state is":
            state = rest.lower()
    if state is not None and state != "activated":
        raise DcmiOutputError(f"power measurement is {state} on the BMC")
    watts = values.pop("watts", None)
    if watts is None:
        raise DcmiOutputError("no instantaneous power reading in the output")
    if watts <= 0:
        raise DcmiOutputError(f"the BMC reported {watts:g} W")
    if values.get("sampling_period_seconds") == 0:
        del values["sampling_period_seconds"]  # the BMC keeps no statistics window
    return DcmiPowerReading(watts, **values)


def run_command(argv: Sequence[str], timeout_seconds: float) -> str:
    """The real ``CommandRunner``: runs ``argv`` in its own process group, killed at the deadline.

    Killing the whole group also ends what a wrapper script started, so nothing outlives the
    deadline holding the output pipes.
    """
    try:
        process = subprocess.Popen(  # noqa: S603 - a fixed argument vector, no shell
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )
    except OSError as exc:
        raise IpmiCommandError(f"{argv[0]}: {exc.strerror or exc}") from exc
    with process:
        try:
            out, err = process.communicate(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):  # it ended just after the deadline
                os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise IpmiCommandError(
                f"{argv[0]} did not finish within {timeout_seconds:g} s"
            ) from None
    if process.returncode != 0:
        lines = (err or out).decode("utf-8", errors="replace").strip().splitlines()
        detail = lines[-1][:200] if lines else "no output"
        raise IpmiCommandError(f"{argv[0]} exited with status {process.returncode}: {detail}")
    return out.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class IpmiPowerOptions:
    """How often, and how patiently, the BMC is asked.

    Attributes:
        period_seconds: seconds between two readings.
        timeout_seconds: deadline of one ``ipmitool`` run, in seconds.
        failures_before_backoff: failures in a row after which the command is tried only
            every ``backoff_seconds``.
        backoff_seconds: seconds between tries once backed off.
    """

    period_seconds: float = 30.0
    timeout_seconds: float = 10.0
    failures_before_backoff: int = 3
    backoff_seconds: float = 3600.0

    def __post_init__(self) -> None:
        if not self.period_seconds > 0:
            raise ValueError("period_seconds must be positive")
        if not 0 < self.timeout_seconds <= self.period_seconds:
            raise ValueError("timeout_seconds must be positive and at most period_seconds")
        if self.failures_before_backoff < 1:
            raise ValueError("failures_before_backoff must be at least 1")
        if self.backoff_seconds < self.period_seconds:
            raise ValueError("backoff_seconds must be at least period_seconds")


class IpmiPowerCollector:
    """Hands out the BMC's latest power reading, read on a thread of its own.

    Args:
        dev_root: where device nodes are (``/dev``; tests pass a folder of their own).
        options: period, deadline and backoff.
        runner: runs the command; tests pass one that returns recorded output.
        which: finds ``ipmitool`` on PATH (``shutil.which``).
        monotonic: the clock that ages readings, in seconds.
    """

    name = "ipmi_power"

    def __init__(
        self,
        dev_root: Path = Path("/dev"),
        options: IpmiPowerOptions | None = None,
        runner: CommandRunner = run_command,
        which: Callable[[str], str | None] = shutil.which,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._dev_root = dev_root
        self._options = options or IpmiPowerOptions()
        self._runner = runner
        self._which = which
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._argv: list[str] | None = None
        self._next_detection: float | None = None
        self._told_absent = False
        self._last: tuple[DcmiPowerReading, float] | None = None  # reading, monotonic time
        self._failures = 0

    def collect(self, now: float) -> list[Sample]:
        """Returns: the latest reading's samples while it is fresh; nothing otherwise."""
        if self._thread is None and not self._stop.is_set():
            self._start_if_detected()
        with self._lock:
            last = self._last
        if last is None:
            return []
        reading, taken = last
        if self._monotonic() - taken >= FRESH_PERIODS * self._options.period_seconds:
            return []
        return reading_samples(reading)

    def poll_once(self) -> float:
        """Runs the command once and keeps a good reading.

        Returns: seconds until the next run (the period, or the backoff after repeated failure).
        """
        argv = self._argv or [IPMITOOL, *DCMI_POWER_READING]
        try:
            reading = parse_power_reading(self._runner(argv, self._options.timeout_seconds))
        except IpmiError as exc:
            return self._failed(exc)
        with self._lock:
            self._last = (reading, self._monotonic())
        if self._failures >= self._options.failures_before_backoff:
            logger.info("ipmi_power: the BMC answers again; reading every %g s", self._period)
        self._failures = 0
        return self._period

    def close(self) -> None:
        """Stops the reading thread; waits at most one command deadline for it to end."""
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(self._options.timeout_seconds + 1.0)

    @property
    def _period(self) -> float:
        return self._options.period_seconds

    def _failed(self, exc: IpmiError) -> float:
        self._failures += 1
        limit = self._options.failures_before_backoff
        if self._failures < limit:
            logger.debug("ipmi_power: no reading (%s); retrying in %g s", exc, self._period)
            return self._period
        if self._failures == limit:
            logger.warning(
                "ipmi_power: `%s` failed %d times in a row (last: %s); node power from the BMC "
                "is left out and the command is tried again every %g s",
                " ".join([IPMITOOL, *DCMI_POWER_READING]),
                limit,
                exc,
                self._options.backoff_seconds,
            )
        else:
            logger.debug("ipmi_power: still no reading (%s)", exc)
        return self._options.backoff_seconds

    def _start_if_detected(self) -> None:
        now = self._monotonic()
        if self._next_detection is not None and now < self._next_detection:
            return
        self._next_detection = now + self._period
        ipmitool = self._which(IPMITOOL)
        device = next(
            (node for node in DEVICE_NODES if os.path.exists(self._dev_root / node)), None
        )
        if ipmitool is None or device is None:
            if not self._told_absent:
                self._told_absent = True
                missing = "no ipmitool on PATH" if ipmitool is None else "no BMC device node"
                logger.info(
                    "ipmi_power: %s (looked for %s under %s); node power from the BMC is not "
                    "collected",
                    missing,
                    ", ".join(DEVICE_NODES),
                    self._dev_root,
                )
            return
        logger.info("ipmi_power: BMC at %s; reading node power every %g s", device, self._period)
        self._argv = [ipmitool, *DCMI_POWER_READING]
        self._thread = threading.Thread(target=self._loop, name="dcmon-ipmi-power", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        delay = 0.0
        while not self._stop.wait(delay):
            delay = self.poll_once()


def reading_samples(reading: DcmiPowerReading) -> list[Sample]:
    """Returns: the catalog samples of one reading; statistics the BMC left out are absent."""
    samples = [Sample(POWER_METRIC, {}, reading.watts)]
    for metric, value in (
        ("dcmon_ipmi_dcmi_power_minimum_watts", reading.minimum_watts),
        ("dcmon_ipmi_dcmi_power_maximum_watts", reading.maximum_watts),
        ("dcmon_ipmi_dcmi_power_average_watts", reading.average_watts),
        ("dcmon_ipmi_dcmi_power_sampling_period_seconds", reading.sampling_period_seconds),
    ):
        if value is not None:
            samples.append(Sample(metric, {}, value))
    return samples
