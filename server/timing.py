"""The ``Server-Timing`` header read APIs send, so clients can tell server time from transfer."""

from __future__ import annotations

import time


def server_timing(started: float) -> str:
    """Returns: ``app;dur=<milliseconds since started>`` (``started`` from perf_counter)."""
    return f"app;dur={(time.perf_counter() - started) * 1000:.3f}"
