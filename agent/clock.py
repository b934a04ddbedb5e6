"""The clock seam: wall time for timestamps, monotonic time for scheduling."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def time(self) -> float:
        """Returns: wall-clock Unix time in seconds."""
        ...

    def monotonic(self) -> float:
        """Returns: seconds on a clock that never jumps."""
        ...


class SystemClock:
    """The real clocks."""

    def time(self) -> float:
        return time.time()

    def monotonic(self) -> float:
        return time.monotonic()
