"""``dcmon alerts`` and ``dcmon rules list`` against a real server app (SQLite, fake clock):
a firing, two pending and a failing rule, through the CLI's real HTTP path, filters, JSON,
refusals and an unreachable server as one line and exit 1."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from agent.cli import main as dcmon
from agent.wire.schema import MetricFamily
from server.alerting import cli
from server.alerting.notifier import MemoryNotifier
from server.alerting.service import AlertingService
from server.app import create_app
from server.auth.secrets import sha256_hex
from server.rules import cli as rules_cli
from server.settings import ServerSettings
from tests.factories import identity, make_batch
from tests.server.conftest import START, TOKEN, FakeClock, push

RULES = """
groups:
  - name: load
    interval: 1m
    rules:
      - record: fleet:load:sum
        expr: sum(node_load1)
      - alert: LoadCritical
        expr: node_load1 > 4
        labels: {severity: critical}
        annotations: {summary: "Load on {{ $labels.instance }} is {{ $value }}"}
      - alert: LoadWarning
        expr: node_load1 > 1
        for: 10m
        labels: {severity: warning}
      - alert: Broken
        expr: node_load1 + on() node_load1
"""
READER = "dcm_read_token_for_the_cli_tests"
UNREACHABLE = "http://127.0.0.1:9"


class Rig:
    """The app with its rule thread stopped; ``slot`` is the one round the test evaluated."""

    def __init__(self, client: TestClient, slot: float, token_file: Path) -> None:
        self.client = client
        self.slot = slot
        self.base = ["--server", "http://testserver", "--token-file", str(token_file)]

    def transport(self) -> httpx.MockTransport:
        """Each request of the CLI handed to the app, headers and query string included."""

        def handle(request: httpx.Request) -> httpx.Response:
            headers = {k: v for k, v in request.headers.items() if k == "authorization"}
            answer = self.client.request(
                request.method, request.url.raw_path.decode(), headers=headers
            )
            return httpx.Response(answer.status_code, content=answer.content)

        return httpx.MockTransport(handle)

    def alerts(self, *args: str) -> int:
        return cli.alerts_main([*self.base, *args], self.transport(), lambda: self.slot + 30)

    def rules(self, *args: str) -> int:
        return cli.rules_main([*self.base, *args], self.transport(), lambda: self.slot + 30)


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    (tmp_path / "rules.yaml").write_text(RULES)
    settings = ServerSettings(
        data_dir=tmp_path,
        ingest_token_sha256=[sha256_hex(TOKEN)],
        read_token_sha256=[sha256_hex(READER)],
        rules_shipped=False,
        rule_files=[str(tmp_path / "rules.yaml")],
    )
    clock = FakeClock(START)
    token_file = tmp_path / "read.token"
    token_file.write_text(READER + "\n")
    with TestClient(create_app(settings, clock=clock, notifier=MemoryNotifier())) as client:
        alerting: AlertingService = client.app.state.alerting  # type: ignore[attr-defined]
        alerting.stop()
        alerting.evaluator.lead()
        phase = alerting.evaluator.snapshot()[0].phase_ms / 1000
        slot = (START + 60 - phase) // 60 * 60 + phase + 60
        seq = 0
        t = START
        while t <= slot:
            clock.now = t
            for name, load in (("gpu01", 5.0), ("gpu02", 2.0)):
                seq += 1
                node = identity(name, node_id=f"{int(name[3:]):032x}")
                metrics = [MetricFamily(name="node_load1", samples=[({}, load)])]
                batch = make_batch(seq, t, node, metrics, with_inventory=False)
                assert push(client, batch).status_code == 200
            t += 10
        alerting.evaluator.tick(slot)
        yield Rig(client, slot, token_file)


def _rows(out: str) -> list[list[str]]:
    return [line.split() for line in out.splitlines()[1:-1]]


def test_alerts_table_filters_and_json(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    assert rig.alerts() == 0  # a listing: firing alerts are not a failure
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:4] == ["ALERTNAME", "STATE", "SEVERITY", "INSTANCE"]
    assert lines[-1] == "(3 alerts)"
    critical = next(line for line in lines if line.startswith("LoadCritical"))
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(rig.slot - 10))  # offset 10 s
    assert critical.split()[:7] == [
        "LoadCritical",
        "firing",
        "critical",
        "gpu01",
        since,
        "(40s",
        "ago)",
    ]
    assert critical.endswith("Load on gpu01 is 5") and " 5 " in critical
    assert sorted((r[0], r[1], r[3]) for r in _rows(out) if r[0] == "LoadWarning") == [
        ("LoadWarning", "pending", "gpu01"),
        ("LoadWarning", "pending", "gpu02"),
    ]

    assert rig.alerts("--state", "firing") == 0
    assert [r[0] for r in _rows(capsys.readouterr().out)] == ["LoadCritical"]
    assert rig.alerts("--match", "severity=warning", "--match", 'instance=~"gpu0[2-9]"') == 0
    assert [(r[0], r[3]) for r in _rows(capsys.readouterr().out)] == [("LoadWarning", "gpu02")]

    assert rig.alerts("--json", "--state", "pending") == 0
    body = json.loads(capsys.readouterr().out)
    assert sorted(a["labels"]["instance"] for a in body["alerts"]) == ["gpu01", "gpu02"]
    assert {a["state"] for a in body["alerts"]} == {"pending"}
    assert {a["rule"] for a in body["alerts"]} == {"LoadWarning"}


def test_rules_list_table_filters_and_json(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    assert rig.rules() == 0  # unhealthy rules are listed, not a failure
    out = capsys.readouterr().out
    assert out.splitlines()[-1] == "(4 rules in 1 groups)"
    rows = {r[1]: r for r in _rows(out)}
    assert rows["fleet:load:sum"][2:6] == ["recording", "ok", "-", "-"]
    assert rows["LoadCritical"][2:6] == ["alerting", "ok", "firing", "1"]
    assert rows["LoadWarning"][2:6] == ["alerting", "ok", "pending", "2"]
    assert rows["Broken"][2:6] == ["alerting", "err", "inactive", "0"]
    broken = next(line for line in out.splitlines() if " Broken " in line)
    assert "error: " in broken and "duplicate series" in broken
    assert rows["LoadCritical"][7:9] == ["(30s", "ago)"]  # evaluated at the slot, now + 30 s

    assert rig.rules("--unhealthy") == 0
    assert [r[1] for r in _rows(capsys.readouterr().out)] == ["Broken"]
    assert rig.rules("--state", "firing", "--state", "pending") == 0
    assert [r[1] for r in _rows(capsys.readouterr().out)] == ["LoadCritical", "LoadWarning"]
    assert rig.rules("--type", "recording") == 0
    assert [r[1] for r in _rows(capsys.readouterr().out)] == ["fleet:load:sum"]

    assert rig.rules("--json") == 0
    [group] = json.loads(capsys.readouterr().out)["groups"]
    by_name = {r["name"]: r for r in group["rules"]}
    assert by_name["LoadCritical"]["expr"] == "node_load1 > 4"
    assert by_name["LoadCritical"]["state"] == "firing"
    assert by_name["fleet:load:sum"]["state"] is None


def test_refusals_and_unreachable_are_one_line_and_exit_1(
    rig: Rig, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    wrong = tmp_path / "wrong.token"
    wrong.write_text("dcm_not_a_token_of_this_server")
    rig.base[-1] = str(wrong)
    assert rig.alerts() == 1
    assert capsys.readouterr().err.startswith("dcmon alerts: 401: ")
    assert rig.rules() == 1
    err = capsys.readouterr().err
    assert err.startswith("dcmon rules list: 401: ") and len(err.splitlines()) == 1
    assert rig.alerts("--match", "not a matcher") == 2
    assert "not a matcher" in capsys.readouterr().err


def test_dispatch_reaches_both_commands(capsys: pytest.CaptureFixture[str]) -> None:
    assert dcmon(["alerts", "--server", UNREACHABLE]) == 1
    assert capsys.readouterr().err.startswith(f"dcmon alerts: cannot reach {UNREACHABLE}")
    assert rules_cli.main(["list", "--server", UNREACHABLE, "--json"]) == 1
    assert capsys.readouterr().err.startswith(f"dcmon rules list: cannot reach {UNREACHABLE}")
    assert dcmon(["rules", "list", "--server", UNREACHABLE]) == 1
    assert "cannot reach" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        rules_cli.main(["--help"])
    assert "list" in capsys.readouterr().out
