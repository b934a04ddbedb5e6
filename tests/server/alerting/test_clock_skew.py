"""A node whose clock runs behind the server's is not taken for one catching up.

The hold (``hold.py``) keeps the alerts of a node whose newest batch is older than the
evaluation time. Batch times are on the node's clock, so the server corrects them by the skew
it measures from each push (``X-Dcmon-Sent-At``); without that, a node 30 s behind would have
every alert held for ever, its clock-skew alert included. Rules on the server's own per-node
series (``dcmon_node_up``, ``dcmon_node_clock_skew_seconds``) are never held at all.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.wire.protocol import SENT_AT_HEADER
from agent.wire.schema import MetricFamily
from server.alerting import hold
from tests.factories import identity, make_batch
from tests.server.alerting.test_app import _first_slot, server
from tests.server.conftest import START, FakeClock, push


@pytest.mark.parametrize("skew", [-30.0, 0.0, 30.0])
def test_a_node_with_a_skewed_clock_still_fires(tmp_path: Path, skew: float) -> None:
    clock = FakeClock(START)
    with server(tmp_path, clock) as s:
        s0 = _first_slot(s, START + 20)
        t, seq = START, 0
        while t <= s0 + 300:  # a node ahead has no data in the first round: one more
            clock.now = t
            seq += 1
            node_time = t + skew
            metrics = [MetricFamily(name="node_load1", samples=[({}, 5.0)])]
            batch = make_batch(seq, node_time, identity(), metrics, with_inventory=False)
            answer = push(s.client, batch, headers={SENT_AT_HEADER: f"{node_time:.3f}"})
            assert answer.status_code == 200, answer.text
            s.tick(t)  # the evaluator runs the group when its slot comes
            t += 10
        alerts = {a["rule"]: a for a in s.client.get("/api/v1/alerts").json()["alerts"]}
        assert alerts["Loaded"]["state"] == "firing", alerts
        assert not alerts["Loaded"]["held"]


def test_rules_on_the_servers_own_node_series_are_never_held() -> None:
    assert hold.never_held("dcmon_node_up == 0")
    assert hold.never_held("abs(dcmon_node_clock_skew_seconds) > 1")
    assert not hold.never_held("node_load1 > 1")
    assert not hold.never_held("this is not promql")
