"""The agent daemon: tick on a monotonic clock, collect, batch, spool, wake the shipper.

Stage: collectors -> batch -> spool (-> shipper -> transport). Synchronous and boring: one
wall-clock timestamp per tick, ticks on a fixed monotonic grid (a slow tick skips the slots it
missed rather than bunching up), and this loop is the only place that catches every exception
a collector may raise, so one broken collector never stops the others.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from agent.batch import BatchBuilder, CollectorResult, TickBatch
from agent.clock import Clock
from agent.collectors.base import Collector
from agent.compact import CompactForms
from agent.inventory import InventoryTracker
from agent.sequence import Sequence as BatchSequence
from agent.shipper import Shipper
from agent.spool.base import Spool, SpooledBatch
from agent.systemd import Notifier
from agent.wire.schema import Batch

_log = logging.getLogger(__name__)


class Agent:
    """Runs the collectors every ``interval_seconds`` and spools the batches."""

    def __init__(
        self,
        collectors: Sequence[Collector],
        builder: BatchBuilder,
        sequence: BatchSequence,
        inventory: InventoryTracker,
        spool: Spool,
        shipper: Shipper,
        clock: Clock,
        notifier: Notifier,
        interval_seconds: float,
        events: Callable[[], Sequence[Any]] | None = None,
        jobs: Callable[[], Sequence[Any]] | None = None,
        compact: CompactForms | None = None,
    ) -> None:
        """Args:
        compact: hears each spooled tick, to keep its compact form for the shipper (None:
            every batch goes in full).
        """
        self._collectors = list(collectors)
        self._builder = builder
        self._sequence = sequence
        self._inventory = inventory
        self._spool = spool
        self._shipper = shipper
        self._clock = clock
        self._notifier = notifier
        self._interval = interval_seconds
        self._events = events
        self._jobs = jobs
        self._compact = compact
        self._errors: dict[str, str] = {}  # last error per collector: log once, and recovery
        self.last_tick_seconds: float | None = None

    def tick(self) -> Batch:
        """Collect once, spool the batch and wake the shipper.

        Returns:
            The batch that was spooled, as a model (``step`` is the same without it).
        """
        return self.step().to_batch()

    def step(self) -> TickBatch:
        """Collect once, spool the batch and wake the shipper: what ``run`` does each tick.

        Returns:
            The batch that was spooled, as plain data.
        """
        started = self._clock.monotonic()
        now = self._clock.time()
        results = [self._collect(collector, now) for collector in self._collectors]
        batch = self._builder.tick(
            self._sequence.next(),
            now,
            results,
            self._inventory.due(started),
            events=self._drain("events", self._events),
            jobs=self._drain("jobs", self._jobs),
        )
        self._spool.append(SpooledBatch(batch.seq, batch.payload(), started))
        if self._compact is not None:
            self._compact.offer(batch)  # before the shipper is woken for it
        self._shipper.notify()
        self.last_tick_seconds = self._clock.monotonic() - started
        return batch

    def run(self, stop: threading.Event) -> None:
        """Tick until ``stop`` is set. Sends READY after the first tick, WATCHDOG every tick."""
        next_tick = self._clock.monotonic()
        ready = False
        while not stop.is_set():
            try:
                self.step()
            except Exception:  # noqa: BLE001 (the per-tick supervisor)
                _log.exception("tick failed; trying again at the next interval")
            if not ready:
                self._notifier.ready(f"collecting every {self._interval:g}s")
                ready = True
            self._notifier.watchdog()
            next_tick += self._interval
            now = self._clock.monotonic()
            if now > next_tick:
                missed = int((now - next_tick) // self._interval) + 1
                _log.warning(
                    "tick took longer than the %gs interval; skipping %d slot(s)",
                    self._interval,
                    missed,
                )
                next_tick += missed * self._interval
            self._sleep_until(next_tick, stop)

    def _sleep_until(self, deadline: float, stop: threading.Event) -> None:
        """Sleep until the next tick; keep the systemd watchdog fed when ticks are far apart."""
        watchdog = self._notifier.watchdog_seconds
        while not stop.is_set():
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                return
            step = remaining if watchdog is None else min(remaining, watchdog / 2)
            if stop.wait(step):
                return
            self._notifier.watchdog()

    def _drain(self, what: str, source: Callable[[], Sequence[Any]] | None) -> Sequence[Any]:
        """Take this tick's records from a source; a failing source costs only its records."""
        if source is None:
            return ()
        try:
            return source()
        except Exception as exc:  # noqa: BLE001 (one broken source must not stop the tick)
            error = f"{type(exc).__name__}: {exc}"
            if self._errors.get(what) != error:
                _log.warning("%s source failed: %s", what, error)
                self._errors[what] = error
            return ()

    def _collect(self, collector: Collector, now: float) -> CollectorResult:
        started = time.perf_counter()
        try:
            samples = list(collector.collect(now))
        except Exception as exc:  # noqa: BLE001 (one collector must not stop the others)
            error = f"{type(exc).__name__}: {exc}"
            if self._errors.get(collector.name) != error:
                _log.warning("collector %s failed: %s", collector.name, error)
                self._errors[collector.name] = error
            return CollectorResult(
                collector.name, [], False, time.perf_counter() - started, error[:1024]
            )
        if self._errors.pop(collector.name, None) is not None:
            _log.info("collector %s works again", collector.name)
        return CollectorResult(collector.name, samples, True, time.perf_counter() - started)
