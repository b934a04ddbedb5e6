"""The notifier: the one seam the rule evaluator calls, ``Notifier.send(alerts, now)``.

The evaluator decides what is due (Prometheus' ``needs_sending``); the notifier hands it to
every configured Alertmanager (``AlertmanagerOutbox``, each its own queue and thread) and to
the direct receivers (``DirectNotifier``: an in-process Alertmanager
for sites without one: dispatcher, pipeline, notification log, silences; on several
replicas only the leader's flushes send, once, see ``pipeline.py``). ``send`` only
queues: it never blocks the evaluation on a receiver. Threads start in ``start`` and stop in
``close``; a failed flush is logged and counted, and the worker carries on.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial

from server.notify.alertmanager import AlertmanagerOutbox
from server.notify.dispatch import Dispatcher, Flush
from server.notify.model import AlertLike, Notice, as_notice
from server.notify.nflog import NotificationLog
from server.notify.pipeline import Pipeline
from server.notify.route import Route

_log = logging.getLogger(__name__)

MAX_PARALLEL_FLUSHES = 4
GC_INTERVAL_S = 600.0


class DirectNotifier:
    """Groups notices and runs the pipeline of each group when it is due, on its own thread."""

    def __init__(
        self,
        root: Route,
        pipeline: Pipeline,
        nflog: NotificationLog,
        *,
        clock: Callable[[], float] = time.time,
        stop: threading.Event | None = None,
    ) -> None:
        self._dispatcher = Dispatcher(root)
        self._pipeline = pipeline
        self._nflog = nflog
        self._clock = clock
        self._wake = threading.Condition()
        self._stop = stop or threading.Event()
        self._pool = ThreadPoolExecutor(MAX_PARALLEL_FLUSHES, thread_name_prefix="notify-flush")
        self._thread: threading.Thread | None = None
        self._last_gc = 0.0

    def send(self, notices: Sequence[Notice], now: float) -> None:
        with self._wake:
            self._dispatcher.insert(notices, now)
            self._wake.notify()

    def groups(self) -> list[tuple[str, int]]:
        with self._wake:
            return self._dispatcher.groups()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="notify-dispatch", daemon=True)
        self._thread.start()

    def close(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        with self._wake:
            self._wake.notify_all()
        if self._thread is not None:
            self._thread.join(timeout_s)
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._tick()
            except Exception:  # noqa: BLE001 (the dispatcher thread must survive anything)
                _log.exception("notification dispatch failed; carrying on")
                self._stop.wait(1.0)

    def _tick(self) -> None:
        with self._wake:
            now = self._clock()
            flushes = self._dispatcher.due(now)
            firing = self._dispatcher.firing(now) if flushes else []
            if not flushes:
                due = self._dispatcher.next_due()
                wait = 60.0 if due is None else max(0.0, min(due - now, 60.0))
                self._wake.wait(wait)
                return
        for flush in flushes:
            future = self._pool.submit(self._pipeline.run, flush, firing)
            future.add_done_callback(partial(self._finished, flush))
        if now - self._last_gc > GC_INTERVAL_S:
            self._last_gc = now
            self._nflog.gc(now)

    def _finished(self, flush: Flush, future: Future[bool]) -> None:
        success = False
        if future.cancelled():
            pass
        elif (error := future.exception()) is not None:
            _log.error("notification of group %s failed: %r", flush.group_key, error)
        else:
            success = future.result()
        with self._wake:
            self._dispatcher.done(flush, success=success)
            self._wake.notify()


class Notifier:
    """Every notification path, behind one ``send``."""

    def __init__(
        self, outboxes: Sequence[AlertmanagerOutbox], direct: DirectNotifier | None = None
    ) -> None:
        self.outboxes = list(outboxes)
        self.direct = direct

    def send(self, alerts: Sequence[AlertLike | Notice], now: float) -> None:
        """Queue ``alerts`` (those the evaluator found due this round, ``now`` in Unix
        seconds) for every path; never blocks on a receiver."""
        if not alerts:
            return
        notices = [as_notice(alert) for alert in alerts]
        for outbox in self.outboxes:
            outbox.put(notices)
        if self.direct is not None:
            self.direct.send(notices, now)

    def start(self) -> None:
        for outbox in self.outboxes:
            outbox.start()
        if self.direct is not None:
            self.direct.start()

    def close(self) -> None:
        for outbox in self.outboxes:
            outbox.close()
        if self.direct is not None:
            self.direct.close()
