"""Direct receivers end to end on real threads and HTTP: the receivers file, group_wait,
repeat_interval, a dcmon silence, webhook payload v4, and Apprise's json:// to a local server."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from server.notify.build import build_notifier
from server.notify.config import NotifyConfigError, NotifySettings
from server.notify.delivery import MemoryCounts
from server.notify.matchers import parse_matchers
from server.notify.model import ZERO_TIME
from server.notify.nflog import MemoryLog
from server.notify.silence_store import MemorySilences, new_silence
from tests.server.notify.helpers import Sink, notice


@pytest.fixture
def sink() -> Iterator[Sink]:
    server = Sink()
    yield server
    server.close()


def _settings(tmp_path: Path, config: dict) -> NotifySettings:  # type: ignore[type-arg]
    path = tmp_path / "receivers.yml"
    path.write_text(yaml.safe_dump(config))
    return NotifySettings(receivers_file=path, external_url="http://dcmon.example")


def test_webhook_group_wait_repeat_and_a_dcmon_silence(tmp_path: Path, sink: Sink) -> None:
    config = {
        "route": {
            "receiver": "hook",
            "group_by": ["alertname"],
            "group_wait": "1s",
            "group_interval": "1s",
            "repeat_interval": "2s",
        },
        "receivers": [{"name": "hook", "webhook_configs": [{"url": sink.url, "max_alerts": 1}]}],
    }
    silences = MemorySilences(time.time)
    counts = MemoryCounts()
    client = httpx.Client()
    notifier = build_notifier(
        _settings(tmp_path, config),
        silences=silences.active,
        nflog=MemoryLog(),
        counts=counts,
        client=client,
    )
    notifier.start()
    try:
        silences.add(
            new_silence(
                parse_matchers(['instance="gpu03"']),
                0,
                time.time() + 60,
                "ops",
                "swap",
                time.time(),
            )
        )
        start = time.time()
        alerts = [
            notice(start, start + 60, {"summary": "hot"}, alertname="GpuHot", instance=i)
            for i in ("gpu01", "gpu02", "gpu03")
        ]
        notifier.send(alerts, start)
        first = sink.wait(1)[0]
        waited = time.time() - start
        assert 0.9 <= waited < 3, waited  # group_wait 1 s
        assert first["version"] == "4" and first["status"] == "firing"
        assert first["receiver"] == "hook" and first["groupKey"] == '{}:{alertname="GpuHot"}'
        assert first["externalURL"] == "http://dcmon.example"
        assert first["truncatedAlerts"] == 1  # gpu03 silenced, max_alerts 1 of 2
        assert [a["labels"]["instance"] for a in first["alerts"]] == ["gpu01"]
        assert first["alerts"][0]["endsAt"] == ZERO_TIME
        assert first["commonLabels"] == {"alertname": "GpuHot"}
        # Unchanged set: nothing until repeat_interval (2 s), rounded up to a 1 s tick.
        time.sleep(1.2)
        assert len(sink.bodies) == 1
        second = sink.wait(2, timeout=5)[1]
        assert second["alerts"] == first["alerts"]
        gap = time.time() - start - waited
        assert gap >= 1.9, gap  # repeat_interval 2 s (not at the 1 s tick before)
        deadline = time.monotonic() + 5  # counted once the answer is back
        while counts.totals[("hook", "sent")] < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert counts.totals[("hook", "sent")] == 2
        assert not any(a["labels"]["instance"] == "gpu03" for b in sink.bodies for a in b["alerts"])
    finally:
        notifier.close()
        client.close()


def test_apprise_json_url_reaches_a_local_server(tmp_path: Path, sink: Sink) -> None:
    pytest.importorskip("apprise")
    url = f"json://127.0.0.1:{sink.port}/apprise"
    config = {
        "route": {"receiver": "chat", "group_wait": "0s", "group_interval": "1s"},
        "receivers": [{"name": "chat", "apprise_configs": [{"urls": [url]}]}],
    }
    counts = MemoryCounts()
    notifier = build_notifier(
        _settings(tmp_path, config), silences=list, nflog=MemoryLog(), counts=counts
    )
    notifier.start()
    try:
        now = time.time()
        notifier.send(
            [
                notice(
                    now - 120,
                    now + 60,
                    {"summary": "GPU 3 is hot"},
                    alertname="GpuHot",
                    instance="gpu01",
                )
            ],
            now,
        )
        body = sink.wait(1)[0]
        assert body["title"] == "[FIRING:1]"
        assert "FIRING: GPU 3 is hot" in body["message"]
        assert "instance=gpu01" in body["message"]
        assert body["type"] == "failure"
        deadline = time.monotonic() + 5
        while counts.totals[("chat", "sent")] < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert counts.totals[("chat", "sent")] == 1
    finally:
        notifier.close()


def test_a_bad_apprise_url_is_a_config_error(tmp_path: Path) -> None:
    pytest.importorskip("apprise")
    config = {
        "route": {"receiver": "chat"},
        "receivers": [{"name": "chat", "apprise_configs": [{"urls": ["nosuchscheme://x"]}]}],
    }
    with pytest.raises(NotifyConfigError, match=r"apprise_configs\[0\]"):
        build_notifier(
            _settings(tmp_path, config), silences=list, nflog=MemoryLog(), counts=MemoryCounts()
        )
