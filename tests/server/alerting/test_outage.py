"""A 15-minute server outage while agents spool: no alert for the old data, node down once.

The scenario, on a fake clock (one simulated second a step), with the real server app on SQLite
(ingest, storage, query source, the shipped rule pack plus the rules below, the rule state in
the database across the restart) and the agents' real spool and shipper (backoff, replay pace):

- three nodes push every 10 s from T0; the server evaluates from T0 on;
- ``gpu01`` replays with the agent's defaults (32 batches a request, 2 requests a second),
  ``gpu02`` gently (one batch a request, one request a second: a backlog of 15 minutes takes
  it about 2.5 minutes, during which the server's rounds see it up but behind);
- ``gpu02`` and ``gpu03`` have a full scratch disk all along (``ScratchFull``, for 1m, fires
  before the outage); every node's load is over 5 only from minute 5 to minute 10 of the
  outage, the condition of ``HighLoad`` (for 1m), low before and after;
- the server stops at D = T0 + 10 min and starts again at U = D + 15 min over the same
  database; the agents spool meanwhile and back off to their 60 s maximum;
- ``gpu03`` is powered off at D + 12 min (its spool kept, as on disk) and boots at U + 5 min;
- the test ends at U + 12 min, everything replayed and current.

What must hold (counted at the notifier, the Alertmanager's place):

(a) ``HighLoad`` never fires and is never sent, not even after the replay, and no ``ALERTS``
    series of it is ever written: rules see the present (``slot - query_offset``), a node that
    is behind has its alerts held, skipped rounds are not evaluated afterwards. A historic
    alert is not recorded either: the condition is in the stored data at its own time, so the
    rule's expression as a range query shows it (asserted below); an alert state for a past
    no round evaluated would be a second, invented history beside that one. (A query offset
    much larger than the push interval would evaluate the outage itself once its data is in,
    and fire HighLoad late: this test fails with ``rule_query_offset_seconds = 600``.)
(b) no ``NodeDown`` for ``gpu01`` and ``gpu02``: after the server's start they look down
    until their backoff brings them back (at most its 60 s), less than the staleness window
    plus NodeDown's ``for``, and a node replaying its backlog pushes, so it is up;
(c) ``NodeDown`` for ``gpu03`` fires once (one firing episode, resent while it lasts) and is
    resolved once, after it boots;
(d) ``ScratchFull`` of ``gpu03`` (down) and of ``gpu02`` (catching up) stays firing, never
    resolved and never fired anew: held, not silently resolved because their data stopped.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from agent.wire.schema import MetricFamily
from server.alerting.notifier import MemoryNotifier, Notification
from server.alerting.service import AlertingService
from server.app import create_app
from server.auth.secrets import sha256_hex
from server.promql.values import get_label
from server.settings import ServerSettings
from tests.server.alerting.fleet import Agent, Link
from tests.server.conftest import START, TOKEN, FakeClock

RULES = """
groups:
  - name: outage-test
    interval: 1m
    rules:
      - alert: HighLoad
        expr: node_load1 > 5
        for: 1m
      - alert: ScratchFull
        expr: node_filesystem_avail_bytes{mountpoint="/scratch"} < 10e9
        for: 1m
"""
T0 = START
D = T0 + 600  # the server stops
U = D + 900  # ... and starts again
OFF, ON = D + 720, U + 300  # gpu03 powered off and booted
END = U + 720
FULL = {"gpu02", "gpu03"}


def _metrics(name: str, t: float) -> list[MetricFamily]:
    load = 8.0 if D + 300 <= t < D + 600 else 0.5
    avail = 5e9 if name in FULL else 500e9
    return [
        MetricFamily(name="node_load1", samples=[({}, load)]),
        MetricFamily(
            name="node_filesystem_avail_bytes",
            samples=[({"mountpoint": "/scratch", "device": "/dev/nvme1n1"}, avail)],
        ),
    ]


@contextmanager
def _server(tmp_path: Path, clock: FakeClock, notifier: MemoryNotifier) -> Iterator[TestClient]:
    """One server process over the test's database, its rule thread stopped (the test ticks)."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    settings = ServerSettings(
        data_dir=tmp_path,
        ingest_token_sha256=[sha256_hex(TOKEN)],
        open_reads=True,
        rules_shipped=True,
        rule_files=[str(rules)],
    )
    with TestClient(create_app(settings, clock=clock, notifier=notifier)) as client:
        alerting: AlertingService = client.app.state.alerting  # type: ignore[attr-defined]
        alerting.stop()
        alerting.evaluator.lead()
        yield client


def _alerting(client: TestClient) -> AlertingService:
    service: AlertingService = client.app.state.alerting  # type: ignore[attr-defined]
    return service


