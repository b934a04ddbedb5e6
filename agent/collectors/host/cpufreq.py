"""The ``cpufreq`` collector: each CPU's clock frequency and governor, as node_exporter's.

Input: ``/sys/devices/system/cpu/cpuN/cpufreq/`` of every online CPU (``cpuN/cpufreq`` is the
kernel's link to its policy folder). Output, per CPU (``{cpu}``, the number as in
``node_cpu_seconds_total``), in hertz (the kernel's kHz x 1000):

- ``node_cpu_frequency_hertz`` (``cpuinfo_cur_freq``: the hardware's answer; root-only on most
  kernels and absent with ``intel_pstate``), ``node_cpu_frequency_avg_hertz``
  (``cpuinfo_avg_freq``, Linux >= 6.15), ``node_cpu_frequency_min_hertz`` and
  ``node_cpu_frequency_max_hertz`` (``cpuinfo_min_freq``, ``cpuinfo_max_freq``: the hardware's
  limits);
- ``node_cpu_scaling_frequency_hertz`` (``scaling_cur_freq``), ``..._min_hertz`` and
  ``..._max_hertz`` (``scaling_min_freq``, ``scaling_max_freq``: the policy's limits);
- ``node_cpu_scaling_governor{cpu,governor}``: 1 for the active governor, 0 for every other one
  ``scaling_available_governors`` lists.

CPUs listed in ``/sys/devices/system/cpu/offline`` are skipped, as upstream; a CPU without a
``cpufreq`` folder (no driver: most VMs) yields nothing, and a file the agent may not read is
left out. Deviations from node_exporter, which fails the whole collection in these cases: a
node without an ``offline`` file, or a policy without governor files, still reports what it
has; with governors but no list of them, the active one alone is reported (as 1).

Reading ``scaling_cur_freq`` is slow on x86 kernels 4.13-5.17 (RHEL 8 and 9, Ubuntu 22.04's
5.15): the kernel sleeps 10 ms per CPU whose frequency sample is stale, about 1.3 s for 128
CPUs at a 10 s interval, where node_exporter reads the CPUs in parallel. So the files are read
on one worker thread: each ``collect`` starts a new pass (when the last one is done), waits for
it up to ``wait_seconds`` and hands out the newest complete pass, at most one tick old on a
slow kernel; the tick itself never waits longer than that. A pass older than
``max_age_seconds`` is not handed out.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host._files import MalformedFileError, parse_int, read_attribute

HERTZ_PER_KILOHERTZ = 1000

_CPU_FOLDER = re.compile(r"^cpu([0-9]+)$")
_FREQUENCY_FILES: tuple[tuple[str, str], ...] = (
    ("cpuinfo_cur_freq", "node_cpu_frequency_hertz"),
    ("cpuinfo_avg_freq", "node_cpu_frequency_avg_hertz"),
    ("cpuinfo_min_freq", "node_cpu_frequency_min_hertz"),
    ("cpuinfo_max_freq", "node_cpu_frequency_max_hertz"),
    ("scaling_cur_freq", "node_cpu_scaling_frequency_hertz"),
    ("scaling_min_freq", "node_cpu_scaling_frequency_min_hertz"),
    ("scaling_max_freq", "node_cpu_scaling_frequency_max_hertz"),
)
GOVERNOR_METRIC = "node_cpu_scaling_governor"


def parse_cpu_list(path: str, text: str) -> set[int]:
    """Returns: the CPU numbers of a kernel CPU list (``0-3,8,10-11``; empty: none).

    Raises:
        MalformedFileError: an item is not a number or a range of numbers.
    """
    cpus: set[int] = set()
    for item in text.strip().split(","):
        if not item:
            continue
        first, dash, last = item.partition("-")
        low = parse_int(path, first)
        high = parse_int(path, last) if dash else low
        if high < low:
            raise MalformedFileError(path, f"descending CPU range {item!r}")
        cpus.update(range(low, high + 1))
    return cpus


def read_cpufreq(cpu_root: Path) -> list[Sample]:
    """Returns: the frequency and governor samples of every online CPU under ``cpu_root``.

    Raises:
        MalformedFileError: a frequency file or the ``offline`` list does not parse.
    """
    try:
        with os.scandir(cpu_root) as listing:
            found = [
                (int(match.group(1)), entry.name)
                for entry in listing
                if (match := _CPU_FOLDER.match(entry.name))
            ]
    except (FileNotFoundError, NotADirectoryError):
        return []
    offline_text = read_attribute(cpu_root / "offline")
    offline = parse_cpu_list(str(cpu_root / "offline"), offline_text) if offline_text else set()
    samples: list[Sample] = []
    for number, folder_name in sorted(found):
        if number not in offline:
            samples.extend(_cpu(f"{cpu_root}/{folder_name}/cpufreq", str(number)))
    return samples


def _cpu(folder: str, cpu: str) -> list[Sample]:
    samples: list[Sample] = []
    governor = read_attribute(f"{folder}/scaling_governor")
    if governor is None and not os.path.isdir(folder):
        return samples  # no cpufreq driver for this CPU
    for file_name, metric in _FREQUENCY_FILES:
        path = f"{folder}/{file_name}"
        text = read_attribute(path)
        if text is not None:
            hertz = float(parse_int(path, text) * HERTZ_PER_KILOHERTZ)
            samples.append(Sample(metric, {"cpu": cpu}, hertz))
    if governor:
        available = (read_attribute(f"{folder}/scaling_available_governors") or "").split()
        for name in available or [governor]:
            samples.append(
                Sample(GOVERNOR_METRIC, {"cpu": cpu, "governor": name}, float(name == governor))
            )
    return samples


@dataclass(frozen=True)
class _Pass:
    samples: list[Sample] | None
    error: MalformedFileError | None
    finished_monotonic: float


class CpufreqCollector:
    """Reads the cpufreq folders of every online CPU on a worker thread (see module docstring).

    Args:
        paths: where sysfs is.
        wait_seconds: how long ``collect`` waits for the pass it starts.
        max_age_seconds: the oldest pass ``collect`` still hands out.
        monotonic: the clock passes are dated by.
    """

    name = "cpufreq"

    def __init__(
        self,
        paths: HostPaths,
        wait_seconds: float = 0.05,
        max_age_seconds: float = 120.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._root = paths.sys / "devices" / "system" / "cpu"
        self._wait_seconds = wait_seconds
        self._max_age_seconds = max_age_seconds
        self._monotonic = monotonic
        self._executor: ThreadPoolExecutor | None = None
        self._running: Future[_Pass] | None = None
        self._latest: _Pass | None = None

    def collect(self, now: float) -> list[Sample]:
        """Returns: the newest complete pass's samples; nothing before the first one ends.

        Raises:
            MalformedFileError: the newest complete pass found a file that does not parse.
        """
        if self._running is not None and self._running.done():
            self._take()  # finished since the last tick
        if self._running is None:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(1, thread_name_prefix="dcmon-cpufreq")
            self._running = self._executor.submit(self._pass)
            done, _ = wait([self._running], timeout=self._wait_seconds)
            if done:
                self._take()
            # else a slow kernel: hand out the previous pass, take this one next tick
        latest = self._latest
        if latest is None or self._monotonic() - latest.finished_monotonic > self._max_age_seconds:
            return []
        if latest.error is not None:
            raise latest.error
        return list(latest.samples or [])

    def _take(self) -> None:
        """Makes the finished pass the latest; the next ``collect`` starts a new one even when
        this one raised (a bug in it fails one tick, not every tick after)."""
        finished, self._running = self._running, None
        if finished is not None:
            self._latest = finished.result()

    def close(self) -> None:
        """Stops the worker thread; a pass under way is abandoned."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    def _pass(self) -> _Pass:
        try:
            samples = read_cpufreq(self._root)
        except MalformedFileError as exc:
            return _Pass(None, exc, self._monotonic())
        return _Pass(samples, None, self._monotonic())
