"""The server's own series, stored: ingest refusals and node clock skew, per replica.

Stage: ingest counters and the latest cache -> storage, so dcmon's PromQL and rules see what
only ``/metrics`` showed before (the pack's DcmonServerIngestRefusals, DcmonServerSeriesRefused,
DcmonNodeClockSkew). Every replica writes, on its own server-side node
(``dcmon-replica/<replica>``, ``pseudo_nodes``), once per rule-evaluation default interval on
the epoch-aligned grid ``dcmon_node_up`` uses, these series, each labelled
``replica="<host>:<port>"`` (``replica_name``):

- ``dcmon_server_ingest_rejected_batches_total{reason}``,
  ``dcmon_server_ingest_refused_series_total{reason}`` and
  ``dcmon_node_refused_series_total{instance, reason}``: this process's counters
  (``server/exposition/self_metrics.py``). Each replica counts what it refused itself, so each
  writes its own; a restarted replica's counters start again at 0 under the same name, a reset
  that ``increase`` and ``rate`` handle. A counter's series written for the first time by this
  process gets a 0 one millisecond after the previous round (when it was still absent, so 0
  is its true value there; the first round's previous time is the process's start): without
  it, a counter that appears at 3 and stays there would never show an increase.
- ``dcmon_node_clock_skew_seconds{instance, <node labels>}``: the node's clock minus this
  replica's, from the latest cache, for the nodes whose last push to this replica is within
  the node's stale window (the ``dcmon_node_up`` rule). The replica that receives a node's
  pushes measures its skew; the ``replica`` label keeps two replicas that both do (a
  round-robin load balancer) from writing one label set twice, and says whose clock it was
  measured against. A node that moved to another replica ends here within its stale window.

A round with nothing to write writes nothing, unless the previous one wrote series (then an
empty batch ends them, as the query source's staleness rules read it), so a server that never
refused anything has no such node. Failures are logged and counted; the loop goes on.
"""

from __future__ import annotations

import logging
import socket
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence

from prometheus_client.registry import Collector

from server.alerting.pseudo_nodes import PseudoNode, node_id_for
from server.alerting.runs import slot_at_or_before
from server.alerting.writeback import SeriesWriter, StoreSeriesWriter
from server.exposition.self_metrics import ServerMetrics
from server.latest.cache import LatestCache, NodeLatest, StalePolicy
from server.promql.values import NAME, Labels, make_labels
from server.settings import ServerSettings
from server.storage.errors import StorageUnavailableError
from server.storage.store import Store
from server.tick_loop import TickLoop

_log = logging.getLogger(__name__)
REPLICA_LABEL = "replica"
NODE_PREFIX = "dcmon-replica/"
CLOCK_SKEW = "dcmon_node_clock_skew_seconds"
Sample = tuple[Labels, float]


def replica_name(settings: ServerSettings) -> str:
    """Returns: this replica's name, ``<host>:<listen port>``: stable across restarts (so a
    restart is a counter reset, not a new series) and distinct for replicas on one host."""
    return f"{socket.gethostname()}:{settings.listen_port}"


def replica_node(replica: str, interval_seconds: float) -> PseudoNode:
    """Returns: the server-side node the replica ``replica`` writes its series to."""
    name = f"{NODE_PREFIX}{replica[:200]}"
    return PseudoNode(node_id_for(name), name, interval_seconds)


def counter_samples(counters: Iterable[Collector], replica: str) -> list[Sample]:
    """Returns: every ``*_total`` sample of ``counters``, labelled with ``replica``."""
    out = []
    for collector in counters:
        for family in collector.collect():
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    labels = {**sample.labels, REPLICA_LABEL: replica, NAME: sample.name}
                    out.append((make_labels(labels), float(sample.value)))
    return out


def skew_samples(
    nodes: Iterable[NodeLatest], policy: StalePolicy, now: float, replica: str
) -> list[Sample]:
    """Returns: ``dcmon_node_clock_skew_seconds`` of each node up that sent its clock to this
    replica (one per name: the node id that pushed last), labelled like ``dcmon_node_up``."""
    newest: dict[str, NodeLatest] = {}
    for node in nodes:
        if node.clock_skew_seconds is None or not policy.is_up(node, now):
            continue
        seen = newest.get(node.name)
        if seen is None or node.last_push > seen.last_push:
            newest[node.name] = node
    out = []
    for name, node in sorted(newest.items()):
        labels = {**node.labels, "instance": name, REPLICA_LABEL: replica, NAME: CLOCK_SKEW}
        assert node.clock_skew_seconds is not None
        out.append((make_labels(labels), node.clock_skew_seconds))
    return out


