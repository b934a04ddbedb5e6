"""Instant and range queries through the app, over batches ingested the normal way; the
expected answers are worked out by hand from the data in conftest.py."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from fastapi.testclient import TestClient

from tests.server.conftest import START
from tests.server.query.conftest import API

NOW = int(START)


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success"
    assert "errorType" not in body and "error" not in body
    return body["data"]


def by_instance(result: list[dict[str, Any]]) -> dict[str, Any]:
    return {row["metric"].get("instance", ""): row for row in result}


def test_a_selector_carries_the_labels_of_metrics_plus_the_name(api: TestClient) -> None:
    data = ok(api.get(f"{API}/query", params={"query": "node_load1", "time": NOW}))
    assert data["resultType"] == "vector"
    rows = by_instance(data["result"])
    assert rows["gpu01"] == {
        "metric": {"__name__": "node_load1", "instance": "gpu01"},
        "value": [NOW, "0.5"],
    }
    assert rows["gpu02"]["metric"] == {"__name__": "node_load1", "instance": "gpu02", "rack": "r2"}
    assert rows["gpu02"]["value"] == [NOW, "1.5"]
    metrics_text = api.get("/metrics").text
    assert 'node_load1{instance="gpu02",rack="r2"} 1.5' in metrics_text


def test_a_label_matcher_selects_one_node(api: TestClient) -> None:
    query = 'node_load1{instance=~"gpu0[2-9]"}'
    data = ok(api.get(f"{API}/query", params={"query": query, "time": NOW}))
    assert [row["metric"]["instance"] for row in data["result"]] == ["gpu02"]
    query = '{__name__=~"node_load.*", rack="r2"}'
    data = ok(api.get(f"{API}/query", params={"query": query, "time": NOW}))
    assert [row["value"][1] for row in data["result"]] == ["1.5"]


def test_rate_over_a_counter_and_sum_by(api: TestClient) -> None:
    # idle: 100, 110, ..., 150 at NOW-50 .. NOW. Window (NOW-60, NOW]: increase 50 over 50 s,
    # extrapolated 10 s to the window start (zero is 100 s away), none past NOW: 60 / 60 s.
    query = 'rate(node_cpu_seconds_total{mode="idle"}[1m])'
    data = ok(api.get(f"{API}/query", params={"query": query, "time": NOW}))
    assert sorted(float(row["value"][1]) for row in data["result"]) == [1.0, 1.0]
    assert all("__name__" not in row["metric"] for row in data["result"])
    query = "sum by (mode) (rate(node_cpu_seconds_total[1m]))"
    data = ok(api.get(f"{API}/query", params={"query": query, "time": NOW}))
    got = {row["metric"]["mode"]: row["value"][1] for row in data["result"]}
    assert got == {"idle": "2", "user": "0"}
    assert all(set(row["metric"]) == {"mode"} for row in data["result"])


def test_a_range_query_steps_from_start_to_end(api: TestClient) -> None:
    params = {
        "query": 'sum(node_cpu_seconds_total{mode="idle"})',
        "start": NOW - 50,
        "end": NOW,
        "step": "10s",
    }
    data = ok(api.get(f"{API}/query_range", params=params))
    assert data["resultType"] == "matrix"
    assert data["result"] == [
        {"metric": {}, "values": [[NOW - 50 + 10 * i, str(200 + 20 * i)] for i in range(6)]}
    ]
    params = {"query": "node_load1", "start": NOW - 55, "end": NOW + 5, "step": 30}
    result = ok(api.get(f"{API}/query_range", params=params))["result"]
    assert [row["metric"]["instance"] for row in result] == ["gpu01", "gpu02"]  # sorted
    # NOW-55 is before the first sample; NOW+5 still sees the sample at NOW (lookback 5 m).
    assert result[0]["values"] == [[NOW - 25, "0.5"], [NOW + 5, "0.5"]]


def test_post_forms_answer_as_get(api: TestClient) -> None:
    params = {"query": "sum by (instance) (node_load1)", "time": str(NOW)}
    got = api.get(f"{API}/query", params=params).json()
    posted = api.post(f"{API}/query", data=params)
    assert posted.status_code == 200
    assert posted.json() == got
    assert len(got["data"]["result"]) == 2
    ranged = {"query": "node_load1", "start": str(NOW - 20), "end": str(NOW), "step": "10"}
    assert api.post(f"{API}/query_range", data=ranged).json() == (
        api.get(f"{API}/query_range", params=ranged).json()
    )


def test_times_and_durations_in_prometheus_formats(api: TestClient) -> None:
    rfc3339 = datetime.fromtimestamp(NOW - 10, UTC).isoformat().replace("+00:00", "Z")
    by_text = ok(api.get(f"{API}/query", params={"query": "node_load1", "time": rfc3339}))
    by_float = ok(api.get(f"{API}/query", params={"query": "node_load1", "time": NOW - 10.0}))
    assert by_text == by_float and by_text["result"][0]["value"][0] == NOW - 10
    fractional = ok(api.get(f"{API}/query", params={"query": "time()", "time": "1.5"}))
    assert fractional == {"resultType": "scalar", "result": [1.5, "1.5"]}
    params = {"query": "time()", "start": NOW - 3600, "end": NOW, "step": "1h"}
    values = ok(api.get(f"{API}/query_range", params=params))["result"][0]["values"]
    assert values == [[NOW - 3600, str(NOW - 3600)], [NOW, str(NOW)]]


def test_values_are_strings_and_special_floats_are_spelled_as_prometheus(
    api: TestClient,
) -> None:
    def scalar(query: str) -> Any:
        return ok(api.get(f"{API}/query", params={"query": query, "time": NOW}))["result"][1]

    assert scalar("1/0") == "+Inf"
    assert scalar("-1/0") == "-Inf"
    assert scalar("0/0") == "NaN"
    assert scalar("0.0000001") == "0.0000001"  # scalars never use an exponent
    vector = ok(api.get(f"{API}/query", params={"query": "vector(0.0000001)", "time": NOW}))
    assert vector["result"][0]["value"][1] == "1e-07"
    text = ok(api.get(f"{API}/query", params={"query": '"hello"', "time": NOW}))
    assert text == {"resultType": "string", "result": [NOW, "hello"]}
    assert math.isnan(float(scalar("0/0")))


def test_an_instant_range_vector_returns_the_raw_samples(api: TestClient) -> None:
    query = 'node_load1{instance="gpu01"}[25s]'
    data = ok(api.get(f"{API}/query", params={"query": query, "time": NOW}))
    assert data["resultType"] == "matrix"
    assert data["result"][0]["values"] == [[NOW - 20, "0.5"], [NOW - 10, "0.5"], [NOW, "0.5"]]


def test_limit_truncates_with_a_warning(api: TestClient) -> None:
    body = api.get(f"{API}/query", params={"query": "node_load1", "time": NOW, "limit": 1})
    assert len(body.json()["data"]["result"]) == 1
    assert body.json()["warnings"] == ["results truncated due to limit"]
