"""The server's own series in storage: counters per replica with their first 0 and restarts
as resets, the health series with the names and labels of ``/metrics`` (ingest requests,
samples and latency histogram, nodes, leader, notifications), clock skew of the nodes that
push to this replica, and, in a real app, the pack's DcmonServerIngestRefusals and
DcmonServerSeriesRefused firing under dcmon's own evaluator, ``abs(dcmon_node_clock_skew_seconds)``
and the alerts dashboard's server queries on the Prometheus query API."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from agent.wire.catalog import default_catalog
from agent.wire.schema import MetricFamily
from server.alerting import service as alerting_service
from server.alerting.notifier import MemoryNotifier
from server.alerting.self_series import STORED, SelfSeries, SelfSeriesLoop, skew_samples
from server.alerting.service import AlertingService
from server.alerting.writeback import MemorySeriesWriter
from server.app import create_app
from server.auth.secrets import sha256_hex
from server.exposition.self_metrics import ServerMetrics
from server.latest.cache import NodeLatest, StalePolicy
from server.notify.metrics import PrometheusCounts
from server.promql.engine import Engine
from server.promql.values import Vector
from server.query import source
from server.settings import ServerSettings
from server.storage.leader import AdvisoryLockLeader, InMemoryLeader, Leadership, LockTable
from tests.factories import identity, make_batch
from tests.server.conftest import START, TOKEN, FakeClock, push

PACK = Path(__file__).parents[3] / "alerts" / "dcmon.yaml"
POLICY = StalePolicy(intervals=3, min_seconds=30, forget_after_seconds=86400)
REJECTED = "dcmon_server_ingest_rejected_batches_total"
RULE_FILE = """
groups:
  - name: refusals
    interval: 1m
    rules:
      - alert: Refusals
        expr: increase(dcmon_server_ingest_rejected_batches_total[10m]) > 0
"""


def _metrics() -> ServerMetrics:
    return ServerMetrics(default_catalog(), lambda: (0, 0))


def _writer_of(
    metrics: ServerMetrics, writer: MemorySeriesWriter, replica: str, now: float
) -> SelfSeries:
    counters = (metrics.ingest_rejected, metrics.node_refused_series)
    return SelfSeries(replica, 60, counters, list, POLICY, writer, lambda: now)


def _values(writer: MemorySeriesWriter, expr: str, t: float) -> dict[str, float]:
    """Returns: the instant answer at ``t``, keyed by each series' ``replica`` label."""
    value = Engine(writer.series).instant(expr, round(t * 1000)).value
    assert isinstance(value, Vector)
    return {
        dict(s.labels).get("replica", ""): float(s.values[0]) for s in value.series if s.present[0]
    }


def test_a_counter_first_written_gets_a_0_so_increase_sees_its_first_refusals() -> None:
    writer = MemorySeriesWriter()
    metrics = _metrics()
    series = _writer_of(metrics, writer, "a:8470", START)
    series.tick(START)
    assert writer.batches == []  # nothing refused: no node, no series
    metrics.ingest_rejected.labels("unauthorized").inc(3)
    assert series.tick(START + 30) == 30  # not before the next slot of the minute grid
    assert writer.batches == []
    assert series.tick(START + 60) == 60
    name, start_ms = series.node.name, round(START * 1000)
    assert writer.batches == [(name, start_ms + 1, 1), (name, start_ms + 60_000, 1)]
    series.tick(START + 120)
    series.tick(START + 180)  # three at one value: only the 0 shows the increase
    increase = f"increase({REJECTED}[10m])"
    assert _values(writer, increase, START + 190)["a:8470"] >= 3
    [labels] = {labels for labels, _, _ in _raw(writer)}
    assert dict(labels) == {"__name__": REJECTED, "reason": "unauthorized", "replica": "a:8470"}


def _raw(writer: MemorySeriesWriter) -> list[tuple[Any, int, float]]:
    out = []
    for series in writer.series.select([], 0, 2**62):
        pairs = zip(series.ts, series.values, strict=True)
        out += [(series.labels, int(t), float(v)) for t, v in pairs]
    return out


