"""series, labels, label values, metadata, buildinfo and exemplars, from the series index."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient

from tests.server.conftest import START
from tests.server.query.conftest import API

NOW = int(START)


def ok(response: Any) -> Any:
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "success"
    return response.json()["data"]


def test_series_lists_the_label_sets_of_each_selector(api: TestClient) -> None:
    params = {"match[]": ["node_load1", '{__name__="node_load1", rack="r2"}']}
    assert ok(api.get(f"{API}/series", params=params)) == [
        {"__name__": "node_load1", "instance": "gpu01"},
        {"__name__": "node_load1", "instance": "gpu02", "rack": "r2"},
    ]
    posted = api.post(f"{API}/series", data={"match[]": ['node_cpu_seconds_total{mode="user"}']})
    assert [row["instance"] for row in ok(posted)] == ["gpu01", "gpu02"]
    missing = api.get(f"{API}/series")
    assert missing.status_code == 400
    assert missing.json()["error"] == "no match[] parameter provided"
    not_a_selector = api.get(f"{API}/series", params={"match[]": "sum(node_load1)"})
    assert not_a_selector.status_code == 400 and "match[]" in not_a_selector.json()["error"]


def test_series_since_a_start_after_the_last_write_are_none(api: TestClient) -> None:
    params = {"match[]": "node_load1", "start": NOW + 60}
    assert ok(api.get(f"{API}/series", params=params)) == []
    params["start"] = NOW - 60
    assert len(ok(api.get(f"{API}/series", params=params))) == 2


def test_labels_and_label_values(api: TestClient) -> None:
    names = ok(api.get(f"{API}/labels"))
    assert names == sorted(names)
    assert {"__name__", "instance", "rack", "cpu", "mode", "gpu", "UUID"} <= set(names)
    only_load = ok(api.get(f"{API}/labels", params={"match[]": "node_load1"}))
    assert only_load == ["__name__", "instance", "rack"]
    metrics = ok(api.get(f"{API}/label/__name__/values"))
    assert metrics == sorted(metrics)
    assert {"DCGM_FI_DEV_GPU_UTIL", "node_cpu_seconds_total", "node_load1"} <= set(metrics)
    racks = ok(api.get(f"{API}/label/instance/values", params={"match[]": '{rack="r2"}'}))
    assert racks == ["gpu02"]
    limited = api.get(f"{API}/label/__name__/values", params={"limit": 1}).json()
    assert limited["data"] == ["DCGM_FI_DEV_GPU_UTIL"]
    assert limited["warnings"] == ["results truncated due to limit"]
    bad = api.get(f"{API}/label/not-a-name/values")
    assert bad.status_code == 400 and bad.json()["errorType"] == "bad_data"


def test_metadata_comes_from_the_catalog_for_stored_metrics(api: TestClient) -> None:
    data = ok(api.get(f"{API}/metadata"))
    stored = set(ok(api.get(f"{API}/label/__name__/values")))
    assert set(data) <= stored
    assert {"DCGM_FI_DEV_GPU_UTIL", "node_cpu_seconds_total", "node_load1"} <= set(data)
    cpu = data["node_cpu_seconds_total"]
    assert len(cpu) == 1 and cpu[0]["type"] == "counter" and cpu[0]["help"]
    assert set(ok(api.get(f"{API}/metadata", params={"metric": "node_load1"}))) == {"node_load1"}
    assert len(ok(api.get(f"{API}/metadata", params={"limit": 2}))) == 2


def test_buildinfo_and_exemplars(api: TestClient) -> None:
    info = ok(api.get(f"{API}/status/buildinfo"))
    assert info["version"].startswith("3.") and info["revision"].startswith("dcmon-")
    assert ok(api.get(f"{API}/query_exemplars", params={"query": "node_load1"})) == []
    bad = api.get(f"{API}/query_exemplars", params={"query": "sum("})
    assert bad.status_code == 400 and bad.json()["errorType"] == "bad_data"
