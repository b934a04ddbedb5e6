"""The events collector: XID observations -> per-GPU XID counters and events for the batch.

Stage: sources (``KmsgReader``, ``NvmlEventSource``) -> (this) -> samples (catalog
``agent/wire/catalog/events.toml``) and ``XidEvent``s (``drain_events``, the batch's
``events``). Each tick it drains every source, resolves the GPU through an injected callable
(kmsg names a GPU by a short PCI bus id, NVML by index and long bus id), classifies the code with
the XID table, and:

- counts it per GPU and code: ``dcmon_gpu_xid_errors_total{…, xid}`` (a raw counter). A
  GPU's counter for a code is born at zero: the tick of the code's first XID reports it at 0
  and the count follows from the next tick, so ``increase()`` sees the first XID too (a series
  that appeared at 1 would show no increase, and the alert on it would never fire);
- reports the last code per GPU: ``DCGM_FI_DEV_XID_ERRORS`` (as dcgm-exporter does), from the
  start: every GPU the ``gpus`` callable lists reports 0 until its first XID, so a dashboard or
  a rule on the gauge sees each GPU, not only those that have failed;
- queues an ``XidEvent`` for the next batch (bounded; the oldest are dropped and counted);
- calls ``on_fatal(event)`` when the code (or its root cause) is fatal for driver calls.

The same XID usually reaches both sources. An NVML report and a kmsg report of the same code on
the same GPU, drained in the same tick or within ``dedupe_seconds`` of each other, are one event
(paired one to one, so a burst seen by both sources stays a burst); the kmsg one is kept (its text
names the process) and takes the recovery action from NVML's if it has none. Two reports from the
same source are never merged: a driver repeating an XID is repeating it. When the twins land in
different ticks, the one already sent stands and the late one is dropped.

GPUs that cannot be resolved (e.g. one that fell off the bus before NVML saw it) are still
counted, labelled with what the source knew (the bus id) and empty values for the rest.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from agent.collectors.base import Sample
from agent.events.model import XidEvent, XidObservation, normalise_bus_id
from agent.events.xid import XidTable, load_xid_table
from agent.wire.schema import MAX_GPUS_PER_NODE

_log = logging.getLogger(__name__)

XID_ERRORS_TOTAL = "dcmon_gpu_xid_errors_total"
LAST_XID = "DCGM_FI_DEV_XID_ERRORS"

# The GPU label set of events.toml (dcgm-exporter's labels); every sample carries all of them.
GPU_LABEL_NAMES = (
    "gpu",
    "UUID",
    "pci_bus_id",
    "device",
    "modelName",
    "Hostname",
    "DCGM_FI_DRIVER_VERSION",
)

_MAX_MESSAGE = 1024
_MAX_SHORT_TEXT = 256
_MAX_HISTORY = 4096  # reports remembered for twin matching

GpuRef = int | str
"""An NVML index, or a PCI bus id in any spelling (``0000:65:00`` or ``00000000:65:00.0``)."""

GpuResolver = Callable[[GpuRef], Mapping[str, str] | None]
"""Maps a GPU reference to that GPU's labels (``gpu, UUID, pci_bus_id, …``), None if unknown."""


class XidSource(Protocol):
    """Anything that reports XIDs: drained once per tick, closed at shutdown."""

    @property
    def name(self) -> str: ...

    def poll(self, now: float) -> list[XidObservation]:
        """Returns: what the source saw since the last poll, without blocking."""
        ...

    def close(self) -> None: ...


def labels_resolver(gpus: Callable[[], Iterable[Mapping[str, str]]]) -> GpuResolver:
    """Returns: a resolver over the label dicts ``gpus()`` returns (e.g. the GPU collector's).

    An index matches the ``gpu`` label; a bus id matches ``pci_bus_id`` in canonical form.
    """

    def resolve(ref: GpuRef) -> Mapping[str, str] | None:
        wanted = str(ref) if isinstance(ref, int) else normalise_bus_id(ref)
        if wanted is None:
            return None
        for labels in gpus():
            if isinstance(ref, int):
                if labels.get("gpu") == wanted:
                    return labels
            elif normalise_bus_id(labels.get("pci_bus_id", "")) == wanted:
                return labels
        return None

    return resolve


@dataclass
class _Seen:
    """A report kept for matching its twin from the other source."""

    source: str
    key: tuple[str, int]
    time: float
    tick: int
    matched: bool = False
    pending: XidObservation | None = None  # set while not yet emitted (this tick only)