def test_replicas_write_their_own_counters_and_a_restart_is_a_reset() -> None:
    writer = MemorySeriesWriter()
    first_a, b = _metrics(), _metrics()
    a_series = _writer_of(first_a, writer, "a:8470", START)
    b_series = _writer_of(b, writer, "b:8470", START)
    first_a.ingest_rejected.labels("invalid_batch").inc(2)
    b.ingest_rejected.labels("invalid_batch").inc(5)
    for t in (START + 60, START + 120):
        a_series.tick(t)
        b_series.tick(t)
    restarted = _metrics()  # replica a again, under the same name: its counters start at 0
    a_series = _writer_of(restarted, writer, "a:8470", START + 150)
    restarted.ingest_rejected.labels("invalid_batch").inc(1)
    for t in (START + 180, START + 240):
        a_series.tick(t)
        b_series.tick(t)
    at = START + 250
    assert _values(writer, f"resets({REJECTED}[10m])", at) == {"a:8470": 1, "b:8470": 0}
    increases = _values(writer, f"increase({REJECTED}[10m])", at)
    assert increases["a:8470"] >= 3 and increases["b:8470"] >= 5  # 2 + 1 across the restart
    assert _values(writer, REJECTED, at) == {"a:8470": 1, "b:8470": 5}


def _exposed(metrics: ServerMetrics) -> set[tuple[str, frozenset[tuple[str, str]]]]:
    """Returns: (sample name, labels) of every ``STORED`` sample ``/metrics`` shows now."""
    return {
        (sample.name, frozenset(sample.labels.items()))
        for family in text_string_to_metric_families(metrics.render())
        for sample in family.samples
        if sample.name in STORED
    }


def _stored(writer: MemorySeriesWriter, replica: str) -> set[tuple[str, frozenset[Any]]]:
    out = set()
    for labels, _, _ in _raw(writer):
        pairs = dict(labels)
        assert pairs.pop("replica") == replica
        out.add((pairs.pop("__name__"), frozenset(pairs.items())))
    return out


def test_health_series_are_stored_as_metrics_shows_them_and_histograms_get_their_0s() -> None:
    writer = MemorySeriesWriter()
    metrics = ServerMetrics(default_catalog(), lambda: (3, 1))
    metrics.watch_leadership(lambda: True)
    registry = metrics.registry.restricted_registry(STORED)
    series = SelfSeries("a:8470", 60, (registry,), list, POLICY, writer, lambda: START)
    # Registered after the writer was built, as the app's notifier is: found all the same.
    PrometheusCounts(metrics.registry).count("ops-webhook", "sent")
    metrics.ingest_requests.labels("200").inc(4)
    metrics.ingest_requests.labels("401").inc()
    metrics.ingest_samples.inc(1200)
    for seconds in (0.003, 0.004, 0.2):
        metrics.ingest_duration.observe(seconds)
    for t in (START + 60, START + 120, START + 180):
        series.tick(t)
    exposed = _exposed(metrics)
    assert {name for name, _ in exposed} == set(STORED) - {
        "dcmon_server_ingest_rejected_batches_total",  # nothing refused: not on /metrics either
        "dcmon_server_ingest_refused_series_total",
        "dcmon_node_refused_series_total",
    }
    assert _stored(writer, "a:8470") == exposed  # no process_*, no _created
    at = START + 190
    assert _values(writer, 'dcmon_server_nodes{state="up"}', at) == {"a:8470": 3}
    assert _values(writer, 'dcmon_server_nodes{state="down"}', at) == {"a:8470": 1}
    assert _values(writer, "dcmon_server_leader", at) == {"a:8470": 1}
    # Each cumulative series starts with a 0 after the process's start, so what came before
    # the first round still counts.
    count = "increase(dcmon_server_ingest_duration_seconds_count[10m])"
    assert _values(writer, count, at)["a:8470"] >= 3
    assert _values(writer, "increase(dcmon_server_ingest_samples_total[10m])", at)["a:8470"] > 0
    sent = 'increase(dcmon_server_notifications_total{receiver="ops-webhook",outcome="sent"}[10m])'
    assert _values(writer, sent, at)["a:8470"] > 0
    median = (
        "histogram_quantile(0.5, sum by (le) "
        "(increase(dcmon_server_ingest_duration_seconds_bucket[10m])))"
    )
    assert 0.0025 < _values(writer, median, at)[""] <= 0.005
    first = [(t, v) for labels, t, v in _raw(writer) if dict(labels).get("le") == "+Inf"]
    assert sorted(first)[0] == (round(START * 1000) + 1, 0.0)


