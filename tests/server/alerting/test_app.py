"""Rule evaluation inside a real server app (SQLite, fake clock): results and ALERTS as PromQL
series with their labels exactly, dcmon_node_up as a rule's input, state across restarts."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from agent.wire.schema import MetricFamily
from server.alerting.notifier import MemoryNotifier
from server.alerting.service import AlertingService
from server.app import create_app
from server.auth.secrets import sha256_hex
from server.settings import ServerSettings
from tests.factories import identity, make_batch
from tests.server.conftest import START, TOKEN, FakeClock, push

RULES = """
groups:
  - name: load
    interval: 1m
    rules:
      - record: instance:load:max
        expr: max by (instance) (node_load1)
      - record: fleet:load:sum
        expr: sum(node_load1)
      - alert: Loaded
        expr: instance:load:max > 1
        for: 3m
        labels: {severity: warning}
      - alert: NodeDown
        expr: dcmon_node_up == 0
        for: 1m
"""
ADMIN_KEY = "dcm_admin_key_for_alerting_tests"


class Server:
    """One server process over the test's database, its rule thread stopped: the test ticks."""

    def __init__(self, client: TestClient, clock: FakeClock, notifier: MemoryNotifier) -> None:
        self.client = client
        self.clock = clock
        self.notifier = notifier
        self.alerting: AlertingService = client.app.state.alerting  # type: ignore[attr-defined]
        self.alerting.stop()
        self.alerting.evaluator.lead()
        self.seq = int(clock.now)

    @property
    def phase(self) -> float:
        return self.alerting.evaluator.snapshot()[0].phase_ms / 1000

    def push(self, start: float, end: float, load: float) -> None:
        t = start
        while t <= end:
            self.clock.now = t
            self.seq += 1
            metrics = [MetricFamily(name="node_load1", samples=[({}, load)])]
            batch = make_batch(self.seq, t, identity(), metrics, with_inventory=False)
            assert push(self.client, batch).status_code == 200
            t += 10

    def tick(self, t: float) -> None:
        self.clock.now = t
        self.alerting.evaluator.tick(t)

    def query(self, expr: str, t: float) -> list[dict[str, Any]]:
        body = self.client.get("/prometheus/api/v1/query", params={"query": expr, "time": t})
        assert body.status_code == 200, body.text
        result: list[dict[str, Any]] = body.json()["data"]["result"]
        return result


@contextmanager
def server(tmp_path: Path, clock: FakeClock) -> Iterator[Server]:
    rules = tmp_path / "rules.yaml"
    if not rules.exists():
        rules.write_text(RULES)
    settings = ServerSettings(
        data_dir=tmp_path,
        ingest_token_sha256=[sha256_hex(TOKEN)],
        admin_key_sha256=[sha256_hex(ADMIN_KEY)],
        open_reads=True,
        rules_shipped=False,
        rule_files=[str(rules)],
    )
    notifier = MemoryNotifier()
    with TestClient(create_app(settings, clock=clock, notifier=notifier)) as client:
        yield Server(client, clock, notifier)


def _first_slot(s: Server, after: float) -> float:
    slot = (after - s.phase) // 60 * 60 + s.phase
    return slot + 60


def test_a_restart_keeps_the_for_timer_and_does_not_notify_again(tmp_path: Path) -> None:
    clock = FakeClock(START)
    with server(tmp_path, clock) as s:
        s0 = _first_slot(s, START + 20)
        s.push(START, s0 + 60, 5.0)
        s.tick(s0)
        s.tick(s0 + 60)
        [pending] = s.client.get("/api/v1/alerts").json()["alerts"]
        assert pending["state"] == "pending" and pending["active_at"] == s0 - 10  # offset 10 s
    with server(tmp_path, clock) as s:  # a restart two minutes into the three
        s.push(s0 + 70, s0 + 250, 5.0)
        s.tick(s0 + 120)
        s.tick(s0 + 180)
        [firing] = s.client.get("/api/v1/alerts").json()["alerts"]
        assert firing["state"] == "firing"
        assert firing["active_at"] == s0 - 10 and firing["fired_at"] == s0 + 170
        [sent] = s.notifier.sent()
        assert sent.labels == {"alertname": "Loaded", "instance": "gpu01", "severity": "warning"}
        # the series, with their labels exactly, on the Prometheus API
        at = s0 + 170
        assert s.query("ALERTS", at) == [
            {
                "metric": {
                    "__name__": "ALERTS",
                    "alertname": "Loaded",
                    "alertstate": "firing",
                    "instance": "gpu01",
                    "severity": "warning",
                },
                "value": [at, "1"],
            }
        ]
        [for_state] = s.query("ALERTS_FOR_STATE", at)
        assert for_state["value"][1] == str(int(s0 - 10))
        [recorded] = s.query("instance:load:max", at)
        assert recorded["metric"] == {"__name__": "instance:load:max", "instance": "gpu01"}
        assert s.query("fleet:load:sum", at) == [
            {"metric": {"__name__": "fleet:load:sum"}, "value": [at, "5"]}
        ]
        assert s.query('ALERTS{instance="gpu01"}', at)[0]["metric"]["alertname"] == "Loaded"
        assert s.query('ALERTS{instance="other"}', at) == []
        [up] = s.query("dcmon_node_up", at)
        assert up["metric"] == {"__name__": "dcmon_node_up", "instance": "gpu01"}
        prom = s.client.get("/prometheus/api/v1/alerts").json()["data"]["alerts"]
        assert [a["labels"]["alertname"] for a in prom] == ["Loaded"]
        # server-side nodes are not nodes
        nodes = s.client.get("/api/v1/nodes").json()["nodes"]
        assert [n["name"] for n in nodes] == ["gpu01"]
    with server(tmp_path, clock) as s:  # another restart, just after it was sent
        s.push(s0 + 260, s0 + 310, 5.0)
        s.tick(s0 + 240)
        # The first round after a restart hands every sent alert over again (what the old
        # process's notifier delivered is unknown; Alertmanager and the notification log
        # drop what the receiver has), then the resend delay (60 s) counts from there.
        assert [n.labels["alertname"] for n in s.notifier.sent()] == ["Loaded"]
        s.tick(s0 + 300)
        assert len(s.notifier.sent()) == 1
        s.tick(s0 + 360)
        assert len(s.notifier.sent()) == 2


