"""The NVML watchdog: run driver calls on a worker thread and never wait on them past a deadline.

Stage: ``GpuCollector`` -> (this) -> ``NvmlBackend``. An NVML call can hang for minutes or for
ever (after XID 45, 79 or 119 the kernel driver may sit in D state). Python cannot cancel a
thread, so a hung call is *abandoned*, not killed: the worker that made it stays blocked, the
caller stops waiting for it, and nothing more is queued on that worker until the call returns
by itself. One worker per GPU (plus one for session start-up) means one sick GPU never delays
the others, and the agent's tick never waits on the driver for longer than its budget.

Workers are daemon threads so that an abandoned call cannot keep the process from exiting.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Generic, TypeVar

_log = logging.getLogger(__name__)

_T = TypeVar("_T")


class Job(Generic[_T]):
    """One submitted unit of work and, once done, its result or exception."""

    def __init__(self, work: Callable[[], _T], submitted: float) -> None:
        self._work = work
        self.submitted = submitted
        self._done = threading.Event()
        self._result: _T | None = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            self._result = self._work()
        except BaseException as exc:  # noqa: BLE001 (handed to the caller, never lost)
            self._error = exc
        finally:
            self._done.set()

    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float) -> bool:
        """Returns: whether the job finished within ``timeout`` seconds."""
        return self._done.wait(timeout)

    def result(self) -> _T:
        """Returns: the work's result; re-raises its exception. Only after ``done()``."""
        if not self._done.is_set():
            raise RuntimeError("job is still running")
        if self._error is not None:
            raise self._error
        return self._result  # type: ignore[return-value]  # set when no error was raised


class Worker:
    """A daemon thread running submitted jobs one at a time, in order.

    Args:
        name: thread name (shows in ``py-spy`` and thread dumps).
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: queue.SimpleQueue[Job[object] | None] = queue.SimpleQueue()
        self._stopped = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    def submit(self, work: Callable[[], _T], now: float) -> Job[_T]:
        """Queue ``work``; ``now`` (monotonic seconds) stamps the job for the watchdog."""
        if self._stopped:
            raise RuntimeError(f"worker {self.name} is stopped")
        job: Job[_T] = Job(work, now)
        self._queue.put(job)  # type: ignore[arg-type]  # invariant Generic in a plain queue
        return job

    def stop(self) -> None:
        """Let the thread end after its current job (a hung job keeps it until it returns)."""
        if not self._stopped:
            self._stopped = True
            self._queue.put(None)

    def _loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            job.run()


def wait_all(
    jobs: Sequence[Job[Any]], budget: float, clock: Callable[[], float] = time.monotonic
) -> None:
    """Wait until every job is done or ``budget`` seconds have passed, whichever is first."""
    deadline = clock() + budget
    for job in jobs:
        remaining = deadline - clock()
        if remaining <= 0:
            return
        job.wait(remaining)
