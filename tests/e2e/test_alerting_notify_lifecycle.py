"""Notifications over an alert's whole life, with real processes on 127.0.0.1: grouping, a
silence, the timers of a group and the resolution.

A ``dcmon server`` evaluates, every second, rules on the load one node pushes (``Pusher``):
``Loaded`` (load > 1), ``Muted`` (load > 100, silenced before it can fire) and two ``Pair``
alerts that always fire (grouped by alertname into one notification). The test raises the load
past 100 once the silence is in place, then lowers it below 1 so ``Loaded`` resolves.

- Through Debian's ``prometheus-alertmanager``: the silence is set in Alertmanager (its v2
  API); the webhook gets both Pair alerts in one notification, Loaded firing then resolved,
  and never Muted.
- Through dcmon's direct receivers: the silence is set in dcmon (``POST /api/v1/silences``);
  the first notification of a group waits ``group_wait`` after the alert started, the same set
  is sent again only once ``repeat_interval`` has passed, Loaded's resolution arrives, and
  Muted never does.
"""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from server.auth.secrets import sha256_hex
from tests.e2e.processes import Process, ServerSpec, get, running, server_spec, wait_for
from tests.e2e.pushing import Pusher
from tests.e2e.test_alerting_notify import _alertmanager
from tests.server.notify.helpers import Sink

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ADMIN_KEY = "dcm_admin_key_for_the_notification_lifecycle"
RULES = """
groups:
  - name: lifecycle
    interval: 1s
    rules:
      - alert: Loaded
        expr: node_load1 > 1
        labels: {severity: warning}
      - alert: Muted
        expr: node_load1 > 100
        labels: {severity: warning}
      - alert: Pair
        expr: vector(1)
        labels: {instance: a}
      - alert: Pair
        expr: vector(1)
        labels: {instance: b}
"""
GROUP_WAIT_S = 3.0
REPEAT_S = 6.0


@pytest.fixture
def sink() -> Iterator[Sink]:
    server = Sink()
    yield server
    server.close()


def _route(group_wait: str, repeat: str) -> dict[str, Any]:
    return {
        "receiver": "hook",
        "group_by": ["alertname"],
        "group_wait": group_wait,
        "group_interval": "1s",
        "repeat_interval": repeat,
    }


def _receivers(sink: Sink, group_wait: str, repeat: str) -> dict[str, Any]:
    return {
        "route": _route(group_wait, repeat),
        "receivers": [
            {"name": "hook", "webhook_configs": [{"url": sink.url, "send_resolved": True}]}
        ],
    }


def _muted_silence() -> dict[str, Any]:
    now = time.time()
    return {
        "matchers": [{"name": "alertname", "value": "Muted", "isRegex": False}],
        "startsAt": _rfc3339(now - 60),
        "endsAt": _rfc3339(now + 3600),
        "createdBy": "lifecycle test",
        "comment": "a silence set before the alert fires",
    }


def _rfc3339(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t % 1 * 1000):03d}Z"


@contextmanager
def _server(tmp_path: Path, notify: list[str]) -> Iterator[tuple[ServerSpec, Process]]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    config = tmp_path / "server.toml"
    config.write_text(
        "\n".join(
            [
                "rules_shipped = false",
                f"rule_files = [{json.dumps(str(rules))}]",
                "rule_leader_check_seconds = 0.5",
                "rule_resend_delay_seconds = 1",
                "maintenance_interval_seconds = 3600",
                f'admin_key_sha256 = ["{sha256_hex(ADMIN_KEY)}"]',
                "[notify]",
                *notify,
                "",
            ]
        )
    )
    spec = server_spec(tmp_path)
    argv = [*spec.argv, "--config", str(config)]
    with running(argv, tmp_path / "server.log") as process:
        wait_for(lambda: get(f"{spec.url}/readyz").status_code == 200, 60, "the server ready")
        yield spec, process
        assert process.stop() == 0, process.output()


def _alerts(sink: Sink) -> list[tuple[float, str, dict[str, Any]]]:
    """Returns: (arrival, group alertname, alert) of every alert the sink received."""
    return [
        (at, body["groupLabels"].get("alertname", ""), alert)
        for at, body in zip(sink.arrivals, sink.bodies, strict=True)
        for alert in body["alerts"]
    ]