class Outage:
    """Runs the scenario once; keeps what the checks read."""

    def __init__(self, tmp_path: Path) -> None:
        self.clock = FakeClock(T0)
        self.notifier = MemoryNotifier()
        self.link = Link(TOKEN, self.clock)
        self.agents = [
            Agent("gpu01", "01" * 16, self.link, _metrics),
            Agent(
                "gpu02",
                "02" * 16,
                self.link,
                _metrics,
                replay_batches_per_request=1,
                replay_requests_per_second=1.0,
            ),
            Agent("gpu03", "03" * 16, self.link, _metrics),
        ]
        self.held: dict[str, set[float]] = {}  # instance -> when its alerts were held
        self.up_at: dict[str, float] = {}  # first push of each node after the server's start
        for agent in self.agents:
            agent.boot()
        self._run(tmp_path, T0, D)
        self._run(tmp_path, D, U)
        self._run(tmp_path, U, END, serve=True)

    def _run(self, tmp_path: Path, start: float, end: float, serve: bool = False) -> None:
        if start == T0 or serve:
            with _server(tmp_path, self.clock, self.notifier) as client:
                self.link.client = client
                self.client = client
                self._steps(start, end, _alerting(client))
                self.link.client = None
        else:
            self._steps(start, end, None)

    def _steps(self, start: float, end: float, alerting: AlertingService | None) -> None:
        next_tick = start
        t = start
        while t < end:
            self.clock.now = t
            gpu03 = self.agents[2]
            if t == OFF:
                gpu03.power_off()
            if t == ON:
                gpu03.boot()
            for agent in self.agents:
                before = self.link.requests
                agent.tick(t)
                if alerting is not None and t >= U and self.link.requests > before:
                    self.up_at.setdefault(agent.name, t)
            if alerting is not None and t >= next_tick:
                next_tick = t + max(1.0, alerting.evaluator.tick(t))
                for run in alerting.evaluator.snapshot():
                    for labels in (x for kept in run.held.values() for x in kept):
                        self.held.setdefault(get_label(labels, "instance") or "", set()).add(t)
            t += 1.0

    def sent(self, alertname: str, instance: str | None = None) -> list[Notification]:
        return [
            n
            for n in self.notifier.sent()
            if n.labels["alertname"] == alertname
            and (instance is None or n.labels.get("instance") == instance)
        ]


def test_a_server_outage_fires_nothing_old_and_node_down_once(tmp_path: Path) -> None:
    run = Outage(tmp_path)
    names = {n.labels["alertname"] for n in run.notifier.sent()}
    assert names == {"ScratchFull", "NodeDown"}, names  # nothing else of the pack either

    # The scenario happened as described: the nodes came back, gpu02 slowly.
    assert set(run.up_at) == {"gpu01", "gpu02", "gpu03"}
    assert run.up_at["gpu03"] == ON
    assert max(run.up_at["gpu01"], run.up_at["gpu02"]) <= U + 60  # the backoff's maximum

    # (a) the historic load alert: never sent, never an alert at all, but in the data.
    assert run.sent("HighLoad") == []
    with _server(tmp_path, run.clock, MemoryNotifier()) as client:
        alerts = _query_range(client, 'ALERTS{alertname="HighLoad"}', T0, END)
        historic = _query_range(client, "node_load1 > 5", D, U)
    assert alerts == []
    assert sorted(s["metric"]["instance"] for s in historic) == ["gpu01", "gpu02", "gpu03"]
    for series in historic:
        times = [float(v[0]) for v in series["values"]]
        assert min(times) >= D + 300 and max(times) < D + 600 + 30

    # (b) no node-down for the nodes that spooled and replayed.
    assert run.sent("NodeDown", "gpu01") == run.sent("NodeDown", "gpu02") == []

    # (c) gpu03's node-down: one firing episode, then one resolution once it is back.
    down = run.sent("NodeDown", "gpu03")
    firing = [n for n in down if not n.resolved]
    resolved = [n for n in down if n.resolved]
    # A resolution is re-sent while Prometheus keeps it (15 minutes), as a firing alert is
    # every resend delay: one episode is one starts_at, one resolution one ends_at.
    assert len({n.starts_at for n in down}) == 1 and len({n.ends_at for n in resolved}) == 1
    assert down.index(resolved[0]) == len(firing)  # nothing fires after the resolution
    started = firing[0].starts_at
    assert U + 120 <= started <= U + 120 + 30 + 120  # for 2m after the window, at a round
    assert ON < resolved[0].ends_at <= ON + 30 + 120

    # (d) a full scratch disk stays firing through the outage, down or catching up.
    for instance in ("gpu02", "gpu03"):
        sent = run.sent("ScratchFull", instance)
        assert sent and not [n for n in sent if n.resolved], instance
        assert len({n.starts_at for n in sent}) == 1 and sent[0].starts_at < D, instance
        assert max(n.ends_at for n in sent) > END, instance  # still valid at the end
    assert run.sent("ScratchFull", "gpu01") == []
    # ... and the hold is what kept them: gpu03 while it was down, gpu02 while it replayed.
    assert any(run.up_at["gpu02"] < t for t in run.held["gpu02"])
    assert any(U < t < ON for t in run.held["gpu03"])
    assert not any(t > END - 120 for held in run.held.values() for t in held)


def _query_range(client: TestClient, expr: str, start: float, end: float) -> list[dict[str, Any]]:
    body = client.get(
        "/prometheus/api/v1/query_range",
        params={"query": expr, "start": start, "end": end, "step": 30},
    )
    assert body.status_code == 200, body.text
    result: list[dict[str, Any]] = body.json()["data"]["result"]
    return result