def _node(name: str, node_id: str, *, skew: float | None, last_push: float) -> NodeLatest:
    return NodeLatest(
        node_id=node_id,
        name=name,
        labels={"rack": "r1"},
        interval_seconds=10,
        last_push=last_push,
        batch_ts=last_push,
        seq=1,
        families={},
        clock_skew_seconds=skew,
    )


def test_skew_is_written_for_nodes_up_on_this_replica_once_per_name() -> None:
    nodes = [
        _node("gpu01", "1" * 32, skew=-7.0, last_push=START - 5),
        _node("gpu02", "2" * 32, skew=None, last_push=START - 5),  # sent no clock
        _node("gpu03", "3" * 32, skew=4.0, last_push=START - 31),  # down (stale window 30 s)
        _node("gpu04", "4" * 32, skew=1.0, last_push=START - 20),  # an old id of the name
        _node("gpu04", "5" * 32, skew=2.0, last_push=START - 2),
    ]
    samples = skew_samples(nodes, POLICY, START, "a:8470")
    assert [(dict(labels), value) for labels, value in samples] == [
        (
            {"__name__": "dcmon_node_clock_skew_seconds", "instance": "gpu01", "rack": "r1",
             "replica": "a:8470"},
            -7.0,
        ),
        (
            {"__name__": "dcmon_node_clock_skew_seconds", "instance": "gpu04", "rack": "r1",
             "replica": "a:8470"},
            2.0,
        ),
    ]  # fmt: skip


def test_a_bare_server_writes_nothing_until_a_node_pushes_then_at_the_nodes_pace() -> None:
    writer = MemorySeriesWriter()
    metrics = ServerMetrics(default_catalog(), lambda: (0, 0))
    metrics.watch_leadership(lambda: True)
    nodes: list[NodeLatest] = []
    registry = metrics.registry.restricted_registry(STORED)
    series = SelfSeries("a:8470", 60, (registry,), lambda: nodes, POLICY, writer, lambda: START)
    assert series.tick(START) == 60
    assert writer.batches == []  # gauges and zero histograms of a server without a fleet
    # a node in the cache (a restart on a database of nodes) that has not pushed to this
    # process: still nothing of the server's own
    nodes.append(_node("gpu01", "1" * 32, skew=None, last_push=START + 59))  # pushes every 10 s
    assert series.tick(START + 60) == 10
    assert writer.batches == []
    metrics.ingest_requests.labels(code="200").inc()  # its first push here
    assert series.tick(START + 70) == 10
    assert series.node.interval_seconds == 10  # its series go stale at the nodes' pace
    written = {dict(labels)["__name__"] for labels, _, _ in _raw(writer)}
    assert {"dcmon_server_leader", "dcmon_server_nodes"} <= written
    assert series.tick(START + 75) == 5  # on the 10 s grid
    nodes.clear()  # back to the longest interval, the series still written
    assert series.tick(START + 80) == 40
    assert [count for _, _, count in writer.batches][-1] > 0


def test_a_round_after_the_last_series_went_writes_one_empty_batch() -> None:
    writer = MemorySeriesWriter()
    nodes = [_node("gpu01", "1" * 32, skew=3.0, last_push=START)]
    series = SelfSeries("a:8470", 60, (), lambda: nodes, POLICY, writer, lambda: START)
    series.tick(START)
    nodes.clear()
    series.tick(START + 60)
    series.tick(START + 120)
    assert [count for _, _, count in writer.batches] == [1, 0]