def _statuses(sink: Sink, name: str) -> list[str]:
    return [a["status"] for _, _, a in _alerts(sink) if a["labels"]["alertname"] == name]


def _life(spec: ServerSpec, sink: Sink, set_silence: Any) -> Pusher:
    """Push load 5 (Loaded fires), set the silence, push 200 (Muted would fire), then 0.5
    (Loaded and Muted resolve); returns the pusher, stopped."""
    pusher = Pusher(spec, 5.0)
    pusher.start()
    try:
        wait_for(lambda: "firing" in _statuses(sink, "Loaded"), 30, "Loaded firing")
        set_silence()
        pusher.value = 200.0
        wait_for(lambda: _evaluated(spec, "Muted", "firing"), 20, "Muted firing in dcmon")
        time.sleep(3.0)  # a few group intervals: Muted would have been sent by now
        pusher.value = 0.5
        wait_for(lambda: "resolved" in _statuses(sink, "Loaded"), 30, "Loaded resolved")
    finally:
        pusher.stop.set()
        pusher.join(5)
    assert not pusher.errors, pusher.errors[:3]
    return pusher


def _evaluated(spec: ServerSpec, name: str, state: str) -> bool:
    alerts = get(f"{spec.url}/api/v1/alerts").json()["alerts"]
    return any(a["rule"] == name and a["state"] == state for a in alerts)


def test_alertmanager_groups_silences_and_resolves(tmp_path: Path, sink: Sink) -> None:
    config = _receivers(sink, "1s", "1h")
    with _alertmanager(tmp_path, sink, config) as alertmanager:

        def silence() -> None:
            answer = httpx.post(f"{alertmanager}/api/v2/silences", json=_muted_silence())
            assert answer.status_code == 200, answer.text

        with _server(tmp_path, [f"alertmanager_urls = [{json.dumps(alertmanager)}]"]) as (
            spec,
            _process,
        ):
            _life(spec, sink, silence)
    pairs = [a for _, group, a in _alerts(sink) if group == "Pair"]
    first_pair = next(b for b in sink.bodies if b["groupLabels"].get("alertname") == "Pair")
    assert sorted(a["labels"]["instance"] for a in first_pair["alerts"]) == ["a", "b"]
    assert {a["status"] for a in pairs} == {"firing"}
    assert _statuses(sink, "Muted") == [], "the silence in Alertmanager holds"
    loaded = _statuses(sink, "Loaded")
    assert loaded[0] == "firing" and loaded[-1] == "resolved"


def test_direct_receivers_wait_repeat_silence_and_resolve(tmp_path: Path, sink: Sink) -> None:
    receivers = tmp_path / "receivers.yaml"
    receivers.write_text(json.dumps(_receivers(sink, f"{GROUP_WAIT_S:g}s", f"{REPEAT_S:g}s")))
    with _server(tmp_path, [f"receivers_file = {json.dumps(str(receivers))}"]) as (spec, _p):

        def silence() -> None:
            answer = httpx.post(
                f"{spec.url}/api/v1/silences",
                json=_muted_silence(),
                headers={"Authorization": f"Bearer {ADMIN_KEY}"},
            )
            assert answer.status_code == 201, answer.text

        _life(spec, sink, silence)
        time.sleep(REPEAT_S + 2)  # time for a repeat of the Pair group
    pair_times = [
        at
        for at, b in zip(sink.arrivals, sink.bodies, strict=True)
        if b["groupLabels"] == {"alertname": "Pair"}
    ]
    first = next(b for b in sink.bodies if b["groupLabels"] == {"alertname": "Pair"})
    assert sorted(a["labels"]["instance"] for a in first["alerts"]) == ["a", "b"]
    started = min(_epoch(a["startsAt"]) for a in first["alerts"])
    assert pair_times[0] - started >= GROUP_WAIT_S - 0.5, "the first waits group_wait"
    assert len(pair_times) >= 2, "the same set is sent again after repeat_interval"
    gaps = [b - a for a, b in itertools.pairwise(pair_times)]
    assert min(gaps) >= REPEAT_S - 0.5, f"never sooner than repeat_interval: {gaps}"
    assert _statuses(sink, "Muted") == [], "dcmon's silence holds"
    loaded = _statuses(sink, "Loaded")
    assert loaded[0] == "firing" and loaded[-1] == "resolved"


def _epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
