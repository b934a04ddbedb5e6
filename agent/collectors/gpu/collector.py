"""The GPU collector: NVML readings -> samples with dcgm-exporter names, plus the GPU inventory.

Stage: ``NvmlBackend`` -> (this) -> samples (catalog ``agent/wire/catalog/gpu.toml``) and
``GpuSnapshot`` records for job attribution. This module runs the NVML session and the tick;
each GPU's worker and deadline are ``watch.py``, what one GPU's read assembles (identity, the
capability probe, the readings due, the snapshot) is ``sampler.py``, and what is read, how
often, and how it converts to catalog units is the table in ``readings.py``. Every GPU series
carries dcgm-exporter's labels ``gpu, UUID, pci_bus_id, device, modelName, Hostname,
DCGM_FI_DRIVER_VERSION``.

Threads and the watchdog (``worker.py``, ``watch.py``): NVML start-up runs on a session worker
and each GPU is read on its own worker thread. A tick submits one job per GPU and waits for
them at most ``budget_seconds``; a GPU whose job has not returned within
``call_deadline_seconds`` is reported ``dcmon_gpu_driver_unresponsive=1`` and
``dcmon_gpu_up=0``, and nothing more is asked of it until the stuck call returns. The other
GPUs and the host collectors carry on.

Failure policy (the design's "missing is absent"):

- NVML unavailable (no driver, driver not loaded, version mismatch): one WARNING, no samples,
  ``inventory().status`` says why, and start-up is retried quietly every ``init_retry_seconds``.
- A lost GPU reports only ``dcmon_gpu_up=0`` until it answers again; the others carry on.
- A GPU fenced by a fatal XID (``fence``) is not called until the fence expires.
- A failed or unsupported reading, or a glitched value, is the sampler's (``sampler.py``).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.collectors.base import Sample
from agent.collectors.gpu.backend import NvmlBackend, NvmlError, NvmlUnavailable
from agent.collectors.gpu.sampler import GpuSampler, Outcome
from agent.collectors.gpu.snapshot import GpuSnapshot
from agent.collectors.gpu.watch import WatchedGpu
from agent.collectors.gpu.worker import Job, Worker, wait_all
from agent.wire.schema import MAX_GPUS_PER_NODE, GpuFacts

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class GpuInventory:
    """What the node's GPUs are, for the batch inventory.

    ``status`` is empty while GPU data flows, else a reason for people (e.g. "no NVIDIA
    driver: NVML library not found").
    """

    driver_version: str | None
    gpus: tuple[GpuFacts, ...]
    status: str


@dataclass(frozen=True)
class _Session:
    count: int
    driver_version: str | None


class GpuCollector:
    """Collector ``gpu``: per-GPU metrics from an ``NvmlBackend``.

    Args:
        backend: the NVML seam (real, simulated or scripted). Must be thread-safe.
        hostname: value of the ``Hostname`` label on every series.
        init_retry_seconds: how long to wait before retrying NVML after it failed to start.
        monotonic: the clock for retries, cadences and the watchdog, in seconds.
        budget_seconds: the longest a tick waits for the GPUs before reporting without them.
        call_deadline_seconds: how long a GPU's reads may take before it counts as
            unresponsive.
        track_processes: also read each GPU's processes for job attribution (``snapshots``).
        wall_clock: wall-clock seconds, for the per-process utilization window.
    """

    name = "gpu"

    def __init__(
        self,
        backend: NvmlBackend,
        hostname: str,
        init_retry_seconds: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
        *,
        budget_seconds: float = 0.5,
        call_deadline_seconds: float = 5.0,
        track_processes: bool = False,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._backend = backend
        self._hostname = hostname
        self._retry_seconds = init_retry_seconds
        self._monotonic = monotonic
        self._budget = budget_seconds
        self._deadline = call_deadline_seconds
        self._track_processes = track_processes
        self._wall = wall_clock
        self._lock = threading.Lock()  # guards the GPU list for readers on other threads
        self._session_worker: Worker | None = None
        self._start_job: Job[_Session] | None = None
        self._start_hang_reported = False
        self._started = False
        self._closed = False
        self._next_attempt: float | None = None  # None: never tried
        self._failures_reported = False
        self._driver_version: str | None = None
        self._gpus: list[WatchedGpu] = []
        self._status = ""

    # The collector protocol

    def collect(self, now: float) -> list[Sample]:
        """Read every GPU once, waiting at most ``budget_seconds`` for the driver.

        Args:
            now: the tick's wall-clock time (unused: NVML readings are "now").

        Returns:
            The samples; empty while NVML is unavailable.
        """
        if self._closed or not self._ensure_started():
            return []
        mono = self._monotonic()
        submitted: list[Job[Outcome]] = []
        lost_session: NvmlUnavailable | None = None
        for gpu in self._gpus:
            if gpu.job is not None:
                if not gpu.job.done():
                    continue  # still busy (slow or hung): the watchdog decides below
                lost_session = gpu.absorb() or lost_session
            if mono < gpu.fenced_until or lost_session is not None:
                continue
            submitted.append(gpu.submit(mono))
        wait_all(submitted, self._budget)
        samples: list[Sample] = []
        for gpu in self._gpus:
            if gpu.job is not None and gpu.job.done():
                lost_session = gpu.absorb() or lost_session
            samples.extend(gpu.report(mono))
        if lost_session is not None:
            self._lose_session(lost_session)
            return []
        return samples

    def inventory(self) -> GpuInventory:
        """Returns: driver version, static facts of each identified GPU, and the status."""
        if not self._closed:
            self._ensure_started()
        with self._lock:
            facts = tuple(gpu.facts for gpu in self._gpus if gpu.facts is not None)
        return GpuInventory(self._driver_version, facts, self._status)

    def snapshots(self) -> list[GpuSnapshot]:
        """Returns: the latest snapshot of each GPU read so far (for job attribution)."""
        with self._lock:
            return [gpu.snapshot for gpu in self._gpus if gpu.snapshot is not None]

    def gpu_labels(self) -> list[dict[str, str]]:
        """Returns: the label set of each GPU of the session (index order)."""
        with self._lock:
            return [dict(gpu.labels) for gpu in self._gpus]

    def unsupported_readings(self) -> dict[int, frozenset[str]]:
        """Returns: per GPU index, the readings (``READING_NAMES``) found unsupported."""
        with self._lock:
            return {
                gpu.index: frozenset(gpu.facts.unsupported if gpu.facts else ())
                for gpu in self._gpus
            }

    def fence(self, gpu: int | str, seconds: float, reason: str) -> bool:
        """Stop calling the driver for one GPU for ``seconds`` (after a fatal XID).

        Args:
            gpu: NVML index, or PCI bus id in NVML's or the kernel log's spelling.
            seconds: how long to leave the GPU alone; it is then probed again.
            reason: for the log.

        Returns:
            Whether a GPU of this session matched.
        """
        for candidate in self._gpus:
            if candidate.matches(gpu):
                candidate.fenced_until = self._monotonic() + seconds
                _log.warning(
                    "GPU %d (%s): no driver calls for %g s: %s",
                    candidate.index,
                    candidate.labels["UUID"] or "identity unknown",
                    seconds,
                    reason,
                )
                return True
        return False

    def close(self) -> None:
        """End the NVML session; the collector then stays idle."""
        self._closed = True
        self._next_attempt = math.inf
        workers = [gpu.worker for gpu in self._gpus]
        if self._started:
            self._started = False
            if all(gpu.job is None or gpu.job.done() for gpu in self._gpus):
                self._on_session_worker(self._shutdown_quietly)
        for worker in workers:
            worker.stop()
        if self._session_worker is not None:
            self._session_worker.stop()

    # Session start-up, on the session worker

    def _ensure_started(self) -> bool:
        if self._started:
            return True
        mono = self._monotonic()
        if self._start_job is None:
            if self._next_attempt is not None and mono < self._next_attempt:
                return False
            self._start_job = self._session().submit(self._start_session, mono)
        job = self._start_job
        if not job.wait(self._budget):
            if mono - job.submitted >= self._deadline and not self._start_hang_reported:
                self._start_hang_reported = True
                self._status = "NVML start-up is not responding (driver hung?)"
                _log.warning("GPU metrics off: %s; host metrics are unaffected.", self._status)
            return False
        self._start_job = None
        self._start_hang_reported = False
        try:
            session = job.result()
        except NvmlError as exc:
            self._start_failed(exc)
            return False
        self._begin(session)
        return True

    def _session(self) -> Worker:
        if self._session_worker is None:
            self._session_worker = Worker("dcmon-nvml-session")
        return self._session_worker

    def _start_session(self) -> _Session:
        self._backend.init()
        try:
            count = self._backend.device_count()
        except NvmlError:
            self._shutdown_quietly()
            raise
        try:
            driver: str | None = self._backend.driver_version()
        except NvmlError as exc:
            _log.debug("NVML driver version unreadable: %s", exc)
            driver = None
        return _Session(count, driver)

    def _begin(self, session: _Session) -> None:
        count = session.count
        if count > MAX_GPUS_PER_NODE:
            _log.warning("NVML reports %d GPUs; monitoring the first %d", count, MAX_GPUS_PER_NODE)
            count = MAX_GPUS_PER_NODE
        self._driver_version = session.driver_version
        gpus = [
            WatchedGpu(
                self._sampler(index),
                Worker(f"dcmon-nvml-gpu{index}"),
                self._lock,
                self._monotonic,
                self._deadline,
            )
            for index in range(count)
        ]
        with self._lock:
            self._gpus = gpus
        self._started = True
        self._status = "" if count else "NVML reports no NVIDIA GPU"
        _log.info("NVML started: driver %s, %d GPU(s)", self._driver_version or "unknown", count)
        self._failures_reported = False
        self._next_attempt = None

    def _sampler(self, index: int) -> GpuSampler:
        return GpuSampler(
            self._backend,
            index,
            self._hostname,
            self._driver_version,
            self._lock,
            track_processes=self._track_processes,
            wall_clock=self._wall,
        )

    def _start_failed(self, exc: NvmlError) -> None:
        self._status = str(exc) if isinstance(exc, NvmlUnavailable) else f"NVML failed: {exc}"
        self._next_attempt = self._monotonic() + self._retry_seconds
        if self._failures_reported:
            _log.debug("NVML still unavailable: %s", self._status)
            return
        self._failures_reported = True
        hint = exc.hint if isinstance(exc, NvmlUnavailable) else ""
        _log.warning(
            "GPU metrics off: %s.%s Retrying every %g s; host metrics are unaffected.",
            self._status,
            f" Hint: {hint}." if hint else "",
            self._retry_seconds,
        )

    def _lose_session(self, exc: NvmlUnavailable) -> None:
        """NVML stopped working under a running session (e.g. the driver was unloaded)."""
        self._started = False
        for gpu in self._gpus:
            gpu.worker.stop()
        with self._lock:
            self._gpus = []
        self._driver_version = None
        self._on_session_worker(self._shutdown_quietly)
        self._start_failed(exc)

    def _on_session_worker(self, work: Callable[[], None]) -> None:
        """Run ``work`` on the session worker, waiting at most the budget."""
        self._session().submit(work, self._monotonic()).wait(self._budget)

    def _shutdown_quietly(self) -> None:
        try:
            self._backend.shutdown()
        except NvmlError as exc:
            _log.debug("NVML shutdown failed: %s", exc)