# -- in a real app --------------------------------------------------------------------------


@dataclass
class App:
    client: TestClient
    clock: FakeClock
    series: SelfSeries
    alerting: AlertingService

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.client.get("/api/v1/alerts").json()["alerts"]
        return alerts

    def query(self, expr: str, t: float) -> list[dict[str, Any]]:
        body = self.client.get("/prometheus/api/v1/query", params={"query": expr, "time": t})
        assert body.status_code == 200, body.text
        result: list[dict[str, Any]] = body.json()["data"]["result"]
        return result


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    """The pack's dcmon-server group as the only rules; the rule and self-series threads
    stopped (the test ticks both on the fake clock)."""
    pack = yaml.safe_load(PACK.read_text())
    [group] = [g for g in pack["groups"] if g["name"] == "dcmon-server"]
    (tmp_path / "server.yaml").write_text(yaml.safe_dump({"groups": [group]}))
    settings = ServerSettings(
        data_dir=tmp_path,
        ingest_token_sha256=[sha256_hex(TOKEN)],
        open_reads=True,
        rules_shipped=False,
        rule_files=[str(tmp_path / "server.yaml")],
        max_series_per_node=3,
    )
    clock = FakeClock(START)
    with TestClient(create_app(settings, clock=clock, notifier=MemoryNotifier())) as client:
        state = client.app.state  # type: ignore[attr-defined]
        loop: SelfSeriesLoop = state.self_series
        loop.stop()
        alerting: AlertingService = state.alerting
        alerting.stop()
        alerting.evaluator.lead()
        yield App(client, clock, loop.series, alerting)


def test_refused_batches_fire_the_packs_rule_under_dcmons_evaluator(app: App) -> None:
    app.clock.now = START + 5
    for _ in range(3):
        assert push(app.client, make_batch(), token="dcm_not_this_servers").status_code == 401
    app.series.tick(START + 60)
    phase = app.alerting.evaluator.snapshot()[0].phase_ms / 1000
    slot = (START + 70 - phase) // 60 * 60 + phase + 60  # evaluated at slot - 10 s, after it
    app.clock.now = slot
    app.alerting.evaluator.tick(slot)
    [alert] = app.alerts()
    assert alert["rule"] == "DcmonServerIngestRefusals" and alert["state"] == "firing"
    assert alert["labels"]["reason"] == "unauthenticated"
    assert alert["labels"]["replica"] == app.series.replica
    assert alert["value"] >= 3
    assert "(unauthenticated)" in alert["annotations"]["summary"]


def test_refused_series_and_clock_skew_are_queryable(app: App) -> None:
    app.clock.now = START + 50
    sent_at = {"X-Dcmon-Sent-At": f"{START + 43}"}  # the node's clock is 7 s behind
    families = [MetricFamily(name="node_load1", samples=[({"n": str(i)}, 1.0) for i in range(6)])]
    node = identity(labels={"rack": "r1"})
    batch = make_batch(1, START + 50, node, families, with_inventory=False)
    answer = push(app.client, batch, headers=sent_at)
    assert answer.status_code == 200 and answer.json()["refused"], answer.text
    app.series.tick(START + 60)  # the minute's slot
    [skew] = app.query("abs(dcmon_node_clock_skew_seconds)", START + 61)
    assert skew["metric"] == {"instance": "gpu01", "rack": "r1", "replica": app.series.replica}
    assert float(skew["value"][1]) == 7
    [refused] = app.query("increase(dcmon_node_refused_series_total[10m]) > 0", START + 61)
    assert refused["metric"]["instance"] == "gpu01"
    assert refused["metric"]["reason"] == "cardinality_limit"
    nodes = app.client.get("/api/v1/nodes").json()["nodes"]
    assert [n["name"] for n in nodes] == ["gpu01"]  # the replica's node is not a node


