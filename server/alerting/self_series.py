"""The server's own series, stored: its health, ingest refusals and node clock skew, per replica.

Stage: the server's registry and the latest cache -> storage, so dcmon's PromQL, rules and
Grafana through its query API see what only ``/metrics`` showed before (the pack's
DcmonServerIngestRefusals, DcmonServerSeriesRefused, DcmonNodeClockSkew; the alerts dashboard's
server panels). Every replica writes, on its own server-side node (``dcmon-replica/<replica>``,
``pseudo_nodes``), on an epoch-aligned grid, as often as the nodes up on it push (the
shortest of their intervals, at least 1 s) but at least once per rule-evaluation default
interval, these series, each labelled ``replica="<host>:<port>"``
(``replica_name``), with the names and labels they have on ``/metrics``:

- the cumulative ones (``STORED``'s counters and histogram): ingest requests by code, samples
  stored, the ingest duration histogram (``_bucket{le}``, ``_sum``, ``_count``), batches and
  series refused by reason, a node's refused series (``instance``, ``reason``) and
  notifications by receiver and outcome (``server/exposition/self_metrics.py``,
  ``server/notify/metrics.py``). Each replica counts what it did itself, so each writes its
  own; a restarted replica's counters start again at 0 under the same name, a reset that
  ``increase`` and ``rate`` handle. A series written for the first time by this process gets
  a 0 one millisecond after the previous round (when it was still absent or at 0, so 0 is its
  true value there; the first round's previous time is the process's start): without it, a
  counter that appears at 3 and stays there would never show an increase.
- the gauges: ``dcmon_server_nodes{state}`` (the nodes this replica's latest cache knows) and
  ``dcmon_server_leader``.
- ``dcmon_node_clock_skew_seconds{instance, <node labels>}``: the node's clock minus this
  replica's, from the latest cache, for the nodes whose last push to this replica is within
  the node's stale window (the ``dcmon_node_up`` rule). The replica that receives a node's
  pushes measures its skew; the ``replica`` label keeps two replicas that both do (a
  round-robin load balancer) from writing one label set twice, and says whose clock it was
  measured against. A node that moved to another replica ends here within its stale window.

Cost: one collection of those families a round (about 25 series a replica, plus the refusal
and notification label sets), never per request. A replica process that has counted nothing
yet (a bare server, a test's app, a server just restarted on a database whose nodes have not
pushed to it) writes none of the registry's series, so it adds no series of its own to what
PromQL and exact sample counts see; once it has, it writes them every round. A round with
nothing to write writes nothing, unless the previous one wrote series (then an empty batch
ends them, as the query source's staleness rules read it).
Failures are logged and counted; the loop goes on.
"""

from __future__ import annotations

import logging
import math
import socket
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Protocol

from prometheus_client import Metric

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
MIN_INTERVAL_S = 1.0
DURATION = "dcmon_server_ingest_duration_seconds"
# Every sample name stored, as ``/metrics`` exposes it (a histogram's three parts).
STORED = (
    "dcmon_server_ingest_requests_total",
    "dcmon_server_ingest_samples_total",
    f"{DURATION}_bucket",
    f"{DURATION}_sum",
    f"{DURATION}_count",
    "dcmon_server_ingest_rejected_batches_total",
    "dcmon_server_ingest_refused_series_total",
    "dcmon_node_refused_series_total",
    "dcmon_server_notifications_total",
    "dcmon_server_nodes",
    "dcmon_server_leader",
)
# The samples of a family of each type that are stored, and whether they are cumulative.
_PARTS: dict[str, tuple[tuple[str, ...], bool]] = {
    "counter": (("_total",), True),
    "histogram": (("_bucket", "_sum", "_count"), True),
    "gauge": (("",), False),
}


class Collects(Protocol):
    """A prometheus_client collector, or a registry restricted to some names."""

    def collect(self) -> Iterable[Metric]: ...


def replica_name(settings: ServerSettings) -> str:
    """Returns: this replica's name, ``<host>:<listen port>``: stable across restarts (so a
    restart is a counter reset, not a new series) and distinct for replicas on one host."""
    return f"{socket.gethostname()}:{settings.listen_port}"


def replica_node(replica: str, interval_seconds: float) -> PseudoNode:
    """Returns: the server-side node the replica ``replica`` writes its series to."""
    name = f"{NODE_PREFIX}{replica[:200]}"
    return PseudoNode(node_id_for(name), name, interval_seconds)


