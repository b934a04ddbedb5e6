"""A background thread that calls ``tick(now)`` and sleeps for the seconds it returns.

The shared skeleton of the server's periodic writers (its own series, the benchmark series):
an exception in a tick is logged and counted (``failures``) and the loop goes on, so the thread
never dies silently; ``stop`` ends it within one wait.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

_log = logging.getLogger(__name__)
MIN_WAIT_SECONDS = 0.05


class TickLoop:
    def __init__(
        self,
        tick: Callable[[float], float],
        clock: Callable[[], float],
        *,
        thread_name: str,
        what: str,
    ) -> None:
        """Args:
        tick: does one round at ``now``; returns: seconds until the next one.
        thread_name: the thread's name; what: the loop's work, for log lines.
        """
        self._tick = tick
        self._clock = clock
        self._thread_name = thread_name
        self._what = what
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name=self._thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                _log.warning("the %s did not stop within %.0f s", self._what, timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = 1.0
            try:
                wait = self._tick(self._clock())
            except Exception:  # noqa: BLE001 (the loop's supervisor: log, count, go on)
                self.failures += 1
                _log.exception("the %s failed; trying again", self._what)
            self._stop.wait(max(MIN_WAIT_SECONDS, wait))
