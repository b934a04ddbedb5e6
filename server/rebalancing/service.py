"""The live hint service: on the leader, every interval, snapshot -> engine -> store.

Stage: rebalancing (server). Input: a ``SnapshotSource`` (``source.py``: the live one builds
the cluster from the server's inventory, jobs, history, events and benchmark results; tests
pass ``FixedSource``). Output: the hints in the store (``store.py``), synced once per round,
and the round's figures (hints by kind, engine seconds, nodes and pods in the snapshot), logged
and kept for the API and the ``dcmon_hint_round_seconds`` series.

Only the maintenance leader runs rounds (``Leadership.check``): the hints live in the shared
database, and two replicas would otherwise count each other's rounds as missed ones. A round
that raises is counted here and re-raised to the loop's supervisor (``TickLoop``), which logs
it and goes on; the next round comes an interval later, not at once. ``run_round`` runs one
round now (tests, and the first round after start-up). Without a source (``None``: the
server has none yet) the service still serves the stored hints, and runs no rounds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from server.hints.engine import rebalance
from server.hints.policy import Policy
from server.rebalancing.model import Synced
from server.rebalancing.source import SnapshotSource
from server.rebalancing.store import HintStore, Lifecycle
from server.storage.leader import Leadership
from server.tick_loop import TickLoop

_log = logging.getLogger(__name__)
SEED = 0
"""The engine's tie-breaking seed: fixed, so the same cluster gives the same hints (and ids)."""


@dataclass(frozen=True)
class RoundReport:
    """One round's figures. Times: ``at`` on the server's clock (Unix seconds); durations in
    seconds of a monotonic timer."""

    at: float
    build_seconds: float
    engine_seconds: float
    nodes: int
    pods: int
    pending: int
    hints_by_kind: dict[str, int] = field(default_factory=dict)
    synced: Synced = field(default_factory=Synced)

    @property
    def hints(self) -> int:
        return sum(self.hints_by_kind.values())


class NoSourceError(RuntimeError):
    """The server has no snapshot source, so no round can run."""


class HintService:
    """Runs rounds and keeps the latest one's figures. Thread safety: ``tick`` from one
    thread; ``last_round`` and the counters may be read from any."""

    def __init__(
        self,
        source: SnapshotSource | None,
        store: HintStore,
        leader: Leadership,
        lifecycle: Lifecycle,
        interval_seconds: float,
        policy: Policy | None = None,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.source = source
        self.store = store
        self.lifecycle = lifecycle
        self._leader = leader
        self._interval = interval_seconds
        self._policy = policy or Policy()
        self._timer = timer
        self._next: float | None = None
        self._lock = threading.Lock()
        self._last: RoundReport | None = None
        self.rounds = 0
        self.failures = 0

    @property
    def last_round(self) -> RoundReport | None:
        with self._lock:
            return self._last

    def tick(self, now: float) -> float:
        """Run a round if one is due at ``now`` and this process leads; returns seconds to the
        next. Raises what the round raised (after counting it), for the loop to log."""
        if self._next is not None and now < self._next:
            return self._next - now
        self._next = now + self._interval
        if self.source is not None and self._leader.check():
            try:
                self.run_round(now)
            except Exception:
                self.failures += 1
                raise
        return self._interval

    def run_round(self, now: float) -> RoundReport:
        """One round at ``now``: build the snapshot, run the engine, sync the store.

        Raises: NoSourceError, and what the source, the engine or the store raised."""
        if self.source is None:
            raise NoSourceError("no snapshot source: hint rounds cannot run in this server")
        started = self._timer()
        snapshot = self.source.build(now)
        built = self._timer()
        hints = rebalance(snapshot, self._policy, SEED)
        ran = self._timer()
        synced = self.store.sync(hints, now, self.lifecycle)
        report = RoundReport(
            at=now,
            build_seconds=built - started,
            engine_seconds=ran - built,
            nodes=len(snapshot.nodes),
            pods=len(snapshot.pods),
            pending=sum(p.count for p in snapshot.pending),
            hints_by_kind=dict(sorted(Counter(h.kind.value for h in hints).items())),
            synced=synced,
        )
        with self._lock:
            self._last = report
            self.rounds += 1
        _log.info(
            "hint round: %d hints (%s) from %d nodes and %d pods in %.3f s (snapshot %.3f s); "
            "%d new, %d reopened, %d expired",
            report.hints,
            ", ".join(f"{k} {n}" for k, n in report.hints_by_kind.items()) or "none",
            report.nodes,
            report.pods,
            report.engine_seconds,
            report.build_seconds,
            synced.added,
            synced.reopened,
            synced.expired,
        )
        return report

    def expire_stale(self) -> int:
        """Expire open hints past the TTL (maintenance: covers rounds that fail or stop)."""
        return self.store.expire_stale(self.lifecycle.ttl_s)


class HintLoop(TickLoop):
    """The thread of ``HintService``; ``stop`` ends it within one wait."""

    def __init__(self, service: HintService, clock: Callable[[], float]) -> None:
        super().__init__(service.tick, clock, thread_name="dcmon-hints", what="hint round")
        self.service = service
