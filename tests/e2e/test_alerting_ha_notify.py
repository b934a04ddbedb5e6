"""Two server replicas on one PostgreSQL notify a webhook directly; the leader is SIGKILLed and
the webhook still gets exactly one firing and exactly one resolved notification of the alert.

Real processes: two ``dcmon server`` (direct receivers: a receivers file with a webhook to an
HTTP sink in the test, group_wait and group_interval 1 s) and PostgreSQL. One node pushes to
the replica that does not lead, a load that fires ``Loaded`` at once; after the takeover it
drops and the alert resolves. The kill lands at one of two points that matter:

- ``delivered``: the firing notification has arrived and is in the notification log. The new
  leader re-sends the alert on its first round and then every resend delay (2 s here, so
  again and again), its empty group flushes at once, and the log says the receiver was told:
  no second firing; the resolution goes out once, however often it is re-sent.
- ``due``: the webhook refuses (503) while the leader retries, so at the kill the leader holds
  the group's send claim and has delivered nothing. The new leader re-sends the alert on its
  first round (the persisted last-sent time would hold it back a resend delay, 30 s here,
  longer than the test waits), waits out the dead sender's claim (one lease) and sends it:
  once.

Killing between the receiver's answer and the log's commit is the one window where a second
firing is expected (at-least-once, ``server/notify/pipeline.py``); the unit tests cover it.
"""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from server.notify.tables import NotificationLogRow
from server.storage.db import make_engine
from tests.e2e.processes import Process, ServerSpec, get, replica_specs, running, wait_for
from tests.e2e.pushing import Pusher
from tests.server.conftest import postgres_server, postgres_url
from tests.server.notify.helpers import Sink

__all__ = ["postgres_server", "postgres_url"]

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RULES = """
groups:
  - name: ha
    interval: 1s
    rules:
      - alert: Loaded
        expr: node_load1 > 1
        for: 0s
"""
TAKEOVER_BOUND_S = 30.0
RESEND_DELAY_S = {"delivered": 2.0, "due": 30.0}
QUIET_S = 5.0  # long enough for re-sends (every 2 s) and flushes (every 1 s) to repeat
NEW_FIRING_S = 15.0  # the dead sender's claim (7 s) and a flush, well under the resend delay


@pytest.fixture
def sink() -> Iterator[Sink]:
    server = Sink()
    yield server
    server.close()


def _env(tmp_path: Path, sink: Sink, resend_delay_s: float) -> dict[str, str]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    receivers = tmp_path / "receivers.yaml"
    receivers.write_text(
        json.dumps(
            {
                "route": {
                    "receiver": "hook",
                    "group_by": ["alertname"],
                    "group_wait": "1s",
                    "group_interval": "1s",
                    "repeat_interval": "1h",
                },
                "receivers": [
                    {
                        "name": "hook",
                        "webhook_configs": [
                            {"url": sink.url, "send_resolved": True, "timeout": "1s"}
                        ],
                    }
                ],
            }
        )
    )
    return {
        "DCMON_SERVER_RULES_SHIPPED": "false",
        "DCMON_SERVER_RULE_FILES": json.dumps([str(rules)]),
        "DCMON_SERVER_RULE_LEADER_CHECK_SECONDS": "0.5",
        "DCMON_SERVER_RULE_RESEND_DELAY_SECONDS": str(resend_delay_s),
        "DCMON_SERVER_MAINTENANCE_INTERVAL_SECONDS": "3600",
        "DCMON_SERVER_NOTIFY__RECEIVERS_FILE": str(receivers),
    }


def _leads(spec: ServerSpec) -> bool:
    body: dict[str, Any] = get(f"{spec.url}/api/v1/rules").json()
    return bool(body["leader"])


def _told(sink: Sink) -> list[str]:
    """Returns: the status of ``Loaded`` in each notification the webhook accepted."""
    with sink.arrived:
        bodies = list(sink.bodies)
    return [
        alert["status"]
        for body in bodies
        for alert in body["alerts"]
        if alert["labels"]["alertname"] == "Loaded"
    ]


def _logged_firing(url: str) -> bool:
    """Returns: whether the notification log holds a firing set (the send is committed)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(select(NotificationLogRow.__table__.c.firing)).all()
    finally:
        engine.dispose()
    return any(row.firing for row in rows)


@pytest.mark.parametrize("kill_when", ["delivered", "due"])
def test_a_killed_leader_costs_no_lost_and_no_repeated_notification(
    tmp_path: Path, postgres_url: str, sink: Sink, kill_when: str
) -> None:
    env = _env(tmp_path, sink, RESEND_DELAY_S[kill_when])
    specs = replica_specs(tmp_path, postgres_url, 2)
    if kill_when == "due":
        sink.status = 503
    with ExitStack() as stack:
        servers: list[Process] = []
        for n, spec in enumerate(specs):
            servers.append(
                stack.enter_context(running(spec.argv, tmp_path / f"server-{n}.log", env))
            )
            wait_for(lambda spec=spec: get(f"{spec.url}/readyz").status_code == 200, 60, "ready")
        wait_for(lambda: any(_leads(s) for s in specs), 30, "a rule leader")
        leaders = [n for n, s in enumerate(specs) if _leads(s)]
        assert len(leaders) == 1, "exactly one replica evaluates"
        leader = leaders[0]
        follower = 1 - leader
        pusher = Pusher(specs[follower], value=5.0)
        pusher.start()
        stack.callback(pusher.stop.set)

        if kill_when == "delivered":
            wait_for(lambda: _told(sink) == ["firing"], 30, "the firing notification")
            wait_for(lambda: _logged_firing(postgres_url), 10, "the notification logged")
        else:
            wait_for(lambda: sink.refused >= 2, 30, "the leader retrying a refused send")
        servers[leader].popen.send_signal(signal.SIGKILL)
        servers[leader].popen.wait()
        sink.status = 200
        took = wait_for(lambda: _leads(specs[follower]), TAKEOVER_BOUND_S, "the takeover")
        assert took < TAKEOVER_BOUND_S

        if kill_when == "due":
            assert _told(sink) == []  # the old leader delivered nothing
            wait_for(lambda: _told(sink) == ["firing"], NEW_FIRING_S, "the new leader's firing")
        time.sleep(QUIET_S)  # the new leader has re-sent the alert several times by now
        assert _told(sink) == ["firing"], servers[follower].output()[-3000:]

        pusher.value = 0.5
        wait_for(lambda: "resolved" in _told(sink), 30, "the resolved notification")
        time.sleep(QUIET_S)  # the resolution is re-sent every 2 s too
        assert _told(sink) == ["firing", "resolved"], servers[follower].output()[-3000:]
        pusher.stop.set()
        pusher.join(10)
        assert pusher.acked > 0
