"""Clock skew: the agent's X-Dcmon-Sent-At against the server's clock, per node, on /metrics and in
the nodes API."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from server.latest.cache import LatestCache, NodeLatest
from tests.factories import make_batch
from tests.server.conftest import START, FakeClock, push
from tests.server.ingest.helpers import push_bulk

HEADER = "X-Dcmon-Sent-At"


def _skew_lines(client: TestClient) -> list[str]:
    return [
        line
        for line in client.get("/metrics").text.splitlines()
        if line.startswith("dcmon_node_clock_skew_seconds")
    ]


def _api_skew(client: TestClient) -> tuple[float | None, float | None]:
    listed = client.get("/api/v1/nodes").json()["nodes"][0]["clock_skew_seconds"]
    detail = client.get("/api/v1/nodes/gpu01").json()["clock_skew_seconds"]
    return listed, detail


def test_skew_is_exposed_on_metrics_and_in_the_api(client: TestClient) -> None:
    response = push(client, make_batch(timestamp=START), headers={HEADER: f"{START + 2.5}"})
    assert response.status_code == 200
    assert _skew_lines(client) == ['dcmon_node_clock_skew_seconds{instance="gpu01"} 2.5']
    metrics = client.get("/metrics").text
    assert "# TYPE dcmon_node_clock_skew_seconds gauge" in metrics
    assert "# HELP dcmon_node_clock_skew_seconds The node's wall clock" in metrics
    assert _api_skew(client) == (2.5, 2.5)


def test_a_node_behind_has_a_negative_skew(client: TestClient, clock: FakeClock) -> None:
    clock.now = START + 0.25
    push(client, make_batch(timestamp=START), headers={HEADER: f"{START - 3}"})
    assert _api_skew(client) == (-3.25, -3.25)


def test_without_the_header_no_skew_is_known(client: TestClient) -> None:
    push(client, make_batch(timestamp=START))
    assert _skew_lines(client) == []
    assert _api_skew(client) == (None, None)


@pytest.mark.parametrize("value", ["soon", "nan", "inf", ""])
def test_a_header_that_is_not_a_number_is_ignored(
    client: TestClient, clock: FakeClock, value: str
) -> None:
    push(client, make_batch(seq=1, timestamp=START), headers={HEADER: f"{START + 1}"})
    clock.now += 10
    response = push(client, make_batch(seq=2, timestamp=clock.now), headers={HEADER: value})
    assert response.status_code == 200
    assert _api_skew(client) == (1.0, 1.0)  # the last known skew stays


def test_skew_follows_the_latest_request_even_a_replay(
    client: TestClient, clock: FakeClock
) -> None:
    batch = make_batch(seq=2, timestamp=START)
    push(client, batch, headers={HEADER: f"{START + 1}"})
    clock.now += 10
    old = make_batch(seq=1, timestamp=START - 10)
    push(client, old, headers={HEADER: f"{clock.now + 4}"})  # an older batch, replayed
    assert _api_skew(client) == (4.0, 4.0)
    clock.now += 10
    push(client, batch, headers={HEADER: f"{clock.now - 2}"})  # a duplicate
    assert _api_skew(client) == (-2.0, -2.0)


def test_bulk_requests_carry_the_skew(client: TestClient) -> None:
    response = push_bulk(client, [make_batch(timestamp=START)], headers={HEADER: f"{START + 7}"})
    assert response.json()["results"][0]["status"] == "accepted"
    assert _api_skew(client) == (7.0, 7.0)


def test_a_batch_refused_for_its_timestamp_still_records_the_skew(
    client: TestClient, clock: FakeClock
) -> None:
    push(client, make_batch(seq=1, timestamp=START))
    clock.now += 10
    ahead = 3600.0
    response = push(
        client,
        make_batch(seq=2, timestamp=clock.now + ahead),
        headers={HEADER: f"{clock.now + ahead}"},
    )
    assert response.json()["error"]["code"] == "timestamp_in_future"
    assert _api_skew(client) == (ahead, ahead)


def test_the_cache_keeps_the_skew_across_batches_without_it() -> None:
    cache = LatestCache()

    def latest(batch_ts: float, skew: float | None) -> NodeLatest:
        return NodeLatest("n" * 32, "gpu01", {}, 10.0, batch_ts, batch_ts, 1, {}, skew)

    cache.update(latest(START, 1.5))
    cache.update(latest(START + 10, None))
    node = cache.get("n" * 32)
    assert node is not None and node.clock_skew_seconds == 1.5
    cache.set_clock_skew("n" * 32, -0.5)
    assert cache.touch("n" * 32, START + 20)
    node = cache.get("n" * 32)
    assert node is not None and node.clock_skew_seconds == -0.5
    cache.set_clock_skew("unknown", 3.0)  # a node not in the cache stays unknown
    assert cache.get("unknown") is None
