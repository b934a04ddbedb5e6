"""The query API: matchers (with regex), aggregation and grouping, latest values, discovery."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from agent.wire.schema import MetricFamily
from tests.factories import NODE_ID, identity, make_batch
from tests.server.conftest import START, FakeClock, push


def _gpu(index: int, node: str) -> dict[str, str]:
    return {"gpu": str(index), "UUID": f"GPU-{node}-{index}", "Hostname": node}


def _fleet(client: TestClient, clock: FakeClock, ticks: int = 6) -> None:
    """Three nodes (rack a: n1, n2; rack b: n3), two GPUs each; util = 10*node + gpu + tick."""
    for number in (1, 2, 3):
        name = f"n{number}"
        node = identity(
            name=name,
            node_id=f"{number:032x}" if number > 1 else NODE_ID,
            labels={"rack": "a" if number < 3 else "b"},
        )
        for tick in range(ticks):
            clock.now = START + tick * 10
            families = [
                MetricFamily(
                    name="DCGM_FI_DEV_GPU_UTIL",
                    samples=[(_gpu(g, name), float(10 * number + g + tick)) for g in (0, 1)],
                ),
                MetricFamily(
                    name="DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
                    samples=[(_gpu(g, name), float(1000 * tick)) for g in (0, 1)],
                ),
            ]
            batch = make_batch(seq=tick + 1, timestamp=clock.now, node=node, metrics=families)
            assert push(client, batch).status_code == 200


def _get(client: TestClient, path: str, **params: Any) -> dict[str, Any]:
    response = client.get(path, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["server-timing"].startswith("app;dur=")
    body: dict[str, Any] = response.json()
    return body


def test_regex_and_negative_matchers_select_series(client: TestClient, clock: FakeClock) -> None:
    _fleet(client, clock)
    common = {"metric": "DCGM_FI_DEV_GPU_UTIL", "start": START, "end": START + 60}
    body = client.get(
        "/api/v1/history",
        params=[*common.items(), ("match", "instance=~n[12]"), ("match", "gpu!=1")],
    ).json()
    assert [(s["labels"]["instance"], s["labels"]["gpu"]) for s in body["series"]] == [
        ("n1", "0"),
        ("n2", "0"),
    ]
    body = client.get(
        "/api/v1/history", params=[*common.items(), ("match", "rack!~a"), ("gpu", "1")]
    ).json()
    assert [s["labels"]["instance"] for s in body["series"]] == ["n3"]
    # Anchored: "n" alone matches no instance.
    body = client.get("/api/v1/history", params=[*common.items(), ("match", "instance=~n")]).json()
    assert body["series"] == []


def test_aggregation_by_label_groups_series(client: TestClient, clock: FakeClock) -> None:
    _fleet(client, clock)
    body = _get(
        client,
        "/api/v1/history",
        metric="DCGM_FI_DEV_GPU_UTIL",
        start=START,
        end=START + 60,
        step=60,
        aggregation="max",
        by="rack",
    )
    assert body["tier"] == "1m"
    by_rack = {s["labels"]["rack"]: s["points"] for s in body["series"]}
    # Window (START-60, START] holds tick 0, (START, START+60] ticks 1..5; max per GPU is
    # 10*n + g + tick; group op: max.
    assert by_rack == {
        "a": [[START, 21.0], [START + 60, 26.0]],
        "b": [[START, 31.0], [START + 60, 36.0]],
    }
    summed = _get(
        client,
        "/api/v1/history",
        metric="DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        start=START,
        end=START + 60,
        step=60,
        aggregation="increase",
        by="",
    )
    # Six GPUs, each +1000 per tick; the first window has only tick 0 (nothing before it).
    assert summed["series"] == [{"labels": {}, "points": [[START, 0.0], [START + 60, 6 * 5000.0]]}]


def test_latest_series_and_labels(client: TestClient, clock: FakeClock) -> None:
    _fleet(client, clock)
    latest = _get(client, "/api/v1/latest", metric="DCGM_FI_DEV_GPU_UTIL", rack="b")
    assert [(s["labels"]["gpu"], s["value"], s["up"]) for s in latest["series"]] == [
        ("0", 35.0, True),
        ("1", 36.0, True),
    ]
    series = _get(client, "/api/v1/series", metric="DCGM_FI_DEV_GPU_UTIL", match="gpu=0")
    assert sorted(s["labels"]["instance"] for s in series["series"]) == ["n1", "n2", "n3"]
    assert series["truncated"] is False
    limited = _get(client, "/api/v1/series", limit=2)
    assert len(limited["series"]) == 2 and limited["truncated"] is True
    names = _get(client, "/api/v1/labels")["names"]
    assert {"instance", "rack", "gpu", "UUID", "Hostname"} <= set(names)
    assert "gpu" not in _get(client, "/api/v1/labels", metric="node_load1")["names"]
    values = _get(client, "/api/v1/labels/instance/values")["values"]
    assert values == ["n1", "n2", "n3"]
    assert _get(client, "/api/v1/labels/rack/values")["values"] == ["a", "b"]


def test_read_api_errors_name_the_parameter(client: TestClient) -> None:
    cases = {
        ("/api/v1/latest", (("metric", "bad name"),)): "metric",
        ("/api/v1/latest", (("metric", "x"), ("match", "a=~("))): "match",
        ("/api/v1/series", (("match", "=x"),)): "match",
        ("/api/v1/labels/bad-name/values", ()): "name",
        ("/api/v1/labels", (("metric", "1x"),)): "metric",
    }
    for (path, params), needle in cases.items():
        response = client.get(path, params=list(params))
        assert response.status_code == 422, (path, params)
        assert response.json()["error"]["message"].startswith(needle), response.json()


def test_series_limit_is_enforced_before_reading(
    client: TestClient, clock: FakeClock, make_app
) -> None:
    app = make_app(history_max_series=2)
    with TestClient(app) as small:
        _fleet(small, clock, ticks=1)
        response = small.get(
            "/api/v1/history", params={"metric": "DCGM_FI_DEV_GPU_UTIL", "start": START}
        )
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "too_many_series"
