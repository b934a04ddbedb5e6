"""Nodes, history and health probes (the web pages: tests/server/web)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from tests.factories import default_metrics, identity, make_batch
from tests.server.conftest import START, FakeClock, push


def _push_series(
    client: TestClient, clock: FakeClock, values: list[float], step: float = 10
) -> None:
    for i, value in enumerate(values):
        clock.now = START + i * step
        response = push(
            client, make_batch(seq=i, timestamp=clock.now, metrics=default_metrics(cpu_idle=value))
        )
        assert response.status_code == 200


def test_nodes_list_and_detail(client: TestClient) -> None:
    push(client, make_batch(timestamp=START, node=identity(labels={"rack": "r1"})))
    (node,) = client.get("/api/v1/nodes").json()["nodes"]
    assert node["name"] == "gpu01"
    assert node["state"] == "up"
    assert node["labels"] == {"rack": "r1"}
    assert (node["cpu_count"], node["gpu_count"], node["memory_total_bytes"]) == (2, 1, 8 << 30)
    detail = client.get(f"/api/v1/nodes/{node['node_id']}").json()
    assert detail["name"] == "gpu01"
    assert detail["host"]["agent_version"] == "test"
    assert detail["collectors"] == [{"name": "cpu", "success": True, "duration_seconds": 0.002}]
    gpu = detail["gpus"][0]
    assert gpu["memory_total_bytes"] == 80 << 30
    assert gpu["last_seen"] == START


def test_unknown_node_is_404(client: TestClient) -> None:
    response = client.get("/api/v1/nodes/nope")
    assert response.status_code == 404
    assert response.json()["error"] == {"code": "not_found", "message": "no node named 'nope'"}


def test_history_raw_and_matched(client: TestClient, clock: FakeClock) -> None:
    _push_series(client, clock, [100, 110, 120, 130])
    body = client.get(
        "/api/v1/history",
        params={
            "metric": "node_cpu_seconds_total",
            "mode": "idle",
            "start": START,
            "end": START + 30,
        },
    ).json()
    (series,) = body["series"]
    assert series["labels"] == {"instance": "gpu01", "cpu": "0", "mode": "idle"}
    assert series["points"] == [
        [START, 100],
        [START + 10, 110],
        [START + 20, 120],
        [START + 30, 130],
    ]
    assert (
        client.get(
            "/api/v1/history", params={"metric": "node_cpu_seconds_total", "instance": "other"}
        ).json()["series"]
        == []
    )


def test_history_step_takes_the_last_value_in_each_step(
    client: TestClient, clock: FakeClock
) -> None:
    _push_series(client, clock, [1, 2, 3, 4, 5, 6])
    body = client.get(
        "/api/v1/history",
        params={
            "metric": "node_cpu_seconds_total",
            "mode": "idle",
            "start": START + 5,
            "end": START + 55,
            "step": "20s",
        },
    ).json()
    assert body["step"] == 20
    # t = +5 -> (-15, 5] holds the sample at +0; t = +25 -> (5, 25] ends with +20; +45 -> +40.
    assert body["series"][0]["points"] == [[START + 5, 1], [START + 25, 3], [START + 45, 5]]


def test_history_accepts_rfc3339(client: TestClient, clock: FakeClock) -> None:
    _push_series(client, clock, [1])
    body = client.get(
        "/api/v1/history",
        params={
            "metric": "node_load1",
            "start": "2027-01-15T08:00:00+00:00",
            "end": "2027-01-15T08:00:00Z",
        },
    ).json()
    assert body["start"] == START and body["end"] == START
    assert body["series"][0]["points"] == [[START, 0.5]]


def test_history_parameter_errors_name_the_parameter(client: TestClient) -> None:
    cases = {
        (("metric", "bad name"),): "metric",
        (("metric", "x"), ("start", "yesterday")): "start",
        (("metric", "x"), ("step", "-5")): "step",
        (("metric", "x"), ("step", "nan")): "step",
        (("metric", "x"), ("start", "10"), ("end", "5")): "end: before start",
        (("metric", "x"), ("start", "0"), ("end", "1000000"), ("step", "1")): "11000",
        (("metric", "x"), ("bad-label", "1")): "bad-label",
        (("metric", "x"), ("match", "gpu=~[")): "match",
        (("metric", "x"), ("match", "nomatcher")): "match",
        (("metric", "x"), ("step", "60"), ("aggregation", "median")): "aggregation",
        (("metric", "x"), ("step", "60"), ("group", "median")): "group",
        (("metric", "x"), ("step", "60"), ("by", "a-b")): "by",
    }
    for params, needle in cases.items():
        response = client.get("/api/v1/history", params=list(params))
        assert response.status_code == 422, params
        assert needle in response.json()["error"]["message"], (params, response.json())
    missing = client.get("/api/v1/history")
    assert missing.status_code == 422
    assert missing.json()["error"]["problems"][0]["location"] == "query.metric"


def test_history_limits_series(make_app, clock: FakeClock) -> None:
    with TestClient(make_app(history_max_series=1)) as client:
        _push_series(client, clock, [1])
        response = client.get("/api/v1/history", params={"metric": "node_cpu_seconds_total"})
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "too_many_series"


def test_health_probes_and_openapi(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json() == {"status": "ok"}
    schema = client.get("/openapi.json").json()
    assert {"/api/v1/ingest", "/api/v1/nodes", "/api/v1/nodes/{node}", "/api/v1/history"} <= set(
        schema["paths"]
    )
    assert client.get("/docs").status_code == 200