class SelfSeries:
    """One replica's writer of its own series; ``tick`` writes when the grid's slot has come.

    Thread safety: ``tick`` and ``write`` are called from one thread (the loop, or a test)."""

    def __init__(
        self,
        replica: str,
        interval_seconds: float,
        counters: Sequence[Collector],
        nodes: Callable[[], Iterable[NodeLatest]],
        policy: StalePolicy,
        writer: SeriesWriter,
        clock: Callable[[], float],
    ) -> None:
        self.replica = replica
        self.node = replica_node(replica, interval_seconds)
        self._interval_ms = max(1, round(interval_seconds * 1000))
        self._counters = counters
        self._nodes = nodes
        self._policy = policy
        self._writer = writer
        self._clock = clock
        self._next_ms: int | None = None
        self._previous_ms = round(clock() * 1000)  # the counters were all absent (0) then
        self._seed_ms: dict[Labels, int] = {}  # counter series not written yet -> their 0's time
        self._written: set[Labels] = set()
        self._wrote_series = False
        self.failures = 0
        self.rounds = 0

    def tick(self, now: float) -> float:
        """Write if the slot has come at ``now`` (Unix seconds); returns seconds to the next."""
        now_ms = round(now * 1000)
        if self._next_ms is None or now_ms >= self._next_ms:
            try:
                self.write(now)
            except StorageUnavailableError as exc:
                self.failures += 1
                _log.warning("writing the server's own series failed: %s", exc)
            self._next_ms = slot_at_or_before(now_ms, self._interval_ms, 0) + self._interval_ms
        return max(0.0, (self._next_ms - now_ms) / 1000)

    def write(self, now: float) -> None:
        """Collect and store this replica's series at ``now``. Raises: StorageUnavailableError
        (nothing is marked written, so the next round writes the 0s again)."""
        ts_ms = round(now * 1000)
        counters = counter_samples(self._counters, self.replica)
        for labels, _ in counters:
            if labels not in self._written:
                self._seed_ms.setdefault(labels, self._previous_ms + 1)
        self._previous_ms = ts_ms
        samples = counters + skew_samples(self._nodes(), self._policy, now, self.replica)
        if not samples and not self._wrote_series:
            return
        seeds: dict[int, list[Sample]] = defaultdict(list)
        for labels, _ in counters:
            if labels in self._seed_ms:
                seeds[min(self._seed_ms[labels], ts_ms - 1)].append((labels, 0.0))
        for seed_ms, zeros in sorted(seeds.items()):
            self._writer.write(self.node, seed_ms, zeros, now)
        self._writer.write(self.node, ts_ms, samples, now)
        for labels, _ in counters:
            self._written.add(labels)
            self._seed_ms.pop(labels, None)
        self._wrote_series = bool(samples)
        self.rounds += 1


class SelfSeriesLoop(TickLoop):
    """The background thread of ``SelfSeries``: ticks, sleeps to the next slot, never dies
    silently; ``stop`` ends it within one wait."""

    def __init__(self, series: SelfSeries, clock: Callable[[], float]) -> None:
        super().__init__(
            series.tick, clock, thread_name="dcmon-self-series", what="server's own series writer"
        )
        self.series = series

    @classmethod
    def of_server(
        cls,
        settings: ServerSettings,
        metrics: ServerMetrics,
        latest: LatestCache,
        policy: StalePolicy,
        store: Store,
        clock: Callable[[], float],
    ) -> SelfSeriesLoop:
        """Returns: the loop writing this server's ingest counters and its nodes' clock skew
        through ``store``, every ``rule_evaluation_interval_seconds``."""
        counters = (
            metrics.ingest_rejected,
            metrics.ingest_refused_series,
            metrics.node_refused_series,
        )
        series = SelfSeries(
            replica_name(settings),
            settings.rule_evaluation_interval_seconds,
            counters,
            latest.nodes,
            policy,
            StoreSeriesWriter(store),
            clock,
        )
        return cls(series, clock)
