"""Logging a recurring fault once, so a fault present every tick does not flood the log."""

from __future__ import annotations

import logging

# Distinct faults remembered; past this the set is cleared (a long-lived agent on a busy node
# must not grow without bound), so a fault may be logged again after many others.
_MAX_REMEMBERED = 1024


class LogOnce:
    """Logs a message at ``level`` the first time its ``key`` is seen, at DEBUG afterwards."""

    def __init__(self, logger: logging.Logger, level: int = logging.WARNING) -> None:
        self._logger = logger
        self._level = level
        self._seen: set[str] = set()

    def __call__(self, key: str, message: str, *args: object) -> None:
        if key in self._seen:
            self._logger.debug(message, *args)
            return
        if len(self._seen) >= _MAX_REMEMBERED:
            self._seen.clear()
        self._seen.add(key)
        self._logger.log(self._level, message, *args)
