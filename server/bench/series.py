"""The ``dcmon_bench_*`` series written into storage, so PromQL and the rules see them.

Stage: bench snapshot -> storage (as ``server/alerting/self_series.py`` does for the server's
own series). A benchmark result is a fact that stays true until the next run, but PromQL sees
a sample only for 5 minutes (its lookback), so the current values are written again every
``interval_seconds`` (the rule-evaluation default interval), on the epoch-aligned grid, as one
batch of the server-side node ``dcmon-bench`` (``pseudo_nodes``): a series keeps its labels
exactly, ``instance`` included, so ``dcmon_bench_passed{instance="gpu01"}`` is about node
``gpu01``. The results live in the shared database, so only the maintenance leader writes
(``Leadership.check``): replicas would otherwise write the same series twice. A round with no
series writes nothing, unless the previous one wrote some (then an empty batch ends them).
Failures are logged and counted; the loop goes on.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from server.alerting.pseudo_nodes import PseudoNode, node_id_for
from server.alerting.runs import slot_at_or_before
from server.alerting.writeback import SeriesWriter
from server.bench.service import BenchService
from server.promql.values import NAME, Labels, make_labels
from server.storage.errors import StorageUnavailableError
from server.storage.leader import Leadership
from server.tick_loop import TickLoop

_log = logging.getLogger(__name__)
NODE_NAME = "dcmon-bench"


def bench_node(interval_seconds: float) -> PseudoNode:
    """Returns: the server-side node the bench series are stored under."""
    return PseudoNode(node_id_for(NODE_NAME), NODE_NAME, interval_seconds)


class BenchSeries:
    """Writes the bench series when the grid's slot has come. Thread safety: one caller."""

    def __init__(
        self,
        service: BenchService,
        writer: SeriesWriter,
        leader: Leadership,
        interval_seconds: float,
    ) -> None:
        self._service = service
        self._writer = writer
        self._leader = leader
        self.node = bench_node(interval_seconds)
        self._interval_ms = max(1, round(interval_seconds * 1000))
        self._next_ms: int | None = None
        self._wrote_series = False
        self.rounds = 0
        self.failures = 0

    def tick(self, now: float) -> float:
        """Write if the slot has come at ``now`` (Unix seconds); returns seconds to the next."""
        now_ms = round(now * 1000)
        if self._next_ms is None or now_ms >= self._next_ms:
            try:
                if self._leader.check():
                    self.write(now)
                else:
                    self._wrote_series = False  # the leader's job now
            except StorageUnavailableError as exc:
                self.failures += 1
                _log.warning("writing the benchmark series failed: %s", exc)
            self._next_ms = slot_at_or_before(now_ms, self._interval_ms, 0) + self._interval_ms
        return max(0.0, (self._next_ms - now_ms) / 1000)

    def write(self, now: float) -> int:
        """Store the current bench series at ``now``; returns how many.

        Raises: StorageUnavailableError."""
        found: list[tuple[Labels, float]] = [
            (make_labels({**labels, NAME: name}), value)
            for name, labels, value in self._service.samples()
        ]
        if not found and not self._wrote_series:
            return 0
        self._writer.write(self.node, round(now * 1000), found, now)
        self._wrote_series = bool(found)
        self.rounds += 1
        return len(found)


class BenchSeriesLoop(TickLoop):
    """The thread of ``BenchSeries``; ``stop`` ends it within one wait."""

    def __init__(self, series: BenchSeries, clock: Callable[[], float]) -> None:
        super().__init__(
            series.tick, clock, thread_name="dcmon-bench-series", what="benchmark series writer"
        )
        self.series = series
