"""Rule evaluation joined to the notification stage, with real processes on 127.0.0.1.

A ``dcmon server`` evaluates a rule file whose alerts fire at once (``vector(1)``, ``for: 0s``,
a 1 s group interval) and sends them as its ``[notify]`` section says: to a real Alertmanager
(Debian's ``prometheus-alertmanager``) whose webhook receiver is an HTTP server in the test,
or straight to that webhook through dcmon's direct receivers (a receivers file in
Alertmanager's format, with the README's inhibit rule: NodeDown silences its instance's other
alerts). A receivers file that is broken stops the server with one clear line.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.processes import Process, ServerSpec, get, running, server_spec, wait_for
from tests.integration import free_port, require_binary
from tests.server.notify.helpers import Sink

pytestmark = [pytest.mark.integration, pytest.mark.slow]

EXTERNAL_URL = "http://dcmon.example.test"
RULES = """
groups:
  - name: notify-e2e
    interval: 1s
    rules:
      - alert: NodeDown
        expr: vector(1)
        for: 0s
        labels: {severity: critical, instance: gpu01}
        annotations: {summary: "gpu01 is down"}
      - alert: GpuHot
        expr: vector(1)
        for: 0s
        labels: {severity: warning, instance: gpu01}
      - alert: GpuHot
        expr: vector(1)
        for: 0s
        labels: {severity: warning, instance: gpu02}
