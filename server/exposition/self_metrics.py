"""The server's own metrics (ingest traffic, rejections, refused series, latency, nodes), via
prometheus_client.

The registry is built per application, never at import time, so tests get a fresh one.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from agent.wire.catalog import Catalog
from server.exposition.render import format_value


class _NodeCounts(Collector):
    def __init__(self, counts: Callable[[], tuple[int, int]], help_text: str) -> None:
        self._counts = counts
        self._help = help_text

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up, down = self._counts()
        family = GaugeMetricFamily("dcmon_server_nodes", self._help, labels=["state"])
        family.add_metric(["up"], up)
        family.add_metric(["down"], down)
        yield family


class ServerMetrics:
    """Counters and histograms the ingest path updates, rendered on /metrics."""

    def __init__(self, catalog: Catalog, node_counts: Callable[[], tuple[int, int]]) -> None:
        def help_of(name: str) -> str:
            return catalog[name].help

        self._help_of = help_of

        # `_created` series would be families outside the catalog; they add nothing here.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = CollectorRegistry(auto_describe=True)
        self.ingest_requests = Counter(
            "dcmon_server_ingest_requests",
            help_of("dcmon_server_ingest_requests_total"),
            ["code"],
            registry=self.registry,
        )
        self.ingest_samples = Counter(
            "dcmon_server_ingest_samples",
            help_of("dcmon_server_ingest_samples_total"),
            registry=self.registry,
        )
        self.ingest_rejected = Counter(
            "dcmon_server_ingest_rejected_batches",
            help_of("dcmon_server_ingest_rejected_batches_total"),
            ["reason"],
            registry=self.registry,
        )
        self.ingest_refused_series = Counter(
            "dcmon_server_ingest_refused_series",
            help_of("dcmon_server_ingest_refused_series_total"),
            ["reason"],
            registry=self.registry,
        )
        self.node_refused_series = Counter(
            "dcmon_node_refused_series",
            help_of("dcmon_node_refused_series_total"),
            ["instance", "reason"],
            registry=self.registry,
        )
        self.ingest_duration = Histogram(
            "dcmon_server_ingest_duration_seconds",
            help_of("dcmon_server_ingest_duration_seconds"),
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        # Its own registry: agents send the same process_* names with their node's instance,
        # and a name may have one HELP/TYPE header only, so these lines go under the nodes'.
        self.process_registry = CollectorRegistry(auto_describe=True)
        ProcessCollector(registry=self.process_registry)
        self.registry.register(_NodeCounts(node_counts, help_of("dcmon_server_nodes")))

    def watch_leadership(self, is_leader: Callable[[], bool]) -> None:
        """Expose ``dcmon_server_leader``: 1 while this replica runs the singleton maintenance."""
        gauge = Gauge(
            "dcmon_server_leader", self._help_of("dcmon_server_leader"), registry=self.registry
        )
        gauge.set_function(lambda: 1.0 if is_leader() else 0.0)

    def watch_admission(self, inflight: Callable[[], int], waiting: Callable[[], int]) -> None:
        """Expose the ingest admission's slots in use and its queue."""
        slots = Gauge(
            "dcmon_server_ingest_inflight",
            self._help_of("dcmon_server_ingest_inflight"),
            registry=self.registry,
        )
        slots.set_function(lambda: float(inflight()))
        queue = Gauge(
            "dcmon_server_ingest_waiting",
            self._help_of("dcmon_server_ingest_waiting"),
            registry=self.registry,
        )
        queue.set_function(lambda: float(waiting()))

    def render(self) -> str:
        return generate_latest(self.registry).decode()

    def process_lines(self) -> dict[str, str]:
        """Returns: sample name -> this process's ``process_*`` line, without HELP and TYPE (the
        catalog's header over the agents' series of the same name covers it)."""
        return {
            sample.name: f"{sample.name} {format_value(float(sample.value))}\n"
            for family in self.process_registry.collect()
            for sample in family.samples
        }
