"""Each Prometheus error type with its status code, message and envelope."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from server.auth.secrets import sha256_hex
from tests.server.conftest import START
from tests.server.query.conftest import API, fill

NOW = int(START)
READ_TOKEN = "dcm_read_token_for_promql_0123"


def error(response: Any, status: int, error_type: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"status", "errorType", "error"}
    assert body["status"] == "error" and body["errorType"] == error_type
    message: str = body["error"]
    return message


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"query": "sum("}, 'invalid parameter "query"'),
        ({"query": "no_such_function(up)"}, 'invalid parameter "query"'),
        ({"query": "rate(node_load1)"}, 'invalid parameter "query"'),
        ({}, 'invalid parameter "query": missing query'),
        ({"query": "up", "time": "yesterday"}, 'invalid parameter "time"'),
        ({"query": "up", "time": "1e30"}, "out of range"),
        ({"query": "up", "timeout": "5 minutes"}, 'invalid parameter "timeout"'),
        ({"query": "up", "limit": "-1"}, "limit must be non-negative"),
    ],
)
def test_bad_instant_queries_are_bad_data(
    api: TestClient, params: dict[str, str], words: str
) -> None:
    assert words in error(api.get(f"{API}/query", params=params), 400, "bad_data")


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({"start": "0", "end": "11001", "step": "1"}, "exceeded maximum resolution of 11,000"),
        ({"start": "10", "end": "20", "step": "0"}, "zero or negative query resolution step"),
        ({"start": "10", "end": "20", "step": "-5"}, "zero or negative query resolution step"),
        ({"start": "20", "end": "10", "step": "1"}, "end timestamp must not be before start"),
        ({"start": "10", "end": "20"}, 'invalid parameter "step": missing step'),
        ({"start": "10", "end": "20", "step": "1x"}, 'invalid parameter "step"'),
    ],
)
def test_bad_ranges_are_bad_data(api: TestClient, params: dict[str, str], words: str) -> None:
    response = api.get(f"{API}/query_range", params={"query": "node_load1", **params})
    assert words in error(response, 400, "bad_data")


def test_eleven_thousand_steps_are_allowed(api: TestClient) -> None:
    params = {"query": "1", "start": "0", "end": "11000", "step": "1"}
    body = api.get(f"{API}/query_range", params=params).json()
    assert len(body["data"]["result"][0]["values"]) == 11_001


def test_a_range_vector_is_no_range_query(api: TestClient) -> None:
    params = {"query": "node_load1[1m]", "start": NOW - 60, "end": NOW, "step": 15}
    message = error(api.get(f"{API}/query_range", params=params), 400, "bad_data")
    assert 'invalid expression type "range vector" for range query' in message


def test_a_matching_error_is_an_execution_error(api: TestClient) -> None:
    query = "node_cpu_seconds_total / on(instance) node_load1"
    response = api.get(f"{API}/query", params={"query": query, "time": NOW})
    assert "many-to-one matching must be explicit" in error(response, 422, "execution")
    posted = api.post(f"{API}/query", data={"query": query, "time": str(NOW)})
    assert posted.status_code == 422 and posted.json() == response.json()


def test_too_many_samples_names_the_limit(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(query_max_samples=11)) as client:
        fill(client)
        ten = {"query": "node_load1[55s]", "time": NOW}  # 6 samples on each of 2 nodes
        message = error(client.get(f"{API}/query", params=ten), 422, "execution")
        assert "too many samples" in message and "query_max_samples = 11" in message
        one = {"query": 'node_load1{instance="gpu01"}[55s]', "time": NOW}
        assert client.get(f"{API}/query", params=one).status_code == 200


def test_a_query_past_its_timeout_is_a_timeout(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(query_timeout_seconds=1e-6)) as client:
        fill(client)
        response = client.get(f"{API}/query", params={"query": "node_load1", "time": NOW})
        message = error(response, 503, "timeout")
        assert "query timed out" in message and "query_timeout_seconds = 1e-06" in message


def test_a_timeout_parameter_shortens_the_limit(api: TestClient) -> None:
    # A hundred reads of the database take far longer than a millisecond.
    params = {"query": " + ".join(["node_load1"] * 100), "time": NOW, "timeout": "1ms"}
    message = error(api.get(f"{API}/query", params=params), 503, "timeout")
    assert "limit: timeout = 1ms" in message
    params["timeout"] = "10m"  # longer than the server's limit: the server's applies
    assert len(ok_result(api.get(f"{API}/query", params=params))) == 2
    params["timeout"] = "0.0001"  # under a millisecond: no timeout, as 0 in Prometheus
    assert len(ok_result(api.get(f"{API}/query", params=params))) == 2


def ok_result(response: Any) -> list[Any]:
    assert response.status_code == 200, response.text
    result: list[Any] = response.json()["data"]["result"]
    return result


def test_every_route_is_closed_without_a_token(make_app: Callable[..., FastAPI]) -> None:
    app = make_app(open_reads=False, read_token_sha256=[sha256_hex(READ_TOKEN)])
    with TestClient(app) as client:
        fill(client)
        paths = [
            "query",
            "query_range",
            "series",
            "labels",
            "label/instance/values",
            "metadata",
            "query_exemplars",
            "status/buildinfo",
        ]
        params = {"query": "node_load1", "start": NOW - 60, "end": NOW, "step": 15}
        params["match[]"] = "node_load1"
        for path in paths:
            response = client.get(f"{API}/{path}", params=params)
            assert response.status_code == 401, path
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            headers = {"Authorization": f"Bearer {READ_TOKEN}"}
            allowed = client.get(f"{API}/{path}", params=params, headers=headers)
            assert allowed.status_code == 200, f"{path}: {allowed.text}"
            assert allowed.json()["status"] == "success"
        assert client.post(f"{API}/query", data={"query": "1"}).status_code == 401


@pytest.mark.parametrize(
    "query", ["up @ 1e20", "(" * 3000 + "1" + ")" * 3000, 'up{a=~"\\\\p{L}"}', "\x00"]
)
def test_what_the_parser_cannot_read_is_bad_data(api: TestClient, query: str) -> None:
    response = api.get(f"{API}/query", params={"query": query, "time": NOW})
    assert 'invalid parameter "query"' in error(response, 400, "bad_data")


def test_a_subquery_grid_too_fine_to_build_is_refused_before_it_runs(api: TestClient) -> None:
    huge = {"query": "max_over_time(node_load1[1y:1ms])", "time": NOW}
    message = error(api.get(f"{API}/query", params=huge), 422, "execution")
    assert "31536000001 steps" in message and "1000000" in message
    # The inner grid spans the outer subquery's week too: (1w + 1h) / 500 ms + 1 steps.
    inner = "max_over_time(node_load1[1h:500ms])"
    nested = {"query": f"max_over_time({inner}[1w:1m])", "time": NOW}
    assert "1216801 steps" in error(api.get(f"{API}/query", params=nested), 422, "execution")
    assert api.get(f"{API}/query", params={"query": inner, "time": NOW}).status_code == 200
    fine = {"query": "max_over_time(node_load1[1m:10s])", "time": NOW}
    result = api.get(f"{API}/query", params=fine).json()["data"]["result"]
    assert sorted(row["value"][1] for row in result) == ["0.5", "1.5"]