def test_the_alerts_dashboards_server_queries_have_data_on_the_query_api(app: App) -> None:
    app.clock.now = START + 5
    assert push(app.client, make_batch()).status_code == 200
    app.series.tick(START + 60)
    app.series.tick(START + 120)
    at = START + 121
    [requests] = app.query("sum by (code) (rate(dcmon_server_ingest_requests_total[5m]))", at)
    assert requests["metric"] == {"code": "200"} and float(requests["value"][1]) > 0
    [stored] = app.query("sum(rate(dcmon_server_ingest_samples_total[5m]))", at)
    assert float(stored["value"][1]) > 0
    p99 = (
        "histogram_quantile(0.99, sum by (le) "
        "(rate(dcmon_server_ingest_duration_seconds_bucket[5m])))"
    )
    [latency] = app.query(p99, at)
    assert 0 < float(latency["value"][1]) <= 5
    states = app.query("max by (state) (dcmon_server_nodes)", at)
    assert {r["metric"]["state"]: float(r["value"][1]) for r in states} == {"up": 1, "down": 0}
    [leaders] = app.query("sum(dcmon_server_leader)", at)
    assert float(leaders["value"][1]) == 1
    [up] = app.query("dcmon_server_nodes", at)[:1]
    assert up["metric"]["replica"] == app.series.replica and "instance" not in up["metric"]


def test_each_replica_on_one_database_writes_its_own_and_the_leader_alerts_on_both(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two replicas on one database (SQLite, and PostgreSQL where installed): each counts and
    writes what it refused; the leader's evaluation sees both, one alert per replica."""
    # A replica learns of the nodes another created when its copy of the node table is 2 s
    # old (server/storage/naming.py); every replica writes its own series from its start, so
    # read the table each query here, where the whole test takes less than that.
    monkeypatch.setattr(source, "NAMING_MAX_AGE_SECONDS", 0.0)
    monkeypatch.setattr(alerting_service, "NAMING_MAX_AGE_SECONDS", 0.0)
    (tmp_path / "server.yaml").write_text(RULE_FILE)
    table = LockTable()
    leaders: list[Leadership]
    if database_url.startswith("sqlite"):
        leaders = [InMemoryLeader(table), InMemoryLeader(table)]
    else:
        leaders = [AdvisoryLockLeader(make_url(database_url)) for _ in range(2)]
    clock = FakeClock(START)
    with ExitStack() as stack:
        apps = []
        for port, leader in zip((8471, 8472), leaders, strict=True):
            settings = ServerSettings(
                data_dir=tmp_path / str(port),
                database_url=database_url,
                listen_port=port,
                ingest_token_sha256=[sha256_hex(TOKEN)],
                open_reads=True,
                rules_shipped=False,
                rule_files=[str(tmp_path / "server.yaml")],
                maintenance_interval_seconds=3600,
            )
            app = create_app(settings, clock=clock, leader=leader, notifier=MemoryNotifier())
            client = stack.enter_context(TestClient(app))
            client.app.state.self_series.stop()  # type: ignore[attr-defined]
            client.app.state.alerting.stop()  # type: ignore[attr-defined]
            apps.append(client)
        clock.now = START + 5
        for client, refused in zip(apps, (2, 4), strict=True):
            for _ in range(refused):
                assert push(client, make_batch(), token="dcm_unknown").status_code == 401
            client.app.state.self_series.series.tick(START + 60)  # type: ignore[attr-defined]
        assert leaders[0].check()
        evaluator = apps[0].app.state.alerting.evaluator  # type: ignore[attr-defined]
        evaluator.lead()
        slot = START + 120 + evaluator.snapshot()[0].phase_ms / 1000
        clock.now = slot
        evaluator.tick(slot)
        alerts = apps[0].get("/api/v1/alerts").json()["alerts"]
        by_replica = {a["labels"]["replica"].rsplit(":", 1)[1]: a for a in alerts}
        assert sorted(by_replica) == ["8471", "8472"]
        assert by_replica["8471"]["value"] >= 2 and by_replica["8472"]["value"] >= 4
        assert {a["state"] for a in alerts} == {"firing"}