class EventsCollector:
    """Collector ``events``: XID counters and events from the XID sources.

    Args:
        sources: the XID sources (kmsg and/or NVML); closed by ``close``.
        resolve: maps a GPU reference to its labels (see ``labels_resolver``).
        hostname: ``Hostname`` label of GPUs the resolver does not know.
        gpus: the label sets of the node's GPUs (the GPU collector's), read each tick; each
            reports ``DCGM_FI_DEV_XID_ERRORS`` 0 until its first XID. None: only GPUs that had
            an XID report it.
        table: the XID table (default: the one shipped with dcmon).
        on_fatal: called with each event whose code is fatal for driver calls.
        dedupe_seconds: how far apart an NVML and a kmsg report of one XID may be.
        max_events: events held until ``drain_events``; the oldest are dropped beyond this.
        max_series: counter series kept; beyond this, new GPU/code pairs are not counted.
        history_seconds: how long a report waits for its twin from the other source.
    """

    name = "events"

    def __init__(
        self,
        sources: Sequence[XidSource],
        resolve: GpuResolver,
        hostname: str,
        *,
        gpus: Callable[[], Iterable[Mapping[str, str]]] | None = None,
        table: XidTable | None = None,
        on_fatal: Callable[[XidEvent], None] | None = None,
        dedupe_seconds: float = 5.0,
        max_events: int = 1000,
        max_series: int = 4096,
        history_seconds: float = 600.0,
    ) -> None:
        self._sources = list(sources)
        self._resolve = resolve
        self._hostname = hostname
        self._gpus = gpus
        self._table = table if table is not None else load_xid_table()
        self._on_fatal = on_fatal
        self._window = dedupe_seconds
        self._max_events = max_events
        self._max_series = max_series
        self._history = history_seconds
        self._seen: deque[_Seen] = deque()
        self._events: deque[XidEvent] = deque()
        self._dropped = 0
        self._counts: dict[tuple[tuple[tuple[str, str], ...], int], int] = {}
        # counts of counters created this tick: reported from the next one (born at zero)
        self._unborn: dict[tuple[tuple[tuple[str, str], ...], int], int] = {}
        self._last: dict[tuple[tuple[str, str], ...], int] = {}
        self._series_capped = False
        self._ticks = 0

    @property
    def dropped_events(self) -> int:
        """Events dropped, oldest first, because ``drain_events`` was not called in time."""
        return self._dropped

    def collect(self, now: float) -> list[Sample]:
        """Drain the sources and return the XID counters and last-XID gauges.

        Args:
            now: the tick's wall-clock Unix time in seconds.
        """
        self._ticks += 1
        for counter, count in self._unborn.items():
            self._counts[counter] += count
        self._unborn.clear()
        observations = [obs for source in self._sources for obs in source.poll(now)]
        # kmsg first, so that an NVML twin in the same tick is the one dropped.
        observations.sort(key=lambda obs: (obs.source != "kmsg", obs.time))
        self._forget_before(now - self._history)
        fresh: list[tuple[_Seen, dict[str, str]]] = []
        for obs in observations:
            labels = self._labels(obs)
            key = (normalise_bus_id(labels["pci_bus_id"]) or f"#{labels['gpu']}", obs.code)
            twin = self._twin(obs, key)
            if twin is not None:
                twin.matched = True
                if twin.pending is not None:
                    twin.pending = _merged(twin.pending, obs)
                continue
            seen = _Seen(obs.source, key, obs.time, self._ticks, pending=obs)
            self._seen.append(seen)
            fresh.append((seen, labels))
        dropped_before = self._dropped
        for seen, labels in fresh:
            assert seen.pending is not None
            self._emit(seen.pending, labels, now)
            seen.pending = None
        if self._dropped > dropped_before:
            _log.warning(
                "XID event queue full (%d): dropped the %d oldest event(s), %d so far",
                self._max_events,
                self._dropped - dropped_before,
                self._dropped,
            )
        return self._samples()

    def drain_events(self) -> list[XidEvent]:
        """Returns: the events since the last call, oldest first (for the next batch)."""
        events = list(self._events)
        self._events.clear()
        return events

    def close(self) -> None:
        """Close every source (stops the NVML thread)."""
        for source in self._sources:
            source.close()

    # Per observation

    def _labels(self, obs: XidObservation) -> dict[str, str]:
        """Returns: the GPU labels of the observation, complete (``GPU_LABEL_NAMES``)."""
        resolved: Mapping[str, str] | None = None
        if obs.pci_bus_id:
            resolved = self._resolve(obs.pci_bus_id)
        if resolved is None and obs.gpu_index is not None:
            resolved = self._resolve(obs.gpu_index)
        labels = {name: str((resolved or {}).get(name, "")) for name in GPU_LABEL_NAMES}
        if not labels["pci_bus_id"] and obs.pci_bus_id:
            labels["pci_bus_id"] = normalise_bus_id(obs.pci_bus_id) or obs.pci_bus_id
        if not labels["gpu"] and obs.gpu_index is not None:
            labels["gpu"] = str(obs.gpu_index)
        if not labels["Hostname"]:
            labels["Hostname"] = self._hostname
        return labels

    def _twin(self, obs: XidObservation, key: tuple[str, int]) -> _Seen | None:
        """Returns: an unmatched report of the same XID from the other source, close in time or
        drained in the same tick."""
        for seen in self._seen:
            if (
                not seen.matched
                and seen.key == key
                and seen.source != obs.source
                and (seen.tick == self._ticks or abs(seen.time - obs.time) <= self._window)
            ):
                return seen
        return None

    def _forget_before(self, horizon: float) -> None:
        while self._seen and self._seen[0].time < horizon:
            self._seen.popleft()
        while len(self._seen) > _MAX_HISTORY:
            self._seen.popleft()

    def _emit(self, obs: XidObservation, labels: dict[str, str], now: float) -> None:
        verdict = self._table.classify(obs.code, obs.root_cause, obs.recovery_action)
        gpu = labels["gpu"]
        event = XidEvent(
            time=obs.time if obs.time > 0 else now,
            source=obs.source,
            code=obs.code,
            gpu_index=int(gpu) if gpu.isdigit() and int(gpu) < MAX_GPUS_PER_NODE else None,
            uuid=labels["UUID"] or None,
            pci_bus_id=labels["pci_bus_id"] or None,
            pid=obs.pid,
            message=obs.message[:_MAX_MESSAGE],
            mnemonic=verdict.mnemonic[:_MAX_SHORT_TEXT],
            severity=verdict.severity,
            action=verdict.action[:_MAX_SHORT_TEXT],
        )
        self._count(labels, obs.code)
        if len(self._events) >= self._max_events:
            self._events.popleft()
            self._dropped += 1
        self._events.append(event)
        log = _log.warning if verdict.severity == "critical" else _log.info
        log(
            "GPU %s (%s): XID %d %s from %s; recommended action %s%s",
            gpu or "?",
            event.pci_bus_id or "bus id unknown",
            obs.code,
            verdict.mnemonic or "(not in the XID table)",
            obs.source,
            verdict.action,
            "; fatal for driver calls" if verdict.fatal_for_driver else "",
        )
        if verdict.fatal_for_driver and self._on_fatal is not None:
            self._on_fatal(event)

    def _count(self, labels: dict[str, str], code: int) -> None:
        series = tuple(labels.items())
        key = (series, code)
        if key not in self._counts and len(self._counts) >= self._max_series:
            if not self._series_capped:
                self._series_capped = True
                _log.warning(
                    "XID counters: %d series reached; new ones are not counted", self._max_series
                )
            return
        if key in self._counts and key not in self._unborn:
            self._counts[key] += 1
        else:
            self._counts.setdefault(key, 0)
            self._unborn[key] = self._unborn.get(key, 0) + 1
        self._last[series] = code

    def _samples(self) -> list[Sample]:
        samples = [
            Sample(XID_ERRORS_TOTAL, {**dict(series), "xid": str(code)}, float(count))
            for (series, code), count in self._counts.items()
        ]
        samples.extend(
            Sample(LAST_XID, dict(series), float(code)) for series, code in self._last.items()
        )
        for labels in self._gpus() if self._gpus is not None else ():
            series = self._complete(labels)
            if series not in self._last:
                samples.append(Sample(LAST_XID, dict(series), 0.0))
        return samples

    def _complete(self, labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
        """Returns: a GPU's labels as ``_labels`` makes them for an XID on it, as a key."""
        complete = {name: str(labels.get(name, "")) for name in GPU_LABEL_NAMES}
        if not complete["Hostname"]:
            complete["Hostname"] = self._hostname
        return tuple(complete.items())


def _merged(kept: XidObservation, twin: XidObservation) -> XidObservation:
    """Returns: ``kept`` (the kmsg report) completed with what only its NVML twin knew."""
    if kept.recovery_action is not None or twin.recovery_action is None:
        return kept
    return replace(kept, recovery_action=twin.recovery_action)
