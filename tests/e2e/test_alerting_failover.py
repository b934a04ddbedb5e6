"""Two server replicas on one PostgreSQL evaluate rules on the leader only; the leader is
SIGKILLed while an alert is pending and the other replica takes over within the bound, loads
the alert state from the database and continues the ``for`` timer: the alert fires at its
original activation time plus ``for``, and ALERTS_FOR_STATE holds one activation time
throughout (no restarted timer, no second pending phase).

Real processes: two ``dcmon server`` and PostgreSQL. One node pushes to the replica that
does not lead, so the kill interrupts no push.
"""

from __future__ import annotations

import signal
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.processes import Process, ServerSpec, get, replica_specs, running, wait_for
from tests.e2e.pushing import Pusher
from tests.server.conftest import postgres_server, postgres_url

__all__ = ["postgres_server", "postgres_url"]

pytestmark = [pytest.mark.integration, pytest.mark.slow]

FOR_S = 12
RULES = f"""
groups:
  - name: failover
    interval: 1s
    rules:
      - alert: Loaded
        expr: node_load1 > 1
        for: {FOR_S}s
"""
TAKEOVER_BOUND_S = 30.0


def _env(rules: Path) -> dict[str, str]:
    return {
        "DCMON_SERVER_RULES_SHIPPED": "false",
        "DCMON_SERVER_RULE_FILES": f'["{rules}"]',
        "DCMON_SERVER_RULE_LEADER_CHECK_SECONDS": "0.5",
        "DCMON_SERVER_MAINTENANCE_INTERVAL_SECONDS": "3600",
    }


def _rules(spec: ServerSpec) -> dict[str, Any]:
    body: dict[str, Any] = get(f"{spec.url}/api/v1/rules").json()
    return body


def _alerts(spec: ServerSpec) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = get(f"{spec.url}/api/v1/alerts").json()["alerts"]
    return alerts


def test_the_follower_takes_over_and_continues_the_for_timer(
    tmp_path: Path, postgres_url: str
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    specs = replica_specs(tmp_path, postgres_url, 2)
    with ExitStack() as stack:
        servers: list[Process] = []
        for n, spec in enumerate(specs):
            servers.append(
                stack.enter_context(running(spec.argv, tmp_path / f"server-{n}.log", _env(rules)))
            )
            wait_for(lambda spec=spec: get(f"{spec.url}/readyz").status_code == 200, 60, "ready")
        wait_for(lambda: any(_rules(s)["leader"] for s in specs), 30, "a rule leader")
        leaders = [s for s in specs if _rules(s)["leader"]]
        assert len(leaders) == 1, "exactly one replica evaluates"
        leader = specs.index(leaders[0])
        follower = 1 - leader
        pusher = Pusher(specs[follower])
        pusher.start()
        stack.callback(pusher.stop.set)

        def pending() -> bool:
            return [a["state"] for a in _alerts(specs[leader])] == ["pending"]

        wait_for(pending, 30, "the alert pending on the leader")
        [first] = _alerts(specs[leader])
        assert _rules(specs[follower])["groups"][0]["evaluations"] == 0  # the follower waits
        # Kill the leader a few seconds into the timer, well before it fires.
        wait_for(lambda: time.time() >= first["active_at"] + FOR_S / 3, 30, "into the timer")
        servers[leader].popen.send_signal(signal.SIGKILL)
        servers[leader].popen.wait()
        killed_at = time.time()

        took = wait_for(lambda: _rules(specs[follower])["leader"], TAKEOVER_BOUND_S, "takeover")
        assert took < TAKEOVER_BOUND_S

        def firing() -> bool:
            return [a["state"] for a in _alerts(specs[follower])] == ["firing"]

        wait_for(firing, FOR_S + 30, "the alert firing on the new leader")
        [fired] = _alerts(specs[follower])
        assert fired["active_at"] == first["active_at"]  # the timer continued
        assert fired["fired_at"] - fired["active_at"] < FOR_S + 2  # not a whole new for
        assert fired["fired_at"] > killed_at - 1  # fired by the new leader
        # ALERTS_FOR_STATE held a single activation time throughout: no timer restart.
        query = {
            "query": "ALERTS_FOR_STATE",
            "start": first["active_at"],
            "end": fired["fired_at"] + 2,
            "step": 1,
        }
        body = get(
            f"{specs[follower].url}/prometheus/api/v1/query_range?" + str(httpx.QueryParams(query))
        ).json()
        [series] = body["data"]["result"]
        assert {v for _, v in series["values"]} == {str(int(first["active_at"]))}
        # ALERTS went pending -> firing once: no second pending phase after the takeover.
        query["query"] = 'ALERTS{alertstate="pending"}'
        body = get(
            f"{specs[follower].url}/prometheus/api/v1/query_range?" + str(httpx.QueryParams(query))
        ).json()
        [pending_series] = body["data"]["result"]
        stamps = [t for t, _ in pending_series["values"]]
        assert max(stamps) < fired["fired_at"]
        pusher.stop.set()
        pusher.join(10)
        assert pusher.acked > 0
