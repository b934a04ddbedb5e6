"""The single writer: every database write goes through one thread, committed in groups.

Stage: ingest/maintenance -> storage. SQLite has one writer at a time, and its cost per
transaction is dominated by the commit (an fsync with ``synchronous=FULL``). So writers do not
open transactions themselves: they ``submit`` a job (a function of a connection) and wait. The
writer thread takes every job queued at that moment (up to ``max_group``), runs them all in
one transaction, commits once, and only then answers each job. If a job raises, the group is
rolled back and its jobs run again one transaction each, so only the failing job's caller gets
the exception and the others still commit (no savepoints on the hot path: failures are rare,
statements are not). An answer therefore means "durable" (or "failed, nothing of it kept"),
with one exception: a job whose commit callback (``on_commit``) fails is answered with that
error although its transaction committed, so its caller retries and the repeat is recognised.

Every job is answered, whatever happens to the thread: if it dies (an exception that is not an
``Exception`` escaped a job), the jobs of the group in flight get ``WriterDiedError`` (their
transaction was rolled back) and a new thread takes the queue. After ``max_restarts`` deaths
the writer stops: ``healthy`` turns false (``/readyz`` fails) and ``enqueue`` raises
``WriterClosedError`` at once, so no caller waits on a queue that nobody reads.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from contextlib import suppress
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from server.storage.db import IMMEDIATE

_log = logging.getLogger(__name__)

T = TypeVar("T")
Job = Callable[[Connection], Any]
_Item = tuple[Job, "Future[Any]"]
_ON_COMMIT = "dcmon_on_commit"


def on_commit(conn: Connection, callback: Callable[[], None]) -> None:
    """Run ``callback`` on the writer thread after this job's transaction commits.

    For in-memory state that must follow the database (series ids, caches): it is dropped if
    the job fails or the commit fails, so memory never holds what the database does not. If the
    callback raises, the job is answered with that error (see the module docstring).
    """
    conn.info.setdefault(_ON_COMMIT, []).append(callback)


class WriterClosedError(RuntimeError):
    """The writer was closed, or stopped after its thread died too often; the job was not run."""


class WriterDiedError(RuntimeError):
    """The writer thread died while this job's group ran; nothing of it was kept."""


