"""Where a live round's snapshot comes from: the seam between the server's data and the engine.

Stage: rebalancing (server). ``SnapshotSource.build(now)`` returns the cluster as the hint
engine (``server.hints.model.Snapshot``) reads it: nodes and GPUs from the inventory, jobs as
pods from job accounting, telemetry windows from history, health from events and benchmark
results. The service (``service.py``) calls it on the leader each round; tests pass
``FixedSource``, which returns a snapshot they built.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

from server.hints.model import Snapshot


class SnapshotSource(Protocol):
    def build(self, now: float) -> Snapshot:
        """Returns: the cluster at ``now`` (Unix seconds); ``Snapshot.now_s`` is ``now``."""
        ...


@dataclass
class FixedSource:
    """The in-memory twin: always the snapshot it holds, with ``now_s`` set to the round's."""

    snapshot: Snapshot

    def build(self, now: float) -> Snapshot:
        return replace(self.snapshot, now_s=now)
