"""The rule evaluation thread: leadership checked, due groups evaluated, never dies silently.

Stage: alerting (background). Every ``check_seconds`` the thread asks the maintenance
``Leadership`` (the PostgreSQL advisory lock; on SQLite the only process leads) whether this
process leads; on becoming the leader the evaluator loads the persisted state, on losing it
it stops evaluating, and a follower refreshes its view of the alerts from the database. Between
checks it sleeps until the next group's slot. Any exception of a pass is logged and counted
(``failures``) and the loop goes on; ``stop`` ends it within one wait.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from server.alerting.evaluator import Evaluator
from server.storage.leader import Leadership

_log = logging.getLogger(__name__)
MIN_WAIT_SECONDS = 0.05


class Runner:
    def __init__(
        self,
        evaluator: Evaluator,
        leader: Leadership,
        clock: Callable[[], float],
        check_seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._evaluator = evaluator
        self._leader = leader
        self._clock = clock
        self._check_seconds = check_seconds
        self._monotonic = monotonic
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._next_check = 0.0
        self.failures = 0
        self.passes = 0

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dcmon-rules", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                _log.warning("rule evaluation did not stop within %.0f s", timeout)
            self._thread = None

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = self._check_seconds
            try:
                wait = self.step()
            except Exception:  # noqa: BLE001 (the loop's supervisor: log, count, go on)
                self.failures += 1
                _log.exception("rule evaluation pass failed; trying again")
            self._stop.wait(max(MIN_WAIT_SECONDS, wait))

    def step(self) -> float:
        """One pass: leadership (when due), then due groups; returns seconds to wait."""
        self.passes += 1
        evaluator = self._evaluator
        now_mono = self._monotonic()
        if now_mono >= self._next_check:
            self._next_check = now_mono + self._check_seconds
            leading = self._leader.check()
            if leading and not evaluator.leading:
                evaluator.lead()
                _log.info("this server now evaluates the rules")
            elif not leading and evaluator.leading:
                evaluator.follow()
                _log.warning("this server no longer evaluates the rules (not the leader)")
            if not leading:
                evaluator.refresh()
        until_check = max(0.0, self._next_check - self._monotonic())
        if not evaluator.leading:
            return until_check
        return min(evaluator.tick(self._clock()), until_check)
