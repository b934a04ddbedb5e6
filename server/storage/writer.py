"""The single writer: every database write goes through one thread, committed in groups.

Stage: ingest/maintenance -> storage. SQLite has one writer at a time, and its cost per
transaction is dominated by the commit (an fsync with ``synchronous=FULL``). So writers do not
open transactions themselves: they ``submit`` a job (a function of a connection) and wait. The
writer thread takes every job queued at that moment (up to ``max_group``), runs them all in
one transaction, commits once, and only then answers each job. If a job
raises, the group is rolled back and its jobs run again one transaction each, so only the
failing job's caller gets the exception and the others still commit (no savepoints on the hot
path: failures are rare, statements are not). An answer therefore means "durable" (or
"failed, nothing of it kept").
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine

from server.storage.db import IMMEDIATE

_log = logging.getLogger(__name__)

T = TypeVar("T")
Job = Callable[[Connection], Any]
_ON_COMMIT = "dcmon_on_commit"


def on_commit(conn: Connection, callback: Callable[[], None]) -> None:
    """Run ``callback`` on the writer thread after this job's transaction commits.

    For in-memory state that must follow the database (series ids, caches): it is dropped if
    the job fails or the commit fails, so memory never holds what the database does not.
    """
    conn.info.setdefault(_ON_COMMIT, []).append(callback)


class WriterClosedError(RuntimeError):
    """The writer was closed; the job was not run."""


class Writer:
    """Runs write jobs on one thread with group commits."""

    def __init__(self, engine: Engine, max_group: int = 128) -> None:
        self._engine = engine
        self._max_group = max_group
        self._queue: queue.SimpleQueue[tuple[Job, Future[Any]] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.commits = 0

    def submit(self, job: Callable[[Connection], T]) -> T:
        """Run ``job`` in the next group transaction; returns its result once committed.

        Raises:
            Exception: what the job raised (it was rolled back), or what the commit raised.
            WriterClosedError: the writer is closed.
        """
        return self.enqueue(job).result()

    def enqueue(self, job: Callable[[Connection], T]) -> Future[T]:
        """Queue ``job`` without waiting: jobs queued together can share one group commit.

        Returns: a future answered as ``submit`` would answer.

        Raises:
            WriterClosedError: the writer is closed.
        """
        future: Future[T] = Future()
        with self._lock:
            if self._closed:
                raise WriterClosedError("the database writer is closed")
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="db-writer", daemon=True)
                self._thread.start()
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

    def _run(self) -> None:
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

    def _commit_group(self, group: list[tuple[Job, Future[Any]]]) -> None:
        """One transaction for the whole group; if a job raises, the group is rolled back and
        each job runs again in a transaction of its own, so only the failing one fails.

        Each group checks out a connection (one broken by a database restart is then replaced
        by the pool, not reused).
        """
        try:
            results, callbacks = self._transaction(group)
        except _JobFailedError:
            for item in group:
                self._commit_alone(item)
            return
        except Exception as exc:  # noqa: BLE001 (the commit failed: every job failed)
            _log.warning("database commit of %d writes failed: %s", len(group), exc)
            for _job, future in group:
                future.set_exception(exc)
            return
        self._finish(callbacks)
        for (_job, future), result in zip(group, results, strict=True):
            future.set_result(result)

    def _commit_alone(self, item: tuple[Job, Future[Any]]) -> None:
        _job, future = item
        try:
            results, callbacks = self._transaction([item])
        except _JobFailedError as failed:
            future.set_exception(failed.error)
            return
        except Exception as exc:  # noqa: BLE001 (handed to the job's caller)
            future.set_exception(exc)
            return
        self._finish(callbacks)
        future.set_result(results[0])

    def _transaction(
        self, group: list[tuple[Job, Future[Any]]]
    ) -> tuple[list[Any], list[Callable[[], None]]]:
        """Raises: _JobFailedError when a job raised (nothing committed), or the commit's error."""
        callbacks: list[Callable[[], None]] = []
        results: list[Any] = []
        with (
            self._engine.connect().execution_options(**{IMMEDIATE: True}) as conn,
            conn.begin(),
        ):
            conn.info[_ON_COMMIT] = callbacks
            for job, _future in group:
                try:
                    results.append(job(conn))
                except Exception as exc:
                    raise _JobFailedError(exc) from exc
        return results, callbacks

    def _finish(self, callbacks: list[Callable[[], None]]) -> None:
        self.commits += 1
        for callback in callbacks:
            callback()


class _JobFailedError(Exception):
    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error
