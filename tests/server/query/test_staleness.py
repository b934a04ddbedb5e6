"""Stale markers for pushed samples: the pure rules, then through the query API.

Without them an instant selector shows a series for five minutes after it was last pushed,
although a scrape-based Prometheus would have stopped at the next scrape.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from agent.wire.schema import MetricFamily
from server.promql.values import is_stale
from server.query.staleness import NodeClock, down_at_ms, with_markers, with_markers_all
from server.remote_write.proto import TimeSeries, encode_write_request
from tests.factories import identity, make_batch
from tests.server.conftest import START, TOKEN, FakeClock, push

API = "/prometheus/api/v1"
NODE = identity("gpu01", node_id="0123456789abcdef0123456789abcdef")
AGENT = NodeClock(10_000, 10_000, 100_000, None)


def _markers(ts: list[int], clock: NodeClock) -> list[int]:
    values = np.arange(len(ts), dtype=np.float64)
    out_ts, out_values = with_markers(np.asarray(ts, dtype=np.int64), values, clock)
    assert len(out_ts) == len(out_values)
    assert (np.diff(out_ts) >= 0).all()
    stale = is_stale(out_values)
    assert out_values[~stale].tolist() == values.tolist(), "the samples themselves are kept"
    return [int(t) for t in out_ts[stale]]


def test_a_regular_series_gets_no_marker() -> None:
    assert _markers([60_000, 70_000, 80_000, 90_000, 100_000], AGENT) == []
    # Timing jitter under half an interval is not a missed batch.
    assert _markers([60_000, 70_400, 80_000, 94_000, 100_000], AGENT) == []


def test_a_missed_batch_makes_the_series_stale_from_that_batch() -> None:
    assert _markers([10_000, 20_000, 50_000, 60_000, 100_000], AGENT) == [30_000, 70_000]


def test_a_series_missing_from_the_newest_batches_is_stale_after_its_last() -> None:
    assert _markers([40_000, 50_000], AGENT) == [60_000]
    # A last sample within half an interval of the node's newest batch was in it.
    assert _markers([40_000, 50_000, 96_000], AGENT) == [60_000]


def test_a_silent_node_goes_stale_when_declared_down() -> None:
    assert down_at_ms(100_000, 1000.0, 10.0, now_s=1020.0, intervals=3, min_seconds=30) is None
    down = down_at_ms(100_000, 1000.0, 10.0, now_s=1031.0, intervals=3, min_seconds=30)
    assert down == 130_000
    # A slow node's window is its intervals, not the minimum.
    assert down_at_ms(100_000, 1000.0, 60.0, now_s=1100.0, intervals=3, min_seconds=30) is None
    clock = NodeClock(10_000, 10_000, 100_000, down)
    assert _markers([80_000, 90_000, 100_000], clock) == [130_000]


def test_without_a_node_interval_the_series_spacing_judges_gaps() -> None:
    # Remote-written, scraped every 15 s: its node's recorded 60 s interval is not used.
    remote = NodeClock(None, 60_000, 100_000, None)
    assert _markers([10_000, 25_000, 40_000, 85_000, 100_000], remote) == [55_000]
    assert _markers([100_000], remote) == []


def _push(client: TestClient, seq: int, at: float, series: dict[str, float]) -> None:
    families = [MetricFamily(name=name, samples=[({}, value)]) for name, value in series.items()]
    batch = make_batch(seq=seq, timestamp=at, node=NODE, metrics=families)
    assert push(client, batch).status_code == 200


def _instant(client: TestClient, query: str, at: float) -> list[dict[str, Any]]:
    response = client.get(f"{API}/query", params={"query": query, "time": at})
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def test_a_series_dropped_from_the_batches_disappears_at_the_next_batch(
    client: TestClient, clock: FakeClock
) -> None:
    for i in range(6):
        clock.now = START + 10 * i
        series = {"node_load1": 1.0 + i}
        if i < 3:
            series["node_load5"] = 5.0
        _push(client, i + 1, clock.now, series)
    assert _instant(client, "node_load5", START + 25) != []
    # Missing from the batch at +30: stale from there, not for five more minutes.
    assert _instant(client, "node_load5", START + 31) == []
    assert _instant(client, "node_load5", START + 50) == []
    (load,) = _instant(client, "node_load1", START + 50)
    assert load["value"][1] == "6"
    response = client.get(
        f"{API}/query_range",
        params={"query": "node_load5", "start": START, "end": START + 50, "step": 5},
    )
    (row,) = response.json()["data"]["result"]
    assert [point[0] for point in row["values"]] == [START + 5 * k for k in range(6)]


def test_a_silent_nodes_series_go_stale_once_it_is_declared_down(
    client: TestClient, clock: FakeClock
) -> None:
    for i in range(3):
        clock.now = START + 10 * i
        _push(client, i + 1, clock.now, {"node_load1": 2.0})
    clock.now = START + 45  # 25 s after the last push: still up (30 s window)
    assert _instant(client, "node_load1", START + 40) != []
    clock.now = START + 200  # now down; stale from the last batch plus the window
    assert _instant(client, "node_load1", START + 49) != []
    assert _instant(client, "node_load1", START + 51) == []
    assert _instant(client, "node_load1", START + 200) == []
    assert _instant(client, "absent(node_load1)", START + 200) != []


def test_remote_written_series_go_stale_after_a_missed_scrape(client: TestClient) -> None:
    t0 = int(START * 1000)
    labels = [("__name__", "node_load1"), ("instance", "host-a:9100"), ("job", "node")]
    stamps = [t0, t0 + 15_000, t0 + 30_000, t0 + 90_000]
    body = encode_write_request([TimeSeries(labels, [(ts, 1.0)]) for ts in stamps])
    headers = {
        "Authorization": f"Bearer {TOKEN}",
        "Content-Type": "application/x-protobuf",
        "Content-Encoding": "snappy",
        "X-Prometheus-Remote-Write-Version": "0.1.0",
    }
    assert client.post("/api/v1/write", content=body, headers=headers).status_code == 204
    assert _instant(client, "node_load1", START + 44) != []
    assert _instant(client, "node_load1", START + 46) == []  # stale from the missed +45 s
    assert _instant(client, "node_load1", START + 90) != []


def test_pushes_after_a_query_reach_its_successors(client: TestClient, clock: FakeClock) -> None:
    # The first query reads the node table; later pushes must update what queries see of it.
    _push(client, 1, START, {"node_load1": 1.0, "node_load5": 5.0})
    assert _instant(client, "node_load5", START + 5) != []
    for i in range(1, 4):
        clock.now = START + 10 * i
        _push(client, i + 1, clock.now, {"node_load1": 1.0})
    assert _instant(client, "node_load5", START + 11) == []


def test_markers_for_many_series_at_once_equal_one_at_a_time() -> None:
    rng = np.random.default_rng(3)
    items = []
    for i in range(40):
        clock = NodeClock(
            None if i % 7 == 0 else 10_000,
            10_000,
            int(rng.integers(50_000, 400_000)),
            None if i % 3 else int(rng.integers(100_000, 500_000)),
        )
        steps = rng.choice([10_000, 10_000, 10_000, 20_000, 35_000], size=int(rng.integers(1, 30)))
        ts = np.cumsum(steps).astype(np.int64) + int(rng.integers(0, 5_000))
        items.append((ts, rng.normal(size=len(ts)), clock))
    items.append((np.array([], dtype=np.int64), np.array([]), AGENT))
    batched = with_markers_all(items)
    for (ts, values, clock), (got_ts, got_values) in zip(items, batched, strict=True):
        want_ts, want_values = with_markers(ts, values, clock)
        assert got_ts.tolist() == want_ts.tolist()
        assert got_values.view(np.uint64).tolist() == want_values.view(np.uint64).tolist()
