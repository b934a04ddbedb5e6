"""``statvfs`` with a deadline: a hung mount (a dead NFS server) never blocks a tick.

A blocking ``statvfs(2)`` cannot be interrupted, so it runs on a worker thread and the caller
waits at most its deadline. A call that overruns is abandoned: its path is marked stuck and is
not asked again until that call returns (then the mark clears, node_exporter's rule), and the
next call gets a fresh worker. Threads are therefore bounded by one idle worker plus one per
stuck mount point; a stuck mount never accumulates a second call.

Not safe for concurrent ``call`` from several threads: the agent's ticks are serial.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

logger = logging.getLogger(__name__)

StatvfsFunction = Callable[[str], os.statvfs_result]


class StatvfsTimeoutError(OSError):
    """The call did not return within its deadline, or an earlier call on the path is stuck."""


@dataclass(eq=False)
class _Job:
    path: str
    done: threading.Event = field(default_factory=threading.Event)
    outcome: os.statvfs_result | Exception | None = None  # None while the call runs
    abandoned: bool = False


class StatvfsRunner:
    """Runs an injected ``statvfs`` on a worker thread, each call with its own wait limit."""

    def __init__(self, statvfs: StatvfsFunction) -> None:
        self._statvfs = statvfs
        self._lock = threading.Lock()
        self._stuck: set[str] = set()
        self._jobs: queue.SimpleQueue[_Job | None] | None = None

    def stuck_paths(self) -> frozenset[str]:
        """Returns: the paths whose abandoned call has not returned yet."""
        with self._lock:
            return frozenset(self._stuck)

    def call(self, path: str, wait_seconds: float) -> os.statvfs_result:
        """Returns: ``statvfs(path)`` if it answers within ``wait_seconds``.

        Raises:
            StatvfsTimeoutError: it did not answer in time, or an earlier call is still stuck.
            OSError: what ``statvfs`` raised.
        """
        with self._lock:
            if path in self._stuck:
                raise StatvfsTimeoutError(f"statvfs({path!r}) is still stuck")
            if self._jobs is None:
                self._jobs = self._start_worker()
            jobs = self._jobs
        job = _Job(path)
        jobs.put(job)
        job.done.wait(wait_seconds)
        with self._lock:
            outcome = job.outcome
            if outcome is None:
                job.abandoned = True
                self._stuck.add(path)
                self._jobs = None  # that worker is stuck with the call; the next call gets another
                logger.warning("statvfs(%r) did not return within %.3g s", path, wait_seconds)
                raise StatvfsTimeoutError(f"statvfs({path!r}) timed out")
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    def close(self) -> None:
        """Stops the idle worker; stuck workers end when their call returns."""
        with self._lock:
            jobs, self._jobs = self._jobs, None
        if jobs is not None:
            jobs.put(None)

    def _start_worker(self) -> queue.SimpleQueue[_Job | None]:
        jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        thread = threading.Thread(
            target=self._work, args=(jobs,), name="dcmon-statvfs", daemon=True
        )
        thread.start()
        return jobs

    def _work(self, jobs: queue.SimpleQueue[_Job | None]) -> None:
        while (job := jobs.get()) is not None:
            outcome: os.statvfs_result | Exception
            try:
                outcome = self._statvfs(job.path)
            except Exception as exc:  # noqa: BLE001 - handed to the caller, who re-raises it
                outcome = exc
            with self._lock:
                job.outcome = outcome
                if job.abandoned:
                    self._stuck.discard(job.path)
                    logger.info("statvfs(%r) returned after its deadline; resuming", job.path)
                    return  # replaced while stuck: this worker's job is done
            job.done.set()
