"""The GPU collector: NVML readings -> samples with dcgm-exporter names, plus the GPU inventory.

Stage: ``NvmlBackend`` -> (this) -> samples (catalog ``agent/wire/catalog/gpu.toml``). What is
read each tick, and how it converts to catalog units, is the table in ``readings.py``. Every GPU
series carries dcgm-exporter's labels ``gpu, UUID, pci_bus_id, device, modelName, Hostname``.

Failure policy (the design's "missing is absent"):

- NVML unavailable (no driver, driver not loaded, version mismatch): one WARNING, no samples,
  ``inventory().status`` says why, and ``init`` is retried quietly every ``init_retry_seconds``.
- A reading the GPU does not support (NotSupported, or FunctionNotFound from the driver) is
  learned on its first failure and never asked again for that GPU in this NVML session.
- A lost GPU reports only ``dcmon_gpu_up=0`` until it answers again; the others carry on.
- Any other error skips that reading for the tick, logged once per (GPU, reading, error).
- Glitched values (utilization outside 0-100 %, temperatures above 200 C) are dropped.

Static facts (identity, memory size) are read once, when NVML starts.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from agent.collectors.base import Sample
from agent.collectors.gpu.backend import (
    NvmlBackend,
    NvmlError,
    NvmlFunctionNotFound,
    NvmlGpuLost,
    NvmlNotSupported,
    NvmlUnavailable,
)
from agent.collectors.gpu.readings import GPU_UP, READINGS, Reading, Values
from agent.wire.schema import MAX_GPUS_PER_NODE, GpuFacts

_log = logging.getLogger(__name__)

_T = TypeVar("_T")


@dataclass(frozen=True)
class GpuInventory:
    """What the node's GPUs are, for the batch inventory.

    ``status`` is empty while GPU data flows, else a reason for people (e.g. "no NVIDIA
    driver: NVML library not found").
    """

    driver_version: str | None
    gpus: tuple[GpuFacts, ...]
    status: str


@dataclass
class _Gpu:
    """What the collector knows about one GPU during an NVML session."""

    index: int
    labels: dict[str, str]
    facts: GpuFacts | None = None  # None until its identity could be read
    lost: bool = False
    unsupported: set[str] = field(default_factory=set)
    errors: dict[str, str] = field(default_factory=dict)  # reading -> last logged error


class GpuCollector:
    """Collector ``gpu``: per-GPU metrics from an ``NvmlBackend``.

    Args:
        backend: the NVML seam (real, simulated or scripted).
        hostname: value of the ``Hostname`` label on every series.
        init_retry_seconds: how long to wait before retrying NVML after it failed to start.
        monotonic: the clock that schedules retries, in seconds.
    """

    name = "gpu"

    def __init__(
        self,
        backend: NvmlBackend,
        hostname: str,
        init_retry_seconds: float = 300.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._backend = backend
        self._hostname = hostname
        self._retry_seconds = init_retry_seconds
        self._monotonic = monotonic
        self._started = False
        self._next_attempt: float | None = None  # None: never tried
        self._failures_reported = False
        self._driver_version: str | None = None
        self._gpus: list[_Gpu] = []
        self._status = ""

    def collect(self, now: float) -> list[Sample]:
        """Read every GPU once.

        Args:
            now: the tick's wall-clock time (unused: NVML readings are "now").

        Returns:
            The samples; empty while NVML is unavailable.
        """
        if not self._ensure_started():
            return []
        samples: list[Sample] = []
        for gpu in self._gpus:
            try:
                samples.extend(self._collect_gpu(gpu))
            except NvmlUnavailable as exc:
                self._lose_session(exc)
                return []
        return samples

    def inventory(self) -> GpuInventory:
        """Returns: driver version, static facts of each identified GPU, and the status."""
        self._ensure_started()
        facts = tuple(gpu.facts for gpu in self._gpus if gpu.facts is not None)
        return GpuInventory(self._driver_version, facts, self._status)

    def unsupported_readings(self) -> dict[int, frozenset[str]]:
        """Returns: per GPU index, the readings (``READING_NAMES``) learned to be unsupported."""
        return {gpu.index: frozenset(gpu.unsupported) for gpu in self._gpus}

    def close(self) -> None:
        """End the NVML session; the collector then stays idle."""
        self._next_attempt = math.inf
        if self._started:
            self._started = False
            self._shutdown_quietly()

    # Session

    def _ensure_started(self) -> bool:
        if self._started:
            return True
        if self._next_attempt is not None and self._monotonic() < self._next_attempt:
            return False
        return self._start()

    def _start(self) -> bool:
        try:
            self._backend.init()
        except NvmlError as exc:
            self._start_failed(exc)
            return False
        try:
            count = self._backend.device_count()
        except NvmlError as exc:
            self._shutdown_quietly()
            self._start_failed(exc)
            return False
        try:
            self._driver_version = self._backend.driver_version()
        except NvmlError as exc:
            _log.debug("NVML driver version unreadable: %s", exc)
            self._driver_version = None
        if count > MAX_GPUS_PER_NODE:
            _log.warning("NVML reports %d GPUs; monitoring the first %d", count, MAX_GPUS_PER_NODE)
            count = MAX_GPUS_PER_NODE
        self._gpus = [_Gpu(index, self._labels(index)) for index in range(count)]
        try:
            for gpu in self._gpus:
                self._identify(gpu)
        except NvmlUnavailable as exc:
            self._lose_session(exc)
            return False
        self._started = True
        self._status = "" if count else "NVML reports no NVIDIA GPU"
        _log.info("NVML started: driver %s, %d GPU(s)", self._driver_version or "unknown", count)
        self._failures_reported = False
        self._next_attempt = None
        return True

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
        self._gpus = []
        self._driver_version = None
        self._shutdown_quietly()
        self._start_failed(exc)

    def _shutdown_quietly(self) -> None:
        try:
            self._backend.shutdown()
        except NvmlError as exc:
            _log.debug("NVML shutdown failed: %s", exc)

    # Per GPU

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
        }

    def _identify(self, gpu: _Gpu) -> bool:
        """Read the GPU's static facts once. Returns: whether its identity is now known.

        Raises:
            NvmlUnavailable: NVML stopped working.
        """
        index, backend = gpu.index, self._backend
        try:
            uuid = backend.uuid(index)
            model = self._optional(gpu, "name", lambda: backend.name(index)) or ""
            bus = self._optional(gpu, "pci_bus_id", lambda: backend.pci_bus_id(index)) or ""
            minor = self._optional(gpu, "minor_number", lambda: backend.minor_number(index))
            serial = self._optional(gpu, "serial", lambda: backend.serial(index))
            vbios = self._optional(gpu, "vbios_version", lambda: backend.vbios_version(index))
            memory = self._optional(gpu, "memory_info", lambda: backend.memory_info(index))
        except NvmlUnavailable:
            raise
        except NvmlError as exc:
            self._mark_lost(gpu, exc)
            return False
        device = "" if minor is None else f"nvidia{minor}"
        gpu.labels = self._labels(index, uuid, bus, device, model)
        gpu.facts = GpuFacts(
            index=index,
            uuid=uuid,
            model=model,
            pci_bus_id=bus,
            serial=serial,
            vbios_version=vbios,
            memory_total_bytes=None if memory is None else memory.total_bytes,
        )
        return True

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

    def _collect_gpu(self, gpu: _Gpu) -> list[Sample]:
        if gpu.facts is None and not self._identify(gpu):
            return [self._sample(gpu, GPU_UP, 0.0)]
        try:
            values = [
                value
                for reading in READINGS
                if reading.name not in gpu.unsupported
                for value in self._read(gpu, reading)
            ]
        except NvmlGpuLost as exc:
            self._mark_lost(gpu, exc)
            return [self._sample(gpu, GPU_UP, 0.0)]
        if gpu.lost:
            gpu.lost = False
            _log.info("GPU %d (%s) answers again", gpu.index, gpu.labels["UUID"])
        samples = [self._sample(gpu, GPU_UP, 1.0)]
        for metric, value, extra in values:
            if value is None:
                _log.debug("GPU %d: dropped out-of-range %s", gpu.index, metric)
            elif extra:
                samples.append(Sample(metric, {**gpu.labels, **extra}, value))
            else:
                samples.append(self._sample(gpu, metric, value))
        return samples

    def _read(self, gpu: _Gpu, reading: Reading) -> Values:
        """One reading of one GPU; an unsupported or failed reading yields nothing.

        Raises:
            NvmlGpuLost: the GPU stopped answering.
            NvmlUnavailable: NVML stopped working.
        """
        try:
            values = reading.read(self._backend, gpu.index)
        except (NvmlGpuLost, NvmlUnavailable):
            raise
        except (NvmlNotSupported, NvmlFunctionNotFound) as exc:
            gpu.unsupported.add(reading.name)
            _log.info(
                "GPU %d: %s is not supported (%s); not collected", gpu.index, reading.name, exc
            )
            return []
        except NvmlError as exc:
            self._note_error(gpu, reading.name, exc)
            return []
        if gpu.errors.pop(reading.name, None) is not None:
            _log.info("GPU %d: %s is readable again", gpu.index, reading.name)
        return values

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

    def _sample(self, gpu: _Gpu, metric: str, value: float) -> Sample:
        return Sample(metric, dict(gpu.labels), value)
