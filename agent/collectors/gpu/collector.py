"""The GPU collector: NVML readings -> samples with dcgm-exporter names, plus the GPU inventory.

Stage: ``NvmlBackend`` -> (this) -> samples (catalog ``agent/wire/catalog/gpu.toml``) and
``GpuSnapshot`` records for job attribution. What is read, how often, and how it converts to
catalog units is the table in ``readings.py``. Every GPU series carries dcgm-exporter's labels
``gpu, UUID, pci_bus_id, device, modelName, Hostname, DCGM_FI_DRIVER_VERSION``.

Threads and the watchdog (``worker.py``): NVML start-up runs on a session worker and each GPU
is read on its own worker thread. A tick submits one job per GPU and waits for them at most
``budget_seconds``; a GPU whose job has not returned within ``call_deadline_seconds`` is
reported ``dcmon_gpu_driver_unresponsive=1`` and ``dcmon_gpu_up=0``, and nothing more is asked
of it until the stuck call returns. The other GPUs and the host collectors carry on.

Capability probe: the first read of a GPU asks every reading once. Readings the GPU or driver
does not support (NotSupported, FunctionNotFound) are recorded, listed in the inventory
(``GpuFacts.unsupported``) and never asked again in this NVML session. Each reading runs on its
own cadence (``Reading.period``); in between, its last samples are sent again.

Failure policy (the design's "missing is absent"):

- NVML unavailable (no driver, driver not loaded, version mismatch): one WARNING, no samples,
  ``inventory().status`` says why, and start-up is retried quietly every ``init_retry_seconds``.
- A lost GPU reports only ``dcmon_gpu_up=0`` until it answers again; the others carry on.
- A GPU fenced by a fatal XID (``fence``) is not called until the fence expires.
- Any other error skips that reading, logged once per (GPU, reading, error).
- Glitched values (utilization outside 0-100 %, temperatures above 200 C) are dropped.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from agent.collectors.base import Sample
from agent.collectors.gpu.backend import (
    GpuProcess,
    NvmlBackend,
    NvmlError,
    NvmlFunctionNotFound,
    NvmlGpuLost,
    NvmlNotSupported,
    NvmlUnavailable,
    ProcessUtilization,
)
from agent.collectors.gpu.busid import normalise_bus_id
from agent.collectors.gpu.readings import (
    DRIVER_UNRESPONSIVE,
    DRIVER_VERSION_LABEL,
    GPU_UP,
    GPU_UTIL,
    POWER_USAGE,
    READINGS,
    TOTAL_ENERGY,
    Reading,
)
from agent.collectors.gpu.snapshot import GpuSnapshot
from agent.collectors.gpu.worker import Job, Worker, wait_all
from agent.wire.schema import MAX_GPUS_PER_NODE, GpuFacts

_log = logging.getLogger(__name__)

_T = TypeVar("_T")

# Pseudo-readings: calls made for job attribution, not turned into metrics.
PROCESSES = "running_processes"
PROCESS_UTILIZATION = "process_utilization"


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


@dataclass
class _Outcome:
    """What one job on a GPU worker produced."""

    samples: list[Sample]
    snapshot: GpuSnapshot
    lost: NvmlError | None = None
    unavailable: NvmlUnavailable | None = None


@dataclass
class _Gpu:
    """What the collector knows about one GPU during an NVML session.

    Fields below ``worker`` are touched only by the GPU's worker while a job is outstanding,
    and by the collector only between jobs.
    """

    index: int
    labels: dict[str, str]
    worker: Worker
    job: Job[_Outcome] | None = None
    facts: GpuFacts | None = None  # None until identity and probe are done
    lost: bool = False
    hung: bool = False
    fenced_until: float = -math.inf
    samples: list[Sample] = field(default_factory=list)
    samples_at: float = -math.inf
    snapshot: GpuSnapshot | None = None
    unsupported: set[str] = field(default_factory=set)
    errors: dict[str, str] = field(default_factory=dict)  # reading -> last logged error
    due: dict[str, float] = field(default_factory=dict)  # reading -> next monotonic read
    cache: dict[str, tuple[float, list[Sample]]] = field(default_factory=dict)
    process_since_us: int = 0


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
        self._gpus: list[_Gpu] = []
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
        submitted: list[Job[_Outcome]] = []
        lost_session: NvmlUnavailable | None = None
        for gpu in self._gpus:
            if gpu.job is not None:
                if not gpu.job.done():
                    continue  # still busy (slow or hung): the watchdog decides below
                lost_session = self._absorb(gpu) or lost_session
            if mono < gpu.fenced_until or lost_session is not None:
                continue
            gpu.job = gpu.worker.submit(functools.partial(self._read_gpu, gpu, mono), mono)
            submitted.append(gpu.job)
        wait_all(submitted, self._budget)
        samples: list[Sample] = []
        for gpu in self._gpus:
            if gpu.job is not None and gpu.job.done():
                lost_session = self._absorb(gpu) or lost_session
            samples.extend(self._report(gpu, mono))
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
            if _matches(candidate, gpu):
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
            _Gpu(index, self._labels(index), Worker(f"dcmon-nvml-gpu{index}"))
            for index in range(count)
        ]
        with self._lock:
            self._gpus = gpus
        self._started = True
        self._status = "" if count else "NVML reports no NVIDIA GPU"
        _log.info("NVML started: driver %s, %d GPU(s)", self._driver_version or "unknown", count)
        self._failures_reported = False
        self._next_attempt = None

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

    # Per GPU, on the collector's thread

    def _labels(
        self, index: int, uuid: str = "", bus: str = "", device: str = "", model: str = ""
    ) -> dict[str, str]:
        return {
            "gpu": str(index),
            "UUID": uuid,
            "pci_bus_id": bus,
            "device": device,
            "modelName": model,
            "Hostname": self._hostname,
            DRIVER_VERSION_LABEL: self._driver_version or "",
        }

    def _absorb(self, gpu: _Gpu) -> NvmlUnavailable | None:
        """Take a finished job's outcome. Returns: the error if NVML itself went away."""
        job, gpu.job = gpu.job, None
        assert job is not None
        if gpu.hung:
            gpu.hung = False
            _log.warning(
                "GPU %d (%s): the driver answered again after %.1f s",
                gpu.index,
                gpu.labels["UUID"] or "identity unknown",
                self._monotonic() - job.submitted,
            )
        try:
            outcome = job.result()
        except Exception as exc:  # noqa: BLE001 (a bug in a reading must not kill the tick)
            self._note_error(gpu, "tick", NvmlError(f"{type(exc).__name__}: {exc}"))
            gpu.samples = []
            return None
        if outcome.unavailable is not None:
            return outcome.unavailable
        if outcome.lost is not None:
            self._mark_lost(gpu, outcome.lost)
        elif gpu.lost:
            gpu.lost = False
            _log.info("GPU %d (%s) answers again", gpu.index, gpu.labels["UUID"])
        gpu.samples = outcome.samples
        gpu.samples_at = job.submitted
        with self._lock:
            gpu.snapshot = outcome.snapshot
        return None

    def _report(self, gpu: _Gpu, mono: float) -> list[Sample]:
        labels = gpu.labels
        if gpu.job is not None and mono - gpu.job.submitted >= self._deadline:
            if not gpu.hung:
                gpu.hung = True
                _log.warning(
                    "GPU %d (%s): an NVML call has not returned for %.1f s; reporting %s=1 "
                    "and calling nothing more on this GPU until it returns",
                    gpu.index,
                    labels["UUID"] or "identity unknown",
                    mono - gpu.job.submitted,
                    DRIVER_UNRESPONSIVE,
                )
                down = GpuSnapshot(gpu.index, labels["UUID"], labels["pci_bus_id"], mono, up=False)
                with self._lock:
                    gpu.snapshot = down
            return [Sample(GPU_UP, labels, 0.0), Sample(DRIVER_UNRESPONSIVE, labels, 1.0)]
        if mono < gpu.fenced_until:
            return [Sample(GPU_UP, labels, 0.0), Sample(DRIVER_UNRESPONSIVE, labels, 0.0)]
        if mono - gpu.samples_at >= self._deadline:
            return []  # a slow first read: nothing known yet
        return gpu.samples

    # Per GPU, on the GPU's worker

    def _read_gpu(self, gpu: _Gpu, mono: float) -> _Outcome:
        """Identify the GPU if needed, then read what is due (the first read is the probe)."""
        try:
            identity = self._identify(gpu) if gpu.facts is None else None
            samples = self._read_due(gpu, mono)
            snapshot = self._snapshot(gpu, mono)
        except NvmlUnavailable as exc:
            return _Outcome([], GpuSnapshot(gpu.index, "", "", mono, up=False), unavailable=exc)
        except NvmlGpuLost as exc:
            gpu.cache.clear()
            gpu.due.clear()
            labels = gpu.labels
            down = [Sample(GPU_UP, labels, 0.0), Sample(DRIVER_UNRESPONSIVE, labels, 0.0)]
            snapshot = GpuSnapshot(gpu.index, labels["UUID"], labels["pci_bus_id"], mono, up=False)
            return _Outcome(down, snapshot, lost=exc)
        if identity is not None:
            self._publish_facts(
                gpu, identity.model_copy(update={"unsupported": sorted(gpu.unsupported)})
            )
            if gpu.unsupported:
                _log.info(
                    "GPU %d (%s): not supported here, not collected: %s",
                    gpu.index,
                    identity.uuid,
                    ", ".join(sorted(gpu.unsupported)),
                )
        elif gpu.facts is not None and len(gpu.facts.unsupported) != len(gpu.unsupported):
            self._publish_facts(
                gpu, gpu.facts.model_copy(update={"unsupported": sorted(gpu.unsupported)})
            )
        return _Outcome(samples, snapshot)

    def _publish_facts(self, gpu: _Gpu, facts: GpuFacts) -> None:
        with self._lock:
            gpu.facts = facts

    def _identify(self, gpu: _Gpu) -> GpuFacts:
        """Read the GPU's static facts and set its labels.

        Returns:
            The facts, without the probe's result (``unsupported``) yet.

        Raises:
            NvmlGpuLost: the GPU does not answer.
            NvmlUnavailable: NVML stopped working.
        """
        index, backend = gpu.index, self._backend
        try:
            uuid = backend.uuid(index)
        except (NvmlGpuLost, NvmlUnavailable):
            raise
        except NvmlError as exc:
            raise NvmlGpuLost(f"UUID unreadable: {exc}", code=exc.code) from exc
        model = self._optional(gpu, "name", lambda: backend.name(index)) or ""
        bus = self._optional(gpu, "pci_bus_id", lambda: backend.pci_bus_id(index)) or ""
        minor = self._optional(gpu, "minor_number", lambda: backend.minor_number(index))
        serial = self._optional(gpu, "serial", lambda: backend.serial(index))
        vbios = self._optional(gpu, "vbios_version", lambda: backend.vbios_version(index))
        memory = self._optional(gpu, "memory_info", lambda: backend.memory_info(index))
        device = "" if minor is None else f"nvidia{minor}"
        gpu.labels = self._labels(index, uuid, bus, device, model)
        gpu.cache.clear()
        gpu.due.clear()
        return GpuFacts(
            index=index,
            uuid=uuid,
            model=model,
            pci_bus_id=bus,
            serial=serial,
            vbios_version=vbios,
            memory_total_bytes=None if memory is None else memory.total_bytes,
        )

    def _optional(self, gpu: _Gpu, call: str, read: Callable[[], _T]) -> _T | None:
        """An identity fact that may be missing: None unless the GPU is lost or NVML is gone."""
        try:
            return read()
        except (NvmlGpuLost, NvmlUnavailable):
            raise
        except (NvmlNotSupported, NvmlFunctionNotFound):
            return None
        except NvmlError as exc:
            self._note_error(gpu, f"identity {call}", exc)
            return None

    def _read_due(self, gpu: _Gpu, mono: float) -> list[Sample]:
        """Read the readings that are due; return every supported reading's latest samples."""
        samples = [Sample(GPU_UP, gpu.labels, 1.0), Sample(DRIVER_UNRESPONSIVE, gpu.labels, 0.0)]
        for reading in READINGS:
            if reading.name in gpu.unsupported:
                continue
            if mono >= gpu.due.get(reading.name, -math.inf):
                self._refresh(gpu, reading, mono)
            cached = gpu.cache.get(reading.name)
            if cached is not None:
                samples.extend(cached[1])
        return samples

    def _refresh(self, gpu: _Gpu, reading: Reading, mono: float) -> None:
        """Read one reading into the cache (dropping the old values if it fails)."""
        gpu.due[reading.name] = mono + reading.period
        values = self._guarded(gpu, reading.name, lambda: reading.read(self._backend, gpu.index))
        if values is None:
            gpu.cache.pop(reading.name, None)
            return
        labels = gpu.labels
        fresh: list[Sample] = []
        for metric, value, extra in values:
            if value is None:
                _log.debug("GPU %d: dropped out-of-range %s", gpu.index, metric)
            else:
                fresh.append(Sample(metric, {**labels, **extra} if extra else labels, value))
        gpu.cache[reading.name] = (mono, fresh)

    def _guarded(self, gpu: _Gpu, name: str, call: Callable[[], _T]) -> _T | None:
        """Make one call; an unsupported or failed call yields None.

        Raises:
            NvmlGpuLost: the GPU stopped answering.
            NvmlUnavailable: NVML stopped working.
        """
        try:
            result = call()
        except (NvmlGpuLost, NvmlUnavailable):
            raise
        except (NvmlNotSupported, NvmlFunctionNotFound) as exc:
            gpu.unsupported.add(name)
            _log.debug("GPU %d: %s is not supported (%s)", gpu.index, name, exc)
            return None
        except NvmlError as exc:
            self._note_error(gpu, name, exc)
            return None
        if gpu.errors.pop(name, None) is not None:
            _log.info("GPU %d: %s is readable again", gpu.index, name)
        return result

    def _snapshot(self, gpu: _Gpu, mono: float) -> GpuSnapshot:
        labels = gpu.labels
        energy_at, energy = _cached(gpu, TOTAL_ENERGY)
        processes: tuple[GpuProcess, ...] = ()
        utilization: tuple[ProcessUtilization, ...] = ()
        if self._track_processes:
            processes, utilization = self._read_processes(gpu)
        return GpuSnapshot(
            index=gpu.index,
            uuid=labels["UUID"],
            pci_bus_id=labels["pci_bus_id"],
            monotonic=mono,
            up=True,
            utilization_percent=_cached(gpu, GPU_UTIL)[1],
            power_w=_cached(gpu, POWER_USAGE)[1],
            energy_mj=None if energy is None else int(energy),
            energy_monotonic=energy_at,
            processes=processes,
            process_utilization=utilization,
        )

    def _read_processes(
        self, gpu: _Gpu
    ) -> tuple[tuple[GpuProcess, ...], tuple[ProcessUtilization, ...]]:
        index, backend = gpu.index, self._backend
        processes: tuple[GpuProcess, ...] = ()
        if PROCESSES not in gpu.unsupported:
            found = self._guarded(gpu, PROCESSES, lambda: backend.running_processes(index))
            processes = tuple(found or ())
        utilization: tuple[ProcessUtilization, ...] = ()
        if processes and PROCESS_UTILIZATION not in gpu.unsupported:
            since = gpu.process_since_us or int((self._wall() - 1.0) * 1e6)
            found_util = self._guarded(
                gpu, PROCESS_UTILIZATION, lambda: backend.process_utilization(index, since)
            )
            utilization = tuple(found_util or ())
            if utilization:
                gpu.process_since_us = max(sample.timestamp_us for sample in utilization)
        return processes, utilization

    def _mark_lost(self, gpu: _Gpu, exc: NvmlError) -> None:
        if not gpu.lost:
            gpu.lost = True
            _log.warning(
                "GPU %d (%s) is not answering: %s; reporting %s=0 until it does",
                gpu.index,
                gpu.labels["UUID"] or "identity unknown",
                exc,
                GPU_UP,
            )

    def _note_error(self, gpu: _Gpu, reading: str, exc: NvmlError) -> None:
        """Log a failed reading once per (GPU, reading, error) until the error changes."""
        key = f"{type(exc).__name__}: {exc}"
        if gpu.errors.get(reading) != key:
            gpu.errors[reading] = key
            _log.warning(
                "GPU %d: %s failed, skipped until it recovers: %s", gpu.index, reading, key
            )


def _cached(gpu: _Gpu, metric: str) -> tuple[float | None, float | None]:
    """Returns: (when read, value) of an unlabelled metric in the GPU's cache, or Nones."""
    for read_at, samples in gpu.cache.values():
        for sample in samples:
            if sample.name == metric:
                return read_at, sample.value
    return None, None


def _matches(gpu: _Gpu, selector: int | str) -> bool:
    if isinstance(selector, int):
        return gpu.index == selector
    ours = normalise_bus_id(gpu.labels["pci_bus_id"])
    return ours is not None and ours == normalise_bus_id(selector)
