"""Remote benchmark runs: orders from the push answer in, reports to the server out.

Stage: shipper (``Ack.bench``) -> ``BenchRunner.offer`` -> job (compute in a subprocess) ->
``Reporter``. The server keeps at most one open request per node and repeats it in every push
answer until it has the final report, so ``offer`` is called often with the same order and
must be cheap and idempotent: it only hands the order to the runner's thread.

Two threads, each its own supervisor (an exception is logged, counted, and the loop goes on):

- ``dcmon-bench`` runs one order at a time. GPUs busy with compute processes (and no
  ``force``): it reports ``waiting`` with the reason and tries again every
  ``busy_retry_seconds`` until the order expires, then reports ``refused``. An order that
  expired before it could start is refused.
- ``dcmon-bench-report`` delivers: the latest progress (coalesced, at most every
  ``progress_interval_seconds``; lost progress is harmless) and the final reports, which are
  written to ``outbox_dir`` first and deleted only once the server has them or says it no
  longer wants them, so a final result survives a server outage and an agent restart.

A run the agent did not finish (it was stopped or crashed mid-run) leaves a marker in the
outbox; the next start turns it into a ``failed`` report, so the server never waits on a run
nobody is doing. A ``gone`` answer to a progress report (the request was cancelled or expired
on the server) stops the run. An order with ``cancel`` stops the run it names, or, when it is
not running here, is answered ``cancelled`` at once.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

from pydantic import ValidationError

from agent.backoff import Backoff
from agent.statefile import ensure_directory, write_atomically
from agent.transport.bench import Reporter
from agent.wire.bench import BenchOrder, BenchProgress, BenchReport, BenchRun

_log = logging.getLogger(__name__)
KNOWN_ORDERS = 1000  # recently finished order ids, so a repeated order is not run twice
_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # ids become file names in the outbox
_RUNNING_SUFFIX = ".running"
_REPORT_SUFFIX = ".json"


@dataclass(frozen=True)
class JobResult:
    """What a job came to: a final state, why, and the judged tree (``BenchRun``'s shape)."""

    state: Literal["done", "failed", "refused", "cancelled"]
    message: str = ""
    busy: bool = False  # refused because the GPUs run compute processes (may pass)
    result: dict[str, Any] | None = None


class Job(Protocol):
    def __call__(
        self,
        order: BenchOrder,
        progress: Callable[[BenchProgress], None],
        cancel: threading.Event,
    ) -> JobResult:
        """Run ``order`` to the end, or until ``cancel`` is set."""
        ...


@dataclass(frozen=True)
class RunnerStats:
    runs_total: int
    reports_sent_total: int
    report_failures_total: int
    restarts_total: int


class BenchRunner:
    def __init__(
        self,
        reporter: Reporter,
        job: Job,
        outbox_dir: Path,
        *,
        wall: Callable[[], float] = time.time,
        busy_retry_seconds: float = 30.0,
        progress_interval_seconds: float = 2.0,
        backoff: Backoff | None = None,
    ) -> None:
        self._reporter = reporter
        self._job = job
        self._outbox = outbox_dir
        self._wall = wall
        self._busy_retry = busy_retry_seconds
        self._progress_interval = progress_interval_seconds
        self._backoff = backoff or Backoff(2.0, 300.0)
        self._lock = threading.Condition()
        self._stopping = False
        self._next: BenchOrder | None = None
        self._current: str | None = None
        self._cancel = threading.Event()
        self._known: OrderedDict[str, None] = OrderedDict()
        self._progress: tuple[str, BenchReport] | None = None
        self._last_progress_sent = float("-inf")
        self._retry_at = 0.0
        self._threads: list[threading.Thread] = []
        self._runs = self._sent = self._failures = self._restarts = 0

    # -- the shipper's side -------------------------------------------------------------

    def offer(self, order: BenchOrder) -> None:
        """Hand over the node's open order from a push answer. Never blocks, never raises."""
        if not _ID.fullmatch(order.id):
            _log.warning("ignoring a benchmark order with an unusable id %r", order.id[:64])
            return
        with self._lock:
            if order.cancel:
                if order.id == self._current:
                    self._cancel.set()
                elif order.id not in self._known and not self._outboxed(order.id):
                    if self._next is not None and self._next.id == order.id:
                        self._next = None
                    self._finish(order.id, BenchReport(state="cancelled", message="cancelled"))
                return
            if order.id == self._current or order.id in self._known:
                return
            if self._outboxed(order.id):
                return
            if self._current is None:
                self._next = order
                self._lock.notify_all()

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        ensure_directory(self._outbox)
        self._recover()
        for name, target in (("dcmon-bench", self._run), ("dcmon-bench-report", self._deliver)):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, timeout: float = 10.0) -> None:
        """Cancel the running job (its worker is stopped) and end both threads. Final
        reports not yet delivered stay in the outbox for the next start."""
        with self._lock:
            self._stopping = True
            self._cancel.set()
            self._lock.notify_all()
        for thread in self._threads:
            thread.join(timeout)

    def stats(self) -> RunnerStats:
        return RunnerStats(self._runs, self._sent, self._failures, self._restarts)

    @property
    def current(self) -> str | None:
        return self._current

    # -- the runner thread ----------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._next is None and not self._stopping:
                    self._lock.wait()
                if self._stopping:
                    return
                order, self._next = self._next, None
                assert order is not None  # the wait above
                self._current = order.id
                self._cancel.clear()
            try:
                self._execute(order)
            except Exception as exc:  # noqa: BLE001 (the runner thread's supervisor)
                self._restarts += 1
                _log.exception("benchmark request %s failed unexpectedly", order.id)
                self._finish(order.id, BenchReport(state="failed", message=_text(exc)))
            finally:
                with self._lock:
                    self._current = None
                    self._progress = None
                self._marker(order.id).unlink(missing_ok=True)

    def _execute(self, order: BenchOrder) -> None:
        if order.expires_at and self._wall() > order.expires_at:
            message = "the request expired before the agent could start it"
            self._finish(order.id, BenchReport(state="refused", message=message))
            return
        write_atomically(self._marker(order.id), order.model_dump_json())
        _log.info("benchmark request %s: level %s", order.id, order.level)
        while True:
            self._runs += 1
            outcome = self._job(order, lambda p: self._progressed(order.id, p), self._cancel)
            if not outcome.busy or self._cancel.is_set():
                break
            if order.expires_at and self._wall() + self._busy_retry > order.expires_at:
                message = f"the GPUs stayed busy until the request expired: {outcome.message}"
                self._finish(order.id, BenchReport(state="refused", message=message))
                return
            waiting = BenchReport(state="waiting", message=outcome.message)
            self._post_progress(order.id, waiting, force=True)
            if self._cancel.wait(self._busy_retry):
                break
        if self._cancel.is_set() and outcome.state != "cancelled":
            self._finish(order.id, BenchReport(state="cancelled", message="cancelled"))
            return
        self._finish(order.id, _final(outcome))

    def _progressed(self, request_id: str, progress: BenchProgress) -> None:
        report = BenchReport(state="running", progress=progress)
        self._post_progress(request_id, report, force=progress.done == 0)

    def _post_progress(self, request_id: str, report: BenchReport, *, force: bool) -> None:
        with self._lock:
            self._progress = (request_id, report)
            if force:
                self._last_progress_sent = float("-inf")
            self._lock.notify_all()

    # -- the delivery thread --------------------------------------------------------------

    def _deliver(self) -> None:
        while True:
            try:
                if not self._deliver_due():
                    return
            except Exception:  # noqa: BLE001 (the delivery thread's supervisor)
                self._restarts += 1
                self._retry_at = time.monotonic() + self._backoff.next_delay()
                _log.exception("benchmark report delivery failed unexpectedly")

    def _deliver_due(self) -> bool:
        """Wait for something to send, send it. Returns: False once stopping."""
        with self._lock:
            while True:
                if self._stopping:
                    return False
                now = time.monotonic()
                pending = self._pending_finals()  # one directory listing per wake-up
                finals = pending if now >= self._retry_at else []
                progress = self._progress
                due = now - self._last_progress_sent >= self._progress_interval
                if finals or (progress is not None and due):
                    break
                waits = [self._retry_at - now] if pending else []
                if progress is not None:
                    waits.append(self._last_progress_sent + self._progress_interval - now)
                self._lock.wait(max(0.05, min(waits)) if waits else None)
            if progress is not None and due and not finals:
                self._progress = None
                self._last_progress_sent = now
        if finals:
            self._send_final(finals[0])
        elif progress is not None:
            request_id, report = progress
            delivery = self._reporter.report(request_id, report)
            self._count(delivery.outcome)
            if delivery.outcome == "gone" and self._current == request_id:
                _log.warning(
                    "the server no longer wants benchmark request %s (%s): stopping it",
                    request_id,
                    delivery.detail,
                )
                self._cancel.set()
        return True

    def _send_final(self, path: Path) -> None:
        request_id = path.name.removesuffix(_REPORT_SUFFIX)
        try:
            report = BenchReport.model_validate_json(path.read_bytes())
        except (OSError, ValidationError) as exc:
            _log.error("dropping unreadable benchmark report %s: %s", path, exc)
            path.unlink(missing_ok=True)
            return
        delivery = self._reporter.report(request_id, report)
        self._count(delivery.outcome)
        if delivery.outcome == "retry":
            delay = self._backoff.next_delay(delivery.retry_after)
            self._retry_at = time.monotonic() + delay
            _log.warning(
                "benchmark report %s not delivered, retrying in %.0fs: %s",
                request_id,
                delay,
                delivery.detail,
            )
            return
        self._backoff.reset()
        if delivery.outcome == "gone":
            _log.warning("server refused benchmark report %s: %s", request_id, delivery.detail)
        else:
            _log.info("benchmark request %s: reported %s", request_id, report.state)
        path.unlink(missing_ok=True)

    # -- the outbox -------------------------------------------------------------------

    def _finish(self, request_id: str, report: BenchReport) -> None:
        """Keep the final report on disk and queue it for delivery."""
        write_atomically(self._report_path(request_id), report.model_dump_json(exclude_none=True))
        with self._lock:
            if self._progress is not None and self._progress[0] == request_id:
                self._progress = None
            self._known[request_id] = None
            while len(self._known) > KNOWN_ORDERS:
                self._known.popitem(last=False)
            self._retry_at = 0.0
            self._lock.notify_all()

    def _recover(self) -> None:
        """Runs a previous process left unfinished become failed reports."""
        for marker in sorted(self._outbox.glob("*" + _RUNNING_SUFFIX)):
            request_id = marker.name.removesuffix(_RUNNING_SUFFIX)
            message = "the agent stopped during the run; its results are lost"
            self._finish(request_id, BenchReport(state="failed", message=message))
            marker.unlink(missing_ok=True)

    def _pending_finals(self) -> list[Path]:
        return sorted(self._outbox.glob("*" + _REPORT_SUFFIX))

    def _outboxed(self, request_id: str) -> bool:
        return self._report_path(request_id).exists()

    def _report_path(self, request_id: str) -> Path:
        return self._outbox / f"{request_id}{_REPORT_SUFFIX}"

    def _marker(self, request_id: str) -> Path:
        return self._outbox / f"{request_id}{_RUNNING_SUFFIX}"

    def _count(self, outcome: str) -> None:
        if outcome == "retry":
            self._failures += 1
        else:
            self._sent += 1


def _final(outcome: JobResult) -> BenchReport:
    result = None
    if outcome.result is not None:
        try:
            result = BenchRun.model_validate(outcome.result)
        except ValidationError as exc:
            return BenchReport(
                state="failed", message=f"the result did not match the wire schema: {exc}"[:2000]
            )
    return BenchReport(state=outcome.state, message=outcome.message[:2000], result=result)


def _text(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:2000]
