"""The spool: batches waiting to be delivered, oldest first.

Stage: batch -> spool -> transport. Every encoded batch is appended here before any send is
attempted; the shipper peeks the oldest, sends it, and acknowledges it only once the server has.
The budget is bounded: past it the oldest batch is dropped and counted, never the newest.
The agent spools on disk (``DiskSpool``), falling back to memory while the disk fails;
``MemorySpool`` alone serves one-shot runs and tests.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from agent.spool.base import Spool, SpooledBatch, SpoolStats
from agent.spool.disk import DiskSpool
from agent.spool.memory import MemorySpool

if TYPE_CHECKING:
    from agent.config import AgentSettings

SPOOL_SUBDIR = "spool"


def open_spool(
    settings: AgentSettings,
    *,
    wall: Callable[[], float] = time.time,
    monotonic: Callable[[], float] = time.monotonic,
) -> DiskSpool:
    """Open the agent's disk spool in ``settings.spool.dir`` (default: ``spool`` in the state
    directory), created with mode 0700.

    Never fails for the directory's sake: if it cannot be created or used the spool runs in
    memory, reports itself degraded and tries the disk again later.
    """
    spool = settings.spool
    return DiskSpool(
        spool.dir or settings.state_dir / SPOOL_SUBDIR,
        max_bytes=spool.max_bytes,
        max_age_seconds=spool.max_age_seconds,
        memory_max_bytes=spool.memory_max_bytes,
        fsync=spool.fsync,
        wall=wall,
        monotonic=monotonic,
    )


__all__ = ["DiskSpool", "MemorySpool", "Spool", "SpoolStats", "SpooledBatch", "open_spool"]