def test_node_down_fires_from_dcmon_node_up_and_holds_the_nodes_alerts(tmp_path: Path) -> None:
    clock = FakeClock(START)
    with server(tmp_path, clock) as s:
        s0 = _first_slot(s, START + 20)
        s.push(START, s0 + 200, 5.0)
        for k in range(5):
            s.tick(s0 + 60 * k)
        loaded = [a for a in s.client.get("/api/v1/alerts").json()["alerts"]]
        assert [(a["rule"], a["state"]) for a in loaded] == [("Loaded", "firing")]
        for k in range(5, 12):  # the node is silent from s0 + 200 on
            s.tick(s0 + 60 * k)
        alerts = {a["rule"]: a for a in s.client.get("/api/v1/alerts").json()["alerts"]}
        assert alerts["NodeDown"]["state"] == "firing"
        assert alerts["NodeDown"]["labels"] == {"alertname": "NodeDown", "instance": "gpu01"}
        assert alerts["Loaded"]["state"] == "firing" and alerts["Loaded"]["held"] is True
        [up] = s.query("dcmon_node_up", s0 + 660)
        assert up["value"][1] == "0"


def test_reload_endpoint_needs_admin_and_keeps_rules_of_a_broken_file(tmp_path: Path) -> None:
    clock = FakeClock(START)
    with server(tmp_path, clock) as s:
        assert s.client.post("/api/v1/rules/reload").status_code == 401
        (tmp_path / "rules.yaml").write_text("groups: [{name: load, rules: [{record: 'a b'}]}]")
        auth = {"Authorization": f"Bearer {ADMIN_KEY}"}
        answer = s.client.post("/api/v1/rules/reload", headers=auth)
        assert answer.status_code == 422
        assert list(answer.json()["file_errors"]) == [str(tmp_path / "rules.yaml")]
        rules = s.client.get("/api/v1/rules").json()
        assert [r["name"] for r in rules["groups"][0]["rules"]] == [
            "instance:load:max",
            "fleet:load:sum",
            "Loaded",
            "NodeDown",
        ]
        assert rules["file_errors"]
        (tmp_path / "rules.yaml").write_text(RULES.replace("NodeDown", "Down"))
        answer = s.client.post("/api/v1/rules/reload", headers=auth)
        assert answer.status_code == 200
        names = [r["name"] for r in s.client.get("/api/v1/rules").json()["groups"][0]["rules"]]
        assert names == ["instance:load:max", "fleet:load:sum", "Loaded", "Down"]


def test_the_shipped_pack_evaluates_over_real_storage_without_errors(tmp_path: Path) -> None:
    clock = FakeClock(START)
    settings = ServerSettings(
        data_dir=tmp_path, ingest_token_sha256=[sha256_hex(TOKEN)], rules_shipped=True
    )
    with TestClient(create_app(settings, clock=clock)) as client:
        alerting: AlertingService = client.app.state.alerting  # type: ignore[attr-defined]
        alerting.stop()
        alerting.evaluator.lead()
        runs = alerting.evaluator.snapshot()
        assert {run.loaded.file for run in runs} >= {"alerts/gpu.yaml"}
        for seq in range(1, 31):
            clock.now = START + 10 * seq
            assert push(client, make_batch(seq, clock.now)).status_code == 200
        longest = max(run.interval_ms for run in runs) / 1000
        t = clock.now
        while t <= clock.now + longest:
            alerting.evaluator.tick(t)
            t += 5
        failed = {
            (run.loaded.key, run.loaded.group.rules[i].name): status.last_error
            for run in alerting.evaluator.snapshot()
            for i, status in enumerate(run.rules)
            if status.health != "ok"
        }
        assert failed == {}
        assert all(run.evaluations >= 1 for run in alerting.evaluator.snapshot())
