"""Two ``dcmon server`` replicas on one PostgreSQL store their own series: each one's refused
batches fire the leader's rule once per replica, and a node's clock skew, measured by the
replica it pushes to, is a PromQL series on the leader.

Real processes: two ``dcmon server`` and PostgreSQL; rules and the server's own series every
second, so the test takes seconds.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest

from agent.wire.codec import encode_batch
from agent.wire.schema import MetricFamily
from tests.e2e.processes import ServerSpec, get, replica_specs, running, wait_for
from tests.factories import identity, make_batch
from tests.server.conftest import postgres_server, postgres_url

__all__ = ["postgres_server", "postgres_url"]

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RULES = """
groups:
  - name: refusals
    interval: 1s
    rules:
      - alert: Refusals
        expr: increase(dcmon_server_ingest_rejected_batches_total{reason="unauthenticated"}[1m]) > 0
"""
SKEW_S = 30.0
REFUSED = (2, 3)


def _env(rules: Path) -> dict[str, str]:
    return {
        "DCMON_SERVER_RULES_SHIPPED": "false",
        "DCMON_SERVER_RULE_FILES": f'["{rules}"]',
        "DCMON_SERVER_RULE_EVALUATION_INTERVAL_SECONDS": "1",
        "DCMON_SERVER_RULE_LEADER_CHECK_SECONDS": "0.5",
        # Each maintenance pass reloads the series index: how a replica learns every series
        # the other created (the rule source's own refresh reads only ids above its newest).
        "DCMON_SERVER_MAINTENANCE_INTERVAL_SECONDS": "2",
    }


def _ready(spec: ServerSpec) -> bool:
    return get(f"{spec.url}/readyz").status_code == 200


def _leading(spec: ServerSpec) -> bool:
    return bool(get(f"{spec.url}/api/v1/rules").json()["leader"])


def _alerts(spec: ServerSpec) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = get(f"{spec.url}/api/v1/alerts").json()["alerts"]
    return alerts


def _query(spec: ServerSpec, expr: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{spec.url}/prometheus/api/v1/query", params={"query": expr}, timeout=5)
    assert answer.status_code == 200, answer.text
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


def _post(spec: ServerSpec, token: str, sent_at: float | None = None) -> int:
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Content-Encoding": "gzip",
    }
    if sent_at is not None:
        headers["X-Dcmon-Sent-At"] = f"{sent_at}"
    metrics = [MetricFamily(name="node_load1", samples=[({}, 1.0)])]
    batch = make_batch(int(time.time() * 1000), time.time(), identity(), metrics, 1.0, False)
    answer = httpx.post(
        f"{spec.url}/api/v1/ingest", content=encode_batch(batch), headers=headers, timeout=5
    )
    return answer.status_code


def test_each_replica_writes_its_refusals_and_skew_and_the_leader_sees_both(
    tmp_path: Path, postgres_url: str
) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    specs = replica_specs(tmp_path, postgres_url, 2)
    with ExitStack() as stack:
        for n, spec in enumerate(specs):
            stack.enter_context(running(spec.argv, tmp_path / f"server-{n}.log", _env(rules)))
            wait_for(partial(_ready, spec), 60, "ready")
        wait_for(lambda: any(_leading(s) for s in specs), 30, "a rule leader")
        leader = next(s for s in specs if _leading(s))
        follower = next(s for s in specs if s is not leader)
        for spec, count in zip(specs, REFUSED, strict=True):
            for _ in range(count):
                assert _post(spec, "dcm_not_a_token_of_these_servers") == 401
        token = follower.token_file.read_text().strip()
        assert _post(follower, token, sent_at=time.time() - SKEW_S) == 200

        def both_fire() -> bool:
            alerts = _alerts(leader)
            return len(alerts) == 2 and {a["state"] for a in alerts} == {"firing"}

        wait_for(both_fire, 30, "one firing alert per replica on the leader")

        def counted() -> dict[str, float]:
            alerts = _alerts(leader)
            return {a["labels"]["replica"].rsplit(":", 1)[1]: a["value"] for a in alerts}

        def all_counted() -> bool:
            # An alert fires on its first increase; its value follows each evaluation, so it
            # may show a round written between two refusals before it shows them all.
            values = counted()
            return sorted(values) == sorted(str(s.port) for s in specs) and all(
                values[str(spec.port)] >= count - 1e-9  # a sum over float rates
                for spec, count in zip(specs, REFUSED, strict=True)
            )

        wait_for(all_counted, 30, f"every refusal counted on the leader ({REFUSED})")

        def skew() -> list[dict[str, Any]]:
            return _query(leader, "abs(dcmon_node_clock_skew_seconds)")

        wait_for(lambda: len(skew()) == 1, 30, "the skew series on the leader")
        [series] = skew()
        assert series["metric"]["instance"] == "gpu01"
        assert series["metric"]["replica"].endswith(f":{follower.port}")  # measured there
        assert SKEW_S - 2 < float(series["value"][1]) < SKEW_S + 2