"""
# The README's example: while a node is down, its other alerts are inhibited.
INHIBIT = {
    "source_matchers": ['alertname="NodeDown"'],
    "target_matchers": ['alertname!="NodeDown"'],
    "equal": ["instance"],
}
ROUTE = {
    "receiver": "hook",
    "group_by": ["alertname", "instance"],
    "group_wait": "1s",
    "group_interval": "1s",
    "repeat_interval": "1h",
}


@pytest.fixture
def sink() -> Iterator[Sink]:
    server = Sink()
    yield server
    server.close()


def _receivers(sink: Sink) -> dict[str, Any]:
    """An Alertmanager configuration (also dcmon's receivers file) sending to ``sink``."""
    return {
        "route": ROUTE,
        "receivers": [
            {"name": "hook", "webhook_configs": [{"url": sink.url, "send_resolved": True}]}
        ],
        "inhibit_rules": [INHIBIT],
    }


@contextmanager
def _alertmanager(
    tmp_path: Path, sink: Sink, configuration: dict[str, Any] | None = None
) -> Iterator[str]:
    """A real Alertmanager sending to ``sink`` (as ``configuration`` says, by default the
    README's route and inhibit rule); yields its URL."""
    binary = require_binary("prometheus-alertmanager", "alertmanager")
    config = tmp_path / "am.yml"
    config.write_text(json.dumps(configuration or _receivers(sink)))  # JSON is YAML
    port = free_port()
    argv = [
        binary, f"--config.file={config}", f"--storage.path={tmp_path / 'am-data'}",
        f"--web.listen-address=127.0.0.1:{port}", "--cluster.listen-address=",
    ]  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    with running(argv, tmp_path / "alertmanager.log") as process:
        try:
            wait_for(lambda: httpx.get(f"{url}/-/ready", timeout=1).status_code == 200, 20, "am")
        except AssertionError:
            pytest.fail(f"alertmanager did not start:\n{process.output()[-2000:]}")
        yield url
        process.stop()


def _config(tmp_path: Path, notify: list[str]) -> Path:
    """A server.toml evaluating ``RULES`` only, with ``notify`` as its [notify] section."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    config = tmp_path / "server.toml"
    config.write_text(
        "\n".join(
            [
                "rules_shipped = false",
                f"rule_files = [{json.dumps(str(rules))}]",
                "rule_leader_check_seconds = 0.5",
                "maintenance_interval_seconds = 3600",
                f'external_url = "{EXTERNAL_URL}"',
                "[notify]",
                *notify,
                "",
            ]
        )
    )
    return config


@contextmanager
def _server(tmp_path: Path, config: Path) -> Iterator[tuple[ServerSpec, Process]]:
    spec = server_spec(tmp_path)
    argv = [*spec.argv, "--config", str(config)]
    with running(argv, tmp_path / "server.log") as process:
        wait_for(lambda: get(f"{spec.url}/readyz").status_code == 200, 60, "the server ready")
        yield spec, process
        assert process.stop() == 0, process.output()


def _alerts_seen(sink: Sink, until: Callable[[set[tuple[str, str]]], bool]) -> set[tuple[str, str]]:
    """Waits (20 s at most) until the firing (alertname, instance) pairs delivered to ``sink``
    satisfy ``until``; returns them."""
    deadline = time.monotonic() + 20
    seen: set[tuple[str, str]] = set()
    while time.monotonic() < deadline:
        bodies = sink.wait(len(sink.bodies) + 1, timeout=0.5)
        seen = {
            (alert["labels"]["alertname"], alert["labels"].get("instance", ""))
            for body in bodies
            for alert in body["alerts"]
            if alert["status"] == "firing"
        }
        if until(seen):
            return seen
    pytest.fail(f"the webhook did not get the alerts; it got {sink.bodies}")


def _sent(spec: ServerSpec, receiver: str) -> float:
    """Returns: dcmon_server_notifications_total{receiver, outcome="sent"} on /metrics."""
    wanted = f'dcmon_server_notifications_total{{outcome="sent",receiver="{receiver}"}}'
    for line in get(f"{spec.url}/metrics").text.splitlines():
        if line.startswith(wanted):
            return float(line.split()[-1])
    return 0.0


def test_alerts_reach_a_webhook_through_a_real_alertmanager(tmp_path: Path, sink: Sink) -> None:
    with _alertmanager(tmp_path, sink) as alertmanager:
        config = _config(tmp_path, [f"alertmanager_urls = [{json.dumps(alertmanager)}]"])
        with _server(tmp_path, config) as (spec, _process):
            wanted = {("NodeDown", "gpu01"), ("GpuHot", "gpu02")}
            seen = _alerts_seen(sink, lambda pairs: wanted <= pairs)
            time.sleep(2.0)  # every group has flushed (or been inhibited) by now
            seen |= _alerts_seen(sink, lambda _pairs: True)
            assert ("GpuHot", "gpu01") not in seen, "Alertmanager's inhibit rule holds"
            body = next(b for b in sink.bodies if b["groupLabels"]["alertname"] == "NodeDown")
            (alert,) = body["alerts"]
            assert alert["annotations"] == {"summary": "gpu01 is down"}
            assert alert["generatorURL"] == EXTERNAL_URL  # dcmon's external_url
            receiver = "alertmanager/127.0.0.1:" + alertmanager.rsplit(":", 1)[1]
            wait_for(lambda: _sent(spec, receiver) >= 1, 10, "the sent counter")


def test_direct_receivers_group_inhibit_and_deliver_to_a_webhook(
    tmp_path: Path, sink: Sink
) -> None:
    receivers = tmp_path / "receivers.yaml"
    receivers.write_text(json.dumps(_receivers(sink)))
    config = _config(tmp_path, [f"receivers_file = {json.dumps(str(receivers))}"])
    with _server(tmp_path, config) as (spec, _process):
        wanted = {("NodeDown", "gpu01"), ("GpuHot", "gpu02")}
        seen = _alerts_seen(sink, lambda pairs: wanted <= pairs)
        time.sleep(2.0)  # every group of the round has flushed (or been inhibited) by now
        seen |= _alerts_seen(sink, lambda _pairs: True)
        assert seen == wanted, "GpuHot of the down node gpu01 is inhibited"
        body = next(b for b in sink.bodies if b["groupLabels"]["alertname"] == "NodeDown")
        assert body["receiver"] == "hook" and body["status"] == "firing"
        assert body["version"] == "4"
        assert body["externalURL"] == EXTERNAL_URL  # [notify] external_url defaults to it
        assert _sent(spec, "hook") >= 2


def test_a_broken_receivers_file_stops_the_server_with_one_clear_line(tmp_path: Path) -> None:
    receivers = tmp_path / "receivers.yaml"
    receivers.write_text(
        json.dumps({"route": {"receiver": "nobody"}, "receivers": [{"name": "hook"}]})
    )
    config = _config(tmp_path, [f"receivers_file = {json.dumps(str(receivers))}"])
    spec = server_spec(tmp_path)
    result = subprocess.run(
        [*spec.argv, "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1, result.stderr
    assert f"notify: {receivers}: route uses undefined receiver 'nobody'" in errors[0]
    assert "Traceback" not in result.stderr
