"""The ``time`` collector: ``node_time_seconds``, the node's wall clock at the tick.

It reports the tick's own timestamp (the ``now`` every collector receives), so the server can
compare it with its own clock and with the batch timestamp to spot clock skew.
"""

from __future__ import annotations

from agent.collectors.base import Sample


class TimeCollector:
    """Reports the tick's wall-clock time, in Unix seconds."""

    name = "time"

    def collect(self, now: float) -> list[Sample]:
        """Returns: ``node_time_seconds`` = ``now``."""
        return [Sample("node_time_seconds", {}, now)]
