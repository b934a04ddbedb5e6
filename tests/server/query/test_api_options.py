"""The query options Prometheus accepts beyond the basics (``lookback_delta``, ``stats``), the
index fast path of ``labels`` and ``label/__name__/values``, and the answers to paths outside
the query API proper (``rules``, ``alerts``, unknown paths, wrong methods)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from server.query.source import StorageSource
from tests.server.conftest import START
from tests.server.query.conftest import API

NOW = int(START)


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success"
    return body["data"]


def test_lookback_delta_bounds_how_old_a_sample_an_instant_selector_takes(
    api: TestClient,
) -> None:
    # The last samples are at NOW; 100 s later only a lookback past 100 s still finds them.
    later = {"query": "node_load1", "time": NOW + 100}
    assert len(ok(api.get(f"{API}/query", params=later))["result"]) == 2
    assert ok(api.get(f"{API}/query", params={**later, "lookback_delta": "1m"}))["result"] == []
    found = ok(api.post(f"{API}/query", data={**later, "lookback_delta": "101"}))["result"]
    assert sorted(row["value"][1] for row in found) == ["0.5", "1.5"]
    # Zero or negative is the default 5 minutes, as in Prometheus.
    for default in ("0", "-30"):
        with_default = {**later, "lookback_delta": default}
        assert len(ok(api.get(f"{API}/query", params=with_default))["result"]) == 2


def test_lookback_delta_applies_to_range_queries(api: TestClient) -> None:
    params = {"query": "node_load1", "start": NOW, "end": NOW + 60, "step": 30}
    default = ok(api.get(f"{API}/query_range", params=params))["result"]
    assert [len(row["values"]) for row in default] == [3, 3]
    short = ok(api.get(f"{API}/query_range", params={**params, "lookback_delta": "45s"}))
    assert [[point[0] for point in row["values"]] for row in short["result"]] == [
        [NOW, NOW + 30],
        [NOW, NOW + 30],
    ]


def test_a_bad_lookback_delta_is_bad_data_naming_it(api: TestClient) -> None:
    response = api.get(f"{API}/query", params={"query": "1", "lookback_delta": "5 minutes"})
    assert response.status_code == 400
    body = response.json()
    assert body["errorType"] == "bad_data"
    assert body["error"].startswith('invalid parameter "lookback_delta"')


def test_stats_adds_timings_and_the_samples_loaded(api: TestClient) -> None:
    params = {"query": "node_load1[55s]", "time": NOW}
    assert "stats" not in ok(api.get(f"{API}/query", params=params))
    data = ok(api.get(f"{API}/query", params={**params, "stats": "all"}))
    assert data["resultType"] == "matrix" and len(data["result"]) == 2
    timings = data["stats"]["timings"]
    assert set(timings) == {
        "evalTotalTime",
        "resultSortTime",
        "queryPreparationTime",
        "innerEvalTime",
        "execQueueTime",
        "execTotalTime",
    }
    assert all(isinstance(v, float) and v >= 0 for v in timings.values())
    assert timings["evalTotalTime"] >= timings["innerEvalTime"] > 0
    # 6 samples on each of 2 nodes.
    assert data["stats"]["samples"] == {"totalQueryableSamples": 12}
    ranged = {"query": "node_load1", "start": NOW - 50, "end": NOW, "step": 10, "stats": "1"}
    assert ok(api.post(f"{API}/query_range", data=ranged))["stats"]["samples"] == {
        "totalQueryableSamples": 12
    }


def _slow(api: TestClient, path: str, params: dict[str, Any]) -> Any:
    """The same question through the selecting path: a match[] that selects every series."""
    return ok(api.get(f"{API}/{path}", params={**params, "match[]": '{__name__=~".+"}'}))


@pytest.mark.parametrize("path", ["labels", "label/__name__/values"])
def test_the_index_fast_path_agrees_with_selecting_every_series(
    api: TestClient, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for params in ({}, {"start": NOW - 60, "end": NOW}, {"start": NOW + 1}):
        expected = _slow(api, path, params)

        def refuse(*_args: Any, **_kwargs: Any) -> Any:
            raise AssertionError("the fast path selected series")

        with monkeypatch.context() as patch:
            patch.setattr(StorageSource, "find", refuse)
            got = ok(api.get(f"{API}/{path}", params=params))
        assert got == expected, params
    assert ok(api.get(f"{API}/{path}", params={"start": NOW + 1})) == []
    assert "rack" in ok(api.get(f"{API}/labels"))


def test_rules_and_alerts_are_empty_lists(api: TestClient) -> None:
    assert ok(api.get(f"{API}/rules")) == {"groups": []}
    assert ok(api.get(f"{API}/rules", params={"type": "record"})) == {"groups": []}
    assert ok(api.get(f"{API}/alerts")) == {"alerts": []}


def test_an_unknown_path_is_prometheus_not_found(api: TestClient) -> None:
    for path in ("status/runtimeinfo", "no/such/thing", "targets"):
        response = api.get(f"{API}/{path}")
        assert response.status_code == 404, path
        assert response.json() == {
            "status": "error",
            "errorType": "not_found",
            "error": f"unknown API endpoint /api/v1/{path}",
        }


def test_a_known_path_with_the_wrong_method_is_405(api: TestClient) -> None:
    response = api.post(f"{API}/label/instance/values", data={"match[]": "node_load1"})
    assert response.status_code == 405
    body = response.json()
    assert body["status"] == "error" and "POST not allowed" in body["error"]
    assert api.delete(f"{API}/query").status_code == 405
