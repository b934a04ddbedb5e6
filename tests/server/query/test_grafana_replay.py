"""Replays the requests Grafana's Prometheus data source sends (tests/data/grafana_requests.json:
health check, version detection, metric and label browsers, template variables, metadata,
exemplars, panel queries) against an app holding the data of conftest.py, with the read token
as a bearer header, and checks every answer as strictly as Grafana parses it."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from server.auth.secrets import sha256_hex
from tests.server.query.conftest import fill

RECORDING = Path(__file__).parents[2] / "data" / "grafana_requests.json"
READ_TOKEN = "dcm_read_token_for_grafana_0123"
PREFIX = "/prometheus"
FORM = "application/x-www-form-urlencoded"
ENVELOPE_KEYS = {"success": {"status", "data"}, "error": {"status", "errorType", "error"}}
OPTIONAL_KEYS = {"warnings", "infos"}


def _recorded() -> list[dict[str, Any]]:
    requests: list[dict[str, Any]] = json.loads(RECORDING.read_text())["requests"]
    return requests


@pytest.fixture(scope="module")
def recording() -> list[dict[str, Any]]:
    return _recorded()


RULES = """
groups:
  - name: grafana
    rules:
      - record: job:gpu_temp:avg
        expr: avg by (Hostname) (DCGM_FI_DEV_GPU_TEMP)
      - alert: GpuHot
        expr: DCGM_FI_DEV_GPU_TEMP > 80
"""


@pytest.fixture
def grafana(make_app: Callable[..., FastAPI], tmp_path: Path) -> Iterator[TestClient]:
    """An app whose reads need the read token, filled with conftest.py's data, with one rule
    file (so the rules lookup has a recording rule to find)."""
    rules = tmp_path / "grafana-rules.yaml"
    rules.write_text(RULES)
    app = make_app(
        open_reads=False, read_token_sha256=[sha256_hex(READ_TOKEN)], rule_files=[str(rules)]
    )
    with TestClient(app) as client:
        fill(client)
        yield client


def send(client: TestClient, request: dict[str, Any], token: str | None = READ_TOKEN) -> Any:
    headers = {"Accept": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    url = PREFIX + request["path"]
    if request.get("query"):
        url += "?" + urlencode([tuple(pair) for pair in request["query"]])
    if request["method"] == "POST":
        headers["Content-Type"] = FORM
        body = urlencode([tuple(pair) for pair in request.get("form", [])])
        return client.post(url, content=body.encode(), headers=headers)
    assert not request.get("form"), "a GET carries no form"
    return client.get(url, headers=headers)


def _semver(text: str) -> tuple[int, ...]:
    match = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)(?:[-+].*)?", text)
    assert match is not None, f"not a semantic version: {text!r}"
    return tuple(int(part) for part in match.groups())


def check(response: Any, expect: dict[str, Any]) -> None:
    """Asserts every expectation of one recorded request (the vocabulary of the JSON's comment)."""
    assert response.status_code == expect["status"], response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    kind = expect["envelope"]
    assert body["status"] == kind
    assert ENVELOPE_KEYS[kind] <= set(body) <= ENVELOPE_KEYS[kind] | OPTIONAL_KEYS, body
    if kind == "error":
        assert body["errorType"] == expect["errorType"]
        assert expect["error_contains"] in body["error"]
        return
    data = body["data"]
    if "data_equals" in expect:
        assert data == expect["data_equals"]
    if "data_contains" in expect:
        assert isinstance(data, list) and set(expect["data_contains"]) <= set(data), data
    if expect.get("data_sorted"):
        assert data == sorted(data) and len(set(data)) == len(data)
    if "data_keys" in expect:
        assert isinstance(data, dict) and set(expect["data_keys"]) <= set(data), data
    for key in expect.get("data_lacks", []):
        assert key not in data
    if "recording_rules" in expect:
        recorded = {
            rule["name"]: rule["query"]
            for group in data["groups"]
            for rule in group["rules"]
            if rule["type"] == "recording"
        }
        assert recorded == expect["recording_rules"], data
        for group in data["groups"]:
            assert {"name", "file", "rules", "interval", "lastEvaluation"} <= set(group)
    if "semver_at_least" in expect:
        assert _semver(data["version"]) >= _semver(expect["semver_at_least"])
    for metric, kind_of in expect.get("metadata_types", {}).items():
        assert [entry["type"] for entry in data[metric]] == [kind_of]
        assert all(set(entry) == {"type", "help", "unit"} for entry in data[metric])
    if "resultType" in expect:
        assert set(data) == {"resultType", "result"}
        assert data["resultType"] == expect["resultType"]
    result = data["result"] if isinstance(data, dict) and "result" in data else data
    if "result_equals" in expect:
        assert result == expect["result_equals"]
    if "result_count" in expect:
        assert len(result) == expect["result_count"], result
    for metric, count in expect.get("series_of", {}).items():
        assert sum(1 for labels in result if labels.get("__name__") == metric) == count
    if "values" in expect:
        assert [row["value"][1] for row in result] == expect["values"]
        assert all(isinstance(row["metric"], dict) for row in result)
    if "points" in expect:
        assert result and all(row["values"] == expect["points"] for row in result), result
    if "points_per_row" in expect:
        for row in result:
            assert len(row["values"]) == expect["points_per_row"], row
            assert all(isinstance(t, int | float) and isinstance(v, str) for t, v in row["values"])


@pytest.mark.parametrize("index", range(len(_recorded())), ids=lambda i: _recorded()[i]["name"])
def test_grafana_request(grafana: TestClient, recording: list[dict[str, Any]], index: int) -> None:
    request = recording[index]
    check(send(grafana, request), request["expect"])


def test_every_recorded_request_needs_the_read_token(
    grafana: TestClient, recording: list[dict[str, Any]]
) -> None:
    for request in recording:
        response = send(grafana, request, token=None)
        assert response.status_code == 401, request["name"]
        wrong = send(grafana, request, token="dcm_not_the_read_token_000000")
        assert wrong.status_code in (401, 403), request["name"]


def test_the_recording_covers_what_the_data_source_asks(recording: list[dict[str, Any]]) -> None:
    asked = {(r["method"], re.sub(r"/label/[^/]+/", "/label/NAME/", r["path"])) for r in recording}
    assert asked >= {
        ("POST", "/api/v1/query"),
        ("POST", "/api/v1/query_range"),
        ("GET", "/api/v1/query_range"),
        ("POST", "/api/v1/series"),
        ("POST", "/api/v1/labels"),
        ("GET", "/api/v1/label/NAME/values"),
        ("GET", "/api/v1/metadata"),
        ("GET", "/api/v1/status/buildinfo"),
        ("GET", "/api/v1/rules"),
        ("POST", "/api/v1/query_exemplars"),
    }
