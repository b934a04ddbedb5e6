"""One GPU's read, on its worker thread: identity, due readings -> samples, and a snapshot.

Stage: ``NvmlBackend`` -> (this, on the GPU's worker) -> ``GpuCollector`` (watchdog and report).
Input: the backend, the GPU's NVML index and the tick's monotonic time. Output: an ``Outcome``:
the GPU's samples (catalog names, dcgm-exporter labels), its ``GpuSnapshot`` for job
attribution, and whether the GPU or NVML itself went away. The GPU's static facts
(``GpuFacts``) are published under the collector's lock as soon as they are known.

Capability probe: the first read of a GPU asks every reading once. Readings the GPU or driver
does not support (NotSupported, FunctionNotFound) are recorded, listed in the inventory
(``GpuFacts.unsupported``) and never asked again in this NVML session. Each reading runs on its
own cadence (``Reading.period``); in between, its last samples are sent again. Facts fixed by
the board (``STATIC`` readings: the temperature thresholds) are read with the probe, once per
session, and sent again every tick. Any other error skips that reading, logged once per (GPU,
reading, error), and a static one is tried again after ``STATIC_RETRY_SECONDS``; glitched values
(utilization outside 0-100 %, temperatures above 200 C) are dropped.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
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
from agent.collectors.gpu.readings import (
    DRIVER_UNRESPONSIVE,
    DRIVER_VERSION_LABEL,
    GPU_UP,
    GPU_UTIL,
    POWER_USAGE,
    READINGS,
    STATIC,
    STATIC_RETRY_SECONDS,
    TOTAL_ENERGY,
    Reading,
)
from agent.collectors.gpu.snapshot import GpuSnapshot
from agent.wire.schema import GpuFacts

_log = logging.getLogger(__name__)

_T = TypeVar("_T")

# Pseudo-readings: calls made for job attribution, not turned into metrics.
PROCESSES = "running_processes"
PROCESS_UTILIZATION = "process_utilization"


@dataclass
class Outcome:
    """What one read of a GPU produced."""

    samples: list[Sample]
    snapshot: GpuSnapshot
    lost: NvmlError | None = None
    unavailable: NvmlUnavailable | None = None


class GpuSampler:
    """What is known about one GPU during an NVML session, and how it is read.

    Everything but ``labels`` and ``facts`` is touched only by the GPU's worker while a read is
    outstanding, and by the collector only between reads.

    Args:
        backend: the NVML seam.
        index: the GPU's NVML index.
        hostname: value of the ``Hostname`` label.
        driver_version: the session's driver version, for the driver-version label.
        lock: the collector's lock, under which ``facts`` is published.
        track_processes: also read the GPU's processes into the snapshot.
        wall_clock: wall-clock seconds, for the per-process utilization window.
    """

    def __init__(
        self,
        backend: NvmlBackend,
        index: int,
        hostname: str,
        driver_version: str | None,
        lock: threading.Lock,
        *,
        track_processes: bool,
        wall_clock: Callable[[], float],
    ) -> None:
        self.index = index
        self._backend = backend
        self._hostname = hostname
        self._driver_version = driver_version
        self._lock = lock
        self._track_processes = track_processes
        self._wall = wall_clock
        self.labels = gpu_labels(index, hostname, driver_version)
        self.facts: GpuFacts | None = None  # None until identity and probe are done
        self._unsupported: set[str] = set()
        self._errors: dict[str, str] = {}  # reading -> last logged error
        self._due: dict[str, float] = {}  # reading -> next monotonic read
        self._cache: dict[str, tuple[float, list[Sample]]] = {}
        self._process_since_us = 0

    def read(self, mono: float) -> Outcome:
        """Identify the GPU if needed, then read what is due (the first read is the probe)."""
        try:
            identity = self._identify() if self.facts is None else None
            samples = self._read_due(mono)
            snapshot = self._snapshot(mono)
        except NvmlUnavailable as exc:
            return Outcome([], GpuSnapshot(self.index, "", "", mono, up=False), unavailable=exc)
        except NvmlGpuLost as exc:
            self._cache.clear()
            self._due.clear()
            labels = self.labels
            down = [Sample(GPU_UP, labels, 0.0), Sample(DRIVER_UNRESPONSIVE, labels, 0.0)]
            snapshot = GpuSnapshot(self.index, labels["UUID"], labels["pci_bus_id"], mono, up=False)
            return Outcome(down, snapshot, lost=exc)
        if identity is not None:
            self._publish_facts(
                identity.model_copy(update={"unsupported": sorted(self._unsupported)})
            )
            if self._unsupported:
                _log.info(
                    "GPU %d (%s): not supported here, not collected: %s",
                    self.index,
                    identity.uuid,
                    ", ".join(sorted(self._unsupported)),
                )
        elif self.facts is not None and len(self.facts.unsupported) != len(self._unsupported):
            self._publish_facts(
                self.facts.model_copy(update={"unsupported": sorted(self._unsupported)})
            )
        return Outcome(samples, snapshot)

    def _publish_facts(self, facts: GpuFacts) -> None:
        with self._lock:
            self.facts = facts

    def _identify(self) -> GpuFacts:
        """Read the GPU's static facts and set its labels.

        Returns:
            The facts, without the probe's result (``unsupported``) yet.

        Raises:
            NvmlGpuLost: the GPU does not answer.
            NvmlUnavailable: NVML stopped working.
        """
        index, backend = self.index, self._backend
        try:
            uuid = backend.uuid(index)
        except (NvmlGpuLost, NvmlUnavailable):
            raise
        except NvmlError as exc:
            raise NvmlGpuLost(f"UUID unreadable: {exc}", code=exc.code) from exc
        model = self._optional("name", lambda: backend.name(index)) or ""
        bus = self._optional("pci_bus_id", lambda: backend.pci_bus_id(index)) or ""
        minor = self._optional("minor_number", lambda: backend.minor_number(index))
        serial = self._optional("serial", lambda: backend.serial(index))
        vbios = self._optional("vbios_version", lambda: backend.vbios_version(index))
        memory = self._optional("memory_info", lambda: backend.memory_info(index))
        device = "" if minor is None else f"nvidia{minor}"
        self.labels = gpu_labels(
            index, self._hostname, self._driver_version, uuid, bus, device, model
        )
        self._cache.clear()
        self._due.clear()
        return GpuFacts(
            index=index,
            uuid=uuid,
            model=model,
            pci_bus_id=bus,
            serial=serial,
            vbios_version=vbios,
            memory_total_bytes=None if memory is None else memory.total_bytes,
        )

    def _optional(self, call: str, read: Callable[[], _T]) -> _T | None:
        """An identity fact that may be missing: None unless the GPU is lost or NVML is gone."""
        try:
            return read()
        except (NvmlGpuLost, NvmlUnavailable):
            raise
        except (NvmlNotSupported, NvmlFunctionNotFound):
            return None
        except NvmlError as exc:
            self.note_error(f"identity {call}", exc)
            return None

    def _read_due(self, mono: float) -> list[Sample]:
        """Read the readings that are due; return every supported reading's latest samples."""
        samples = [Sample(GPU_UP, self.labels, 1.0), Sample(DRIVER_UNRESPONSIVE, self.labels, 0.0)]
        for reading in READINGS:
            if reading.name in self._unsupported:
                continue
            if mono >= self._due.get(reading.name, -math.inf):
                self._refresh(reading, mono)
            cached = self._cache.get(reading.name)
            if cached is not None:
                samples.extend(cached[1])
        return samples

    def _refresh(self, reading: Reading, mono: float) -> None:
        """Read one reading into the cache (dropping the old values if it fails)."""
        self._due[reading.name] = mono + reading.period
        values = self._guarded(reading.name, lambda: reading.read(self._backend, self.index))
        if values is None:
            self._cache.pop(reading.name, None)
            if reading.period == STATIC and reading.name not in self._unsupported:
                self._due[reading.name] = mono + STATIC_RETRY_SECONDS  # a passing failure
            return
        labels = self.labels
        fresh: list[Sample] = []
        for metric, value, extra in values:
            if value is None:
                _log.debug("GPU %d: dropped out-of-range %s", self.index, metric)
            else:
                fresh.append(Sample(metric, {**labels, **extra} if extra else labels, value))
        self._cache[reading.name] = (mono, fresh)

    def _guarded(self, name: str, call: Callable[[], _T]) -> _T | None:
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
            self._unsupported.add(name)
            _log.debug("GPU %d: %s is not supported (%s)", self.index, name, exc)
            return None
        except NvmlError as exc:
            self.note_error(name, exc)
            return None
        if self._errors.pop(name, None) is not None:
            _log.info("GPU %d: %s is readable again", self.index, name)
        return result

    def _snapshot(self, mono: float) -> GpuSnapshot:
        labels = self.labels
        energy_at, energy = self._cached(TOTAL_ENERGY)
        processes: tuple[GpuProcess, ...] = ()
        utilization: tuple[ProcessUtilization, ...] = ()
        if self._track_processes:
            processes, utilization = self._read_processes()
        return GpuSnapshot(
            index=self.index,
            uuid=labels["UUID"],
            pci_bus_id=labels["pci_bus_id"],
            monotonic=mono,
            up=True,
            utilization_percent=self._cached(GPU_UTIL)[1],
            power_w=self._cached(POWER_USAGE)[1],
            energy_mj=None if energy is None else int(energy),
            energy_monotonic=energy_at,
            processes=processes,
            process_utilization=utilization,
        )

    def _read_processes(
        self,
    ) -> tuple[tuple[GpuProcess, ...], tuple[ProcessUtilization, ...]]:
        index, backend = self.index, self._backend
        processes: tuple[GpuProcess, ...] = ()
        if PROCESSES not in self._unsupported:
            found = self._guarded(PROCESSES, lambda: backend.running_processes(index))
            processes = tuple(found or ())
        utilization: tuple[ProcessUtilization, ...] = ()
        if processes and PROCESS_UTILIZATION not in self._unsupported:
            since = self._process_since_us or int((self._wall() - 1.0) * 1e6)
            found_util = self._guarded(
                PROCESS_UTILIZATION, lambda: backend.process_utilization(index, since)
            )
            utilization = tuple(found_util or ())
            if utilization:
                self._process_since_us = max(sample.timestamp_us for sample in utilization)
        return processes, utilization

    def note_error(self, reading: str, exc: NvmlError) -> None:
        """Log a failed reading once per (GPU, reading, error) until the error changes."""
        key = f"{type(exc).__name__}: {exc}"
        if self._errors.get(reading) != key:
            self._errors[reading] = key
            _log.warning(
                "GPU %d: %s failed, skipped until it recovers: %s", self.index, reading, key
            )

    def _cached(self, metric: str) -> tuple[float | None, float | None]:
        """Returns: (when read, value) of an unlabelled metric in the cache, or Nones."""
        for read_at, samples in self._cache.values():
            for sample in samples:
                if sample.name == metric:
                    return read_at, sample.value
        return None, None


def gpu_labels(
    index: int,
    hostname: str,
    driver_version: str | None,
    uuid: str = "",
    bus: str = "",
    device: str = "",
    model: str = "",
) -> dict[str, str]:
    """Returns: dcgm-exporter's label set for one GPU."""
    return {
        "gpu": str(index),
        "UUID": uuid,
        "pci_bus_id": bus,
        "device": device,
        "modelName": model,
        "Hostname": hostname,
        DRIVER_VERSION_LABEL: driver_version or "",
    }