class Writer:
    """Runs write jobs on one thread with group commits."""

    def __init__(self, engine: Engine, max_group: int = 128, max_restarts: int = 5) -> None:
        self._engine = engine
        self._max_group = max_group
        self.max_restarts = max_restarts
        self._queue: queue.SimpleQueue[_Item | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self._stopped: str | None = None
        self.commits = 0
        self.restarts = 0
        self.callback_failures = 0

    @property
    def healthy(self) -> bool:
        """Returns: whether the writer takes jobs (not closed, not stopped by its failures)."""
        return not self._closed and self._stopped is None

    def submit(self, job: Callable[[Connection], T]) -> T:
        """Run ``job`` in the next group transaction; returns its result once committed.

        Raises:
            Exception: what the job or its commit callback raised, or what the commit raised.
            WriterDiedError: the writer thread died while running it (nothing kept).
            WriterClosedError: the writer is closed or stopped.
        """
        return self.enqueue(job).result()

    def enqueue(self, job: Callable[[Connection], T]) -> Future[T]:
        """Queue ``job`` without waiting: jobs queued together can share one group commit.

        Returns: a future answered as ``submit`` would answer.

        Raises:
            WriterClosedError: the writer is closed or stopped.
        """
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise WriterClosedError("the database writer is closed")
            if self._stopped is not None:
                raise WriterClosedError(self._stopped)
            if self._thread is None:
                self._start()
            self._queue.put((job, future))
        return future

    def close(self) -> None:
        """Finish queued jobs, then stop the thread. Later submits raise WriterClosedError."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            thread = self._thread
            self._queue.put(None)
        if thread is not None:
            thread.join()

    def _start(self) -> None:
        """Start a writer thread (the caller holds the lock)."""
        self._thread = threading.Thread(target=self._run, name="db-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        group: list[_Item] = []
        try:
            stop = False
            while not stop:
                first = self._queue.get()
                if first is None:
                    break
                group = [first]
                while len(group) < self._max_group:
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                    if item is None:
                        stop = True
                        break
                    group.append(item)
                self._commit_group(group)
                group = []
        except BaseException as exc:  # noqa: BLE001 (the thread's last resort: answer, restart)
            self._died(group, exc)

    def _died(self, group: list[_Item], exc: BaseException) -> None:
        """Answer the jobs the dead thread held, then start a new thread or stop for good."""
        reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        _log.error("the database writer thread died (%s)", reason, exc_info=exc)
        died = WriterDiedError(
            f"the database writer thread died while running this write ({reason}); "
            "nothing of it was kept, retry"
        )
        for _job, future in group:
            _fail(future, died)
        with self._lock:
            if self._closed or self.restarts >= self.max_restarts:
                if not self._closed:
                    self._stopped = (
                        f"the database writer stopped: its thread died {self.restarts + 1} "
                        f"times (last: {reason}); restart the server"
                    )
                    _log.error("%s", self._stopped)
                self._thread = None
                self._drain(WriterClosedError(self._stopped or "the database writer is closed"))
                return
            self.restarts += 1
            _log.warning("restarting the database writer thread (restart %d)", self.restarts)
            self._start()

    def _drain(self, error: Exception) -> None:
        """Answer every job still queued with ``error`` (the caller holds the lock)."""
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is not None:
                _fail(item[1], error)

    def _commit_group(self, group: list[_Item]) -> None:
        """One transaction for the whole group; if a job raises, the group is rolled back and
        each job runs again in a transaction of its own, so only the failing one fails.

        Each group checks out a connection (one broken by a database restart is then replaced
        by the pool, not reused). Jobs whose callers gave up waiting (cancelled) are skipped.
        """
        group = [item for item in group if item[1].set_running_or_notify_cancel()]
        if not group:
            return
        try:
            results, callbacks = self._transaction(group)
        except _JobFailedError:
            for item in group:
                self._commit_alone(item)
            return
        except Exception as exc:  # noqa: BLE001 (the commit failed: every job failed)
            _log.warning("database commit of %d writes failed: %s", len(group), exc)
            for _job, future in group:
                _fail(future, exc)
            return
        self.commits += 1
        for (_job, future), result, job_callbacks in zip(group, results, callbacks, strict=True):
            self._answer(future, result, job_callbacks)

    def _commit_alone(self, item: _Item) -> None:
        _job, future = item
        try:
            results, callbacks = self._transaction([item])
        except _JobFailedError as failed:
            _fail(future, failed.error)
            return
        except Exception as exc:  # noqa: BLE001 (handed to the job's caller)
            _fail(future, exc)
            return
        self.commits += 1
        self._answer(future, results[0], callbacks[0])

    def _transaction(self, group: list[_Item]) -> tuple[list[Any], list[list[Callable[[], None]]]]:
        """Returns: each job's result and its commit callbacks.

        Raises: _JobFailedError when a job raised (nothing committed), or the commit's error.
        """
        callbacks: list[list[Callable[[], None]]] = []
        results: list[Any] = []
        with (
            self._engine.connect().execution_options(**{IMMEDIATE: True}) as conn,
            conn.begin(),
        ):
            for job, _future in group:
                job_callbacks: list[Callable[[], None]] = []
                conn.info[_ON_COMMIT] = job_callbacks
                try:
                    results.append(job(conn))
                except Exception as exc:
                    raise _JobFailedError(exc) from exc
                callbacks.append(job_callbacks)
            conn.info.pop(_ON_COMMIT, None)
        return results, callbacks

    def _answer(
        self, future: Future[Any], result: Any, callbacks: list[Callable[[], None]]
    ) -> None:
        """Run a committed job's callbacks, then answer it: its result, or a callback's error."""
        error: Exception | None = None
        for callback in callbacks:
            try:
                callback()
            except Exception as exc:  # noqa: BLE001 (fails this job only, see on_commit)
                self.callback_failures += 1
                _log.exception(
                    "a commit callback failed: its job committed, and is answered with the error"
                )
                error = error or exc
        if error is None:
            _succeed(future, result)
        else:
            _fail(future, error)


def _succeed(future: Future[Any], result: Any) -> None:
    with suppress(InvalidStateError):  # already answered or cancelled: keep the first answer
        future.set_result(result)


def _fail(future: Future[Any], error: Exception) -> None:
    with suppress(InvalidStateError):
        future.set_exception(error)


class _JobFailedError(Exception):
    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error
