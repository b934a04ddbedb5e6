"""Exponential backoff with jitter, so a fleet of agents does not retry in lockstep."""

from __future__ import annotations

import random


class Backoff:
    """Delays that double from ``initial`` up to ``maximum`` seconds, each randomised by up to
    half ("equal jitter"); a server's Retry-After hint replaces them (plus up to 10 % jitter)."""

    def __init__(self, initial: float, maximum: float, rng: random.Random | None = None) -> None:
        self._initial = initial
        self._maximum = max(maximum, initial)
        self._rng = rng or random.Random()  # noqa: S311 (jitter, not cryptography)
        self._failures = 0

    @property
    def failures(self) -> int:
        """Consecutive failures since the last success."""
        return self._failures

    def next_delay(self, hint: float | None = None) -> float:
        """Returns: seconds to wait before the next attempt, after one more failure."""
        base = min(self._maximum, self._initial * 2.0 ** min(self._failures, 32))
        self._failures += 1
        if hint is not None:
            # The server said when to come back (429/503 Retry-After): that replaces the
            # exponential schedule, which after a long outage would add up to a minute more.
            # A little jitter keeps agents told the same second from returning in step.
            hint = min(hint, self._maximum * 10)
            return hint + self._rng.uniform(0, hint * 0.1)
        return base / 2 + self._rng.uniform(0, base / 2)

    def reset(self) -> None:
        self._failures = 0
