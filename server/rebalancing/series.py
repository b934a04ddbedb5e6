"""The ``dcmon_hint_*`` series written into storage, so PromQL, the rules and Grafana see them.

Stage: hint store and rounds -> storage (as ``server/bench/series.py`` does for the benchmark).
While any hint is open, per hint kind, every kind even at zero (a kind that falls to none reads
0, not absent):

    dcmon_hint_open{kind}            open hints (new or acknowledged)
    dcmon_hint_gain_gpus{kind}       whole GPUs they would make usable, summed
    dcmon_hint_gain_gpu_seconds{kind} GPU-time they would recover, in GPU-seconds, summed
    dcmon_hint_gain_watts{kind}      watts they would save, summed
    dcmon_hint_round_seconds         the engine's run time in this process's latest round

Written again every ``interval_seconds`` on the epoch-aligned grid (PromQL sees a sample for
5 minutes only), as one batch of the server-side node ``dcmon-hints``, by the maintenance
leader only (``Leadership.check``), which is also the one running rounds. The open hints are
read from the database, so a new leader writes them before its first round. While no hint is
open nothing is written (the first such write is an empty batch, which ends the series with
stale markers): ``absent(dcmon_hint_open)`` means none open, and a fleet without hints adds no
series of dcmon's own to what PromQL, Grafana and exact sample counts see.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from server.alerting.pseudo_nodes import PseudoNode, node_id_for
from server.alerting.runs import slot_at_or_before
from server.alerting.writeback import SeriesWriter
from server.hints.hint import Kind
from server.promql.values import NAME, Labels, make_labels
from server.rebalancing.service import HintService
from server.storage.errors import StorageUnavailableError
from server.storage.leader import Leadership
from server.tick_loop import TickLoop

_log = logging.getLogger(__name__)
NODE_NAME = "dcmon-hints"


def hint_node(interval_seconds: float) -> PseudoNode:
    """Returns: the server-side node the hint series are stored under."""
    return PseudoNode(node_id_for(NODE_NAME), NODE_NAME, interval_seconds)


def samples(service: HintService) -> list[tuple[str, dict[str, str], float]]:
    """Returns: (name, labels, value) of every hint series now; none while no hint is open."""
    hints = service.store.open_hints()
    last = service.last_round
    if not hints:
        return []
    open_count = dict.fromkeys(Kind, 0.0)
    gpus = dict.fromkeys(Kind, 0.0)
    gpu_seconds = dict.fromkeys(Kind, 0.0)
    watts = dict.fromkeys(Kind, 0.0)
    for hint in hints:
        kind = Kind(hint.kind)
        open_count[kind] += 1
        gpus[kind] += hint.gain_gpus
        gpu_seconds[kind] += hint.gain_gpu_hours * 3600.0  # base units: seconds
        watts[kind] += hint.gain_watts
    found = [
        (name, {"kind": kind.value}, values[kind])
        for name, values in (
            ("dcmon_hint_open", open_count),
            ("dcmon_hint_gain_gpus", gpus),
            ("dcmon_hint_gain_gpu_seconds", gpu_seconds),
            ("dcmon_hint_gain_watts", watts),
        )
        for kind in Kind
    ]
    if last is not None:
        found.append(("dcmon_hint_round_seconds", {}, last.engine_seconds))
    return found


class HintSeries:
    """Writes the hint series when the grid's slot has come. Thread safety: one caller."""

    def __init__(
        self,
        service: HintService,
        writer: SeriesWriter,
        leader: Leadership,
        interval_seconds: float,
    ) -> None:
        self._service = service
        self._writer = writer
        self._leader = leader
        self.node = hint_node(interval_seconds)
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
                _log.warning("writing the hint series failed: %s", exc)
            self._next_ms = slot_at_or_before(now_ms, self._interval_ms, 0) + self._interval_ms
        return max(0.0, (self._next_ms - now_ms) / 1000)

    def write(self, now: float) -> int:
        """Store the current hint series at ``now``; returns how many.

        Raises: StorageUnavailableError."""
        found: list[tuple[Labels, float]] = [
            (make_labels({**labels, NAME: name}), value)
            for name, labels, value in samples(self._service)
        ]
        if not found and not self._wrote_series:
            return 0
        self._writer.write(self.node, round(now * 1000), found, now)
        self._wrote_series = bool(found)
        self.rounds += 1
        return len(found)


class HintSeriesLoop(TickLoop):
    """The thread of ``HintSeries``; ``stop`` ends it within one wait."""

    def __init__(self, series: HintSeries, clock: Callable[[], float]) -> None:
        super().__init__(
            series.tick, clock, thread_name="dcmon-hint-series", what="hint series writer"
        )
        self.series = series