def registry_samples(
    collectors: Iterable[Collects], replica: str
) -> tuple[list[Sample], list[Sample]]:
    """Returns: the cumulative samples (counters' ``*_total``, histograms' ``_bucket``,
    ``_sum`` and ``_count``) and the gauges' samples of ``collectors``, each labelled with
    ``replica``; families of other types are left out."""
    cumulative: list[Sample] = []
    gauges: list[Sample] = []
    for collector in collectors:
        for family in collector.collect():
            parts = _PARTS.get(family.type)
            if parts is None:
                continue
            suffixes, is_cumulative = parts
            into = cumulative if is_cumulative else gauges
            for sample in family.samples:
                if sample.name.removeprefix(family.name) in suffixes:
                    labels = {**sample.labels, REPLICA_LABEL: replica, NAME: sample.name}
                    into.append((make_labels(labels), float(sample.value)))
    return cumulative, gauges


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

    ``collectors``: where the counters, histograms and gauges are read (``registry_samples``).
    ``interval_seconds``: the longest time between rounds; shorter while nodes up here push
    more often (``interval_at``).
    Thread safety: ``tick`` and ``write`` are called from one thread (the loop, or a test)."""

    def __init__(
        self,
        replica: str,
        interval_seconds: float,
        collectors: Sequence[Collects],
        nodes: Callable[[], Iterable[NodeLatest]],
        policy: StalePolicy,
        writer: SeriesWriter,
        clock: Callable[[], float],
    ) -> None:
        self.replica = replica
        self.node = replica_node(replica, interval_seconds)
        self._max_interval_s = interval_seconds
        self._collectors = collectors
        self._nodes = nodes
        self._policy = policy
        self._writer = writer
        self._clock = clock
        self._next_ms: int | None = None
        self._previous_ms = round(clock() * 1000)  # the counters were all absent (0) then
        self._seed_ms: dict[Labels, int] = {}  # counter series not written yet -> their 0's time
        self._written: set[Labels] = set()
        self._wrote_series = False
        self._active = False  # once this process has counted something (served a push)
        self.failures = 0
        self.rounds = 0

    def tick(self, now: float) -> float:
        """Write if the slot has come at ``now`` (Unix seconds); returns seconds to the next."""
        now_ms = round(now * 1000)
        if self._next_ms is None or now_ms >= self._next_ms:
            interval_s = self.interval_at(now)
            if interval_s != self.node.interval_seconds:
                self.node = replica_node(self.replica, interval_s)
            try:
                self.write(now)
            except StorageUnavailableError as exc:
                self.failures += 1
                _log.warning("writing the server's own series failed: %s", exc)
            interval_ms = max(1, round(interval_s * 1000))
            self._next_ms = slot_at_or_before(now_ms, interval_ms, 0) + interval_ms
        return max(0.0, (self._next_ms - now_ms) / 1000)

    def interval_at(self, now: float) -> float:
        """Returns: seconds to the next round: the shortest push interval of the nodes up on
        this replica (so its own series have the resolution of theirs, and a dashboard's rate
        window fit for node series fits these), within 1 s and ``interval_seconds``."""
        pushes = [n.interval_seconds for n in self._nodes() if self._policy.is_up(n, now)]
        return min(self._max_interval_s, max(MIN_INTERVAL_S, min(pushes, default=math.inf)))

    def write(self, now: float) -> None:
        """Collect and store this replica's series at ``now``. Raises: StorageUnavailableError
        (nothing is marked written, so the next round writes the 0s again)."""
        ts_ms = round(now * 1000)
        counters, gauges = registry_samples(self._collectors, self.replica)
        for labels, _ in counters:
            if labels not in self._written:
                self._seed_ms.setdefault(labels, self._previous_ms + 1)
        self._previous_ms = ts_ms
        nodes = list(self._nodes())
        self._active = self._active or any(v for _, v in counters)
        if not self._active:  # nothing counted: a bare or just restarted server adds no series
            counters, gauges = [], []
        samples = counters + gauges + skew_samples(nodes, self._policy, now, self.replica)
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
        """Returns: the loop writing this server's ``STORED`` series from its registry (the
        notification counter too, registered there once notifications start) and its nodes'
        clock skew through ``store``, every ``rule_evaluation_interval_seconds``."""
        series = SelfSeries(
            replica_name(settings),
            settings.rule_evaluation_interval_seconds,
            (metrics.registry.restricted_registry(STORED),),
            latest.nodes,
            policy,
            StoreSeriesWriter(store),
            clock,
        )
        return cls(series, clock)
