"""dcmon's Alertmanager client against a real Alertmanager (Debian's prometheus-alertmanager)
sending to a webhook in the test: grouping, resolution, a silence set in Alertmanager; and the
client's queue, retries and fan-out against local HTTP servers."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.notify.alertmanager import AlertmanagerOutbox
from server.notify.delivery import MemoryCounts
from server.notify.model import fingerprint, make_labels, rfc3339
from server.notify.service import Notifier
from tests.integration import free_port, require_binary
from tests.server.notify.helpers import Sink, notice


@pytest.fixture
def sink() -> Iterator[Sink]:
    server = Sink()
    yield server
    server.close()


@pytest.fixture
def alertmanager(tmp_path: Path, sink: Sink) -> Iterator[str]:
    binary = require_binary("prometheus-alertmanager", "alertmanager")
    config = {
        "route": {
            "receiver": "hook",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "1h",
        },
        "receivers": [
            {"name": "hook", "webhook_configs": [{"url": sink.url, "send_resolved": True}]}
        ],
    }
    (tmp_path / "am.yml").write_text(json.dumps(config))  # JSON is YAML
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={tmp_path / 'am.yml'}",
            f"--storage.path={tmp_path / 'am-data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--cluster.listen-address=",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{url}/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                err = process.stderr.read().decode() if process.stderr else ""
                pytest.fail(f"alertmanager did not start: {err[-2000:]}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(10)
        if process.stderr:
            process.stderr.close()


def _payloads(sink: Sink, predicate, timeout: float = 15.0) -> dict:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    seen = 0
    while time.monotonic() < deadline:
        bodies = sink.wait(seen + 1, timeout=max(0.1, deadline - time.monotonic()))
        for body in bodies[seen:]:
            if predicate(body):
                return body
        seen = len(bodies)
    pytest.fail(f"no matching webhook payload; got {sink.bodies}")


@pytest.mark.integration
def test_dcmon_to_alertmanager_grouping_resolution_and_a_silence(
    alertmanager: str, sink: Sink
) -> None:
    counts = MemoryCounts()
    client = httpx.Client()
    outbox = AlertmanagerOutbox(alertmanager, client, counts)
    notifier = Notifier([outbox])
    notifier.start()
    try:
        now = time.time()
        hot = [
            notice(now - 60, now + 240, {"summary": "hot"}, alertname="GpuHot", instance=i)
            for i in ("gpu01", "gpu02")
        ]
        notifier.send(hot, now)
        body = _payloads(sink, lambda b: b["groupLabels"] == {"alertname": "GpuHot"})
        assert body["version"] == "4" and body["status"] == "firing"
        assert body["groupKey"] == '{}:{alertname="GpuHot"}'
        assert sorted(a["labels"]["instance"] for a in body["alerts"]) == ["gpu01", "gpu02"]
        assert body["commonAnnotations"] == {"summary": "hot"}
        for alert in body["alerts"]:  # Alertmanager's fingerprint is ours
            assert alert["fingerprint"] == fingerprint(make_labels(alert["labels"]))
            assert alert["startsAt"].startswith(rfc3339(now - 60)[:19])

        # gpu01 resolves: endsAt = the resolution time.
        resolved_at = time.time()
        notifier.send(
            [notice(now - 60, resolved_at, alertname="GpuHot", instance="gpu01"), hot[1]],
            resolved_at,
        )
        body = _payloads(
            sink,
            lambda b: any(a["status"] == "resolved" for a in b["alerts"]),
        )
        states = {a["labels"]["instance"]: a["status"] for a in body["alerts"]}
        assert states == {"gpu01": "resolved", "gpu02": "firing"}

        # A silence made in Alertmanager suppresses the alert dcmon sends.
        silence = {
            "matchers": [{"name": "alertname", "value": "DiskFull", "isRegex": False}],
            "startsAt": rfc3339(time.time() - 1),
            "endsAt": rfc3339(time.time() + 3600),
            "createdBy": "test",
            "comment": "maintenance",
        }
        answer = httpx.post(f"{alertmanager}/api/v2/silences", json=silence, timeout=5)
        assert answer.status_code == 200, answer.text
        now = time.time()
        notifier.send(
            [
                notice(now, now + 240, alertname="DiskFull", instance="gpu03"),
                notice(now, now + 240, alertname="FanFail", instance="gpu03"),
            ],
            now,
        )
        _payloads(sink, lambda b: b["groupLabels"] == {"alertname": "FanFail"})
        alerts = httpx.get(f"{alertmanager}/api/v2/alerts", timeout=5).json()
        disk = [a for a in alerts if a["labels"]["alertname"] == "DiskFull"]
        assert disk and disk[0]["status"]["state"] == "suppressed"
        time.sleep(1.5)  # a group_interval more: still never notified
        assert not any(b["groupLabels"] == {"alertname": "DiskFull"} for b in sink.bodies)
        assert counts.totals[(outbox.name, "failed")] == 0
        assert counts.totals[(outbox.name, "sent")] >= 3
    finally:
        notifier.close()
        client.close()


def _wait(condition, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_every_alertmanager_gets_every_alert_and_failures_are_counted_and_retried() -> None:
    first, second = Sink(), Sink()
    down = f"http://127.0.0.1:{free_port()}"  # nobody listens
    counts = MemoryCounts()
    client = httpx.Client()
    outboxes = [
        AlertmanagerOutbox(u, client, counts, retry_s=1.0, timeout_s=1.0)
        for u in (first.url.removesuffix("/hook"), second.url.removesuffix("/hook"), down)
    ]
    notifier = Notifier(outboxes)
    notifier.start()
    try:
        second.status = 503  # retried until it recovers
        now = time.time()
        notifier.send([notice(now, now + 240, alertname="A")], now)
        first.wait(1)
        _wait(lambda: counts.totals[(outboxes[1].name, "retried")] >= 1)
        second.status = 200
        second.wait(1)
        _wait(lambda: counts.totals[(outboxes[2].name, "failed")] == 1)
        assert first.bodies[0][0]["labels"] == {"alertname": "A"}
        assert first.bodies[0][0]["endsAt"] == rfc3339(now + 240)
        assert second.bodies == first.bodies
        assert counts.totals[(outboxes[0].name, "sent")] == 1
        assert counts.totals[(outboxes[1].name, "sent")] == 1
        assert counts.totals[(outboxes[2].name, "retried")] >= 1
        first.status = 400  # a refusal is not retried
        notifier.send([notice(now, now + 240, alertname="B")], now)
        _wait(lambda: counts.totals[(outboxes[0].name, "failed")] == 1)
        assert counts.totals[(outboxes[0].name, "retried")] == 0
    finally:
        notifier.close()
        client.close()
        first.close()
        second.close()


def test_a_full_queue_drops_the_oldest_and_counts_them() -> None:
    counts = MemoryCounts()
    outbox = AlertmanagerOutbox("http://127.0.0.1:9", httpx.Client(), counts, capacity=3)
    outbox.put([notice(0, 1, alertname=str(i)) for i in range(5)])  # not started: stays queued
    assert outbox.pending() == 3
    assert counts.totals[(outbox.name, "dropped")] == 2
    assert outbox.name == "alertmanager/127.0.0.1:9"
    named = AlertmanagerOutbox("https://user:secret@am.example:9093/am", httpx.Client(), counts)
    assert named.name == "alertmanager/am.example:9093"  # never the credentials
