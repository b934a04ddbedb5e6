"""One GPU under the watchdog: its worker, its outstanding read, and what it reports meanwhile.

Stage: ``GpuCollector`` (each tick) -> (this) -> the GPU's ``Worker`` running
``GpuSampler.read``. Input: the tick's monotonic time. Output: the GPU's samples for the tick:
its last read's samples, or ``dcmon_gpu_up=0`` with ``dcmon_gpu_driver_unresponsive=1`` while
a read has been outstanding for longer than the call deadline (the driver hung), ``=0`` while
the GPU is fenced after a fatal XID, and nothing during a slow first read.

A hung read is abandoned, not cancelled (``worker.py``): nothing more is queued on the GPU
until it returns by itself, and its answer is then taken as usual.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from collections.abc import Callable

from agent.collectors.base import Sample
from agent.collectors.gpu.backend import NvmlError, NvmlUnavailable
from agent.collectors.gpu.busid import normalise_bus_id
from agent.collectors.gpu.readings import DRIVER_UNRESPONSIVE, GPU_UP
from agent.collectors.gpu.sampler import GpuSampler, Outcome
from agent.collectors.gpu.snapshot import GpuSnapshot
from agent.collectors.gpu.worker import Job, Worker
from agent.wire.schema import GpuFacts

_log = logging.getLogger(__name__)


class WatchedGpu:
    """One GPU of the session, as the collector's watchdog sees it.

    ``sampler`` is used only by the GPU's worker while a job is outstanding, and by the
    collector only between jobs; ``snapshot`` is published under ``lock``.

    Args:
        sampler: reads the GPU (on ``worker``).
        worker: the GPU's own worker thread.
        lock: the collector's lock, guarding what readers on other threads see.
        monotonic: the watchdog's clock, in seconds.
        deadline_seconds: how long a read may take before the GPU counts as unresponsive.
    """

    def __init__(
        self,
        sampler: GpuSampler,
        worker: Worker,
        lock: threading.Lock,
        monotonic: Callable[[], float],
        deadline_seconds: float,
    ) -> None:
        self.index = sampler.index
        self.sampler = sampler
        self.worker = worker
        self._lock = lock
        self._monotonic = monotonic
        self._deadline = deadline_seconds
        self.job: Job[Outcome] | None = None
        self.lost = False
        self.hung = False
        self.fenced_until = -math.inf
        self.samples: list[Sample] = []
        self.samples_at = -math.inf
        self.snapshot: GpuSnapshot | None = None

    @property
    def labels(self) -> dict[str, str]:
        return self.sampler.labels

    @property
    def facts(self) -> GpuFacts | None:
        return self.sampler.facts

    def submit(self, mono: float) -> Job[Outcome]:
        """Queue a read of the GPU on its worker, stamped ``mono``."""
        self.job = self.worker.submit(functools.partial(self.sampler.read, mono), mono)
        return self.job

    def absorb(self) -> NvmlUnavailable | None:
        """Take a finished job's outcome. Returns: the error if NVML itself went away."""
        job, self.job = self.job, None
        assert job is not None
        if self.hung:
            self.hung = False
            _log.warning(
                "GPU %d (%s): the driver answered again after %.1f s",
                self.index,
                self.labels["UUID"] or "identity unknown",
                self._monotonic() - job.submitted,
            )
        try:
            outcome = job.result()
        except Exception as exc:  # noqa: BLE001 (a bug in a reading must not kill the tick)
            self.sampler.note_error("tick", NvmlError(f"{type(exc).__name__}: {exc}"))
            self.samples = []
            return None
        if outcome.unavailable is not None:
            return outcome.unavailable
        if outcome.lost is not None:
            self._mark_lost(outcome.lost)
        elif self.lost:
            self.lost = False
            _log.info("GPU %d (%s) answers again", self.index, self.labels["UUID"])
        self.samples = outcome.samples
        self.samples_at = job.submitted
        with self._lock:
            self.snapshot = outcome.snapshot
        return None

    def report(self, mono: float) -> list[Sample]:
        """Returns: the GPU's samples for the tick at ``mono`` (see the module docstring)."""
        labels = self.labels
        if self.job is not None and mono - self.job.submitted >= self._deadline:
            if not self.hung:
                self.hung = True
                _log.warning(
                    "GPU %d (%s): an NVML call has not returned for %.1f s; reporting %s=1 "
                    "and calling nothing more on this GPU until it returns",
                    self.index,
                    labels["UUID"] or "identity unknown",
                    mono - self.job.submitted,
                    DRIVER_UNRESPONSIVE,
                )
                down = GpuSnapshot(self.index, labels["UUID"], labels["pci_bus_id"], mono, up=False)
                with self._lock:
                    self.snapshot = down
            return [Sample(GPU_UP, labels, 0.0), Sample(DRIVER_UNRESPONSIVE, labels, 1.0)]
        if mono < self.fenced_until:
            return [Sample(GPU_UP, labels, 0.0), Sample(DRIVER_UNRESPONSIVE, labels, 0.0)]
        if mono - self.samples_at >= self._deadline:
            return []  # a slow first read: nothing known yet
        return self.samples

    def matches(self, selector: int | str) -> bool:
        """Returns: whether ``selector`` (NVML index or PCI bus id) names this GPU."""
        if isinstance(selector, int):
            return self.index == selector
        ours = normalise_bus_id(self.labels["pci_bus_id"])
        return ours is not None and ours == normalise_bus_id(selector)

    def _mark_lost(self, exc: NvmlError) -> None:
        if not self.lost:
            self.lost = True
            _log.warning(
                "GPU %d (%s) is not answering: %s; reporting %s=0 until it does",
                self.index,
                self.labels["UUID"] or "identity unknown",
                exc,
                GPU_UP,
            )
