"""A node that comes back after a silence keeps its alerts through the first round after its
return: that round evaluates ``now - query_offset``, still inside the gap, where the node has no
data; without the hold the node's alerts would resolve there (and fire anew a round later)."""

from __future__ import annotations

from pathlib import Path

from server.alerting import hold
from tests.server.alerting.test_app import _first_slot, server
from tests.server.conftest import START, FakeClock


def test_a_returning_nodes_alerts_do_not_resolve_in_the_gap(tmp_path: Path) -> None:
    clock = FakeClock(START)
    with server(tmp_path, clock) as s:
        s0 = _first_slot(s, START + 20)
        s.push(START, s0 + 260, 5.0)
        for k in range(6):
            s.tick(s0 + 60 * k)
        state = {a["rule"]: a["state"] for a in s.client.get("/api/v1/alerts").json()["alerts"]}
        assert state == {"Loaded": "firing"}
        back = s0 + 60 * 15 - 5  # silent for 12 minutes, back 5 s before a round
        for k in range(6, 15):
            s.tick(s0 + 60 * k)
        state = {a["rule"]: a["state"] for a in s.client.get("/api/v1/alerts").json()["alerts"]}
        assert state == {"Loaded": "firing", "NodeDown": "firing"}
        s.push(back, back, 5.0)
        s.tick(s0 + 60 * 15)  # evaluates 10 s before it: the gap
        alerts = {a["rule"]: a for a in s.client.get("/api/v1/alerts").json()["alerts"]}
        assert alerts["Loaded"]["state"] == "firing" and alerts["Loaded"]["held"]
        s.push(back + 10, s0 + 60 * 16 + 30, 5.0)
        s.tick(s0 + 60 * 16)
        alerts = {a["rule"]: a for a in s.client.get("/api/v1/alerts").json()["alerts"]}
        assert alerts["Loaded"]["state"] == "firing" and not alerts["Loaded"]["held"]
        assert [
            n for n in s.notifier.sent() if n.resolved and n.labels["alertname"] == "Loaded"
        ] == []


def test_a_node_is_held_until_the_evaluation_time_passes_its_return() -> None:
    node = hold.NodeStatus("n1", {}, True, 200_000, 10_000, up_since_ms=100_000)
    assert hold.held_instances([node], 99_000) == {"n1"}
    assert hold.held_instances([node], 100_000) == set()
