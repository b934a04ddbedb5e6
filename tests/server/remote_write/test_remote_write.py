"""POST /api/v1/write: real snappy + protobuf bodies in, answers as Prometheus' receiver,
samples out through the PromQL API and history."""

from __future__ import annotations

import math
import struct
from typing import Any

import cramjam
from fastapi.testclient import TestClient

from server.remote_write.proto import TimeSeries, encode_write_request
from tests.server.conftest import START, TOKEN, FakeClock

T0 = int(START * 1000)
HEADERS = {
    "Authorization": f"Bearer {TOKEN}",
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
}


def _series(
    value: float, ts_ms: int = T0, name: str = "node_load1", instance: str = "host-a:9100"
) -> TimeSeries:
    labels = [("__name__", name), ("instance", instance), ("job", "node")]
    return TimeSeries(labels, [(ts_ms, value)])


def _write(client: TestClient, *series: TimeSeries, **headers: str) -> Any:
    return client.post(
        "/api/v1/write", content=encode_write_request(list(series)), headers={**HEADERS, **headers}
    )


def _query(client: TestClient, query: str, at: float) -> list[dict[str, Any]]:
    response = client.get("/prometheus/api/v1/query", params={"query": query, "time": at})
    assert response.status_code == 200, response.text
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def test_a_write_round_trips_through_promql_and_history(client: TestClient) -> None:
    # Prometheus sends one sample per TimeSeries: the label set repeats within a request.
    sent = [_series(float(i), T0 + i * 15_000) for i in range(4)]
    sent.append(_series(7.5, T0, name="up", instance="host-b:9100"))
    response = _write(client, *sent)
    assert response.status_code == 204, response.text
    assert response.content == b""

    (load,) = _query(client, "node_load1", START + 45)
    assert load["metric"] == {"__name__": "node_load1", "instance": "host-a:9100", "job": "node"}
    assert load["value"] == [START + 45, "3"]
    (up,) = _query(client, 'up{job="node"}', START)
    assert up["metric"] == {"__name__": "up", "instance": "host-b:9100", "job": "node"}
    assert up["value"][1] == "7.5"

    body = client.get(
        "/api/v1/history",
        params={
            "metric": "node_load1",
            "instance": "host-a:9100",
            "start": START,
            "end": START + 45,
        },
    ).json()
    (series,) = body["series"]
    assert series["labels"] == {"instance": "host-a:9100", "job": "node"}
    assert [value for _ts, value in series["points"]] == [0, 1, 2, 3]


def test_an_identical_resend_is_accepted_and_stored_once(client: TestClient) -> None:
    sent = [_series(1.0, T0), _series(2.0, T0 + 15_000)]
    assert _write(client, *sent).status_code == 204
    assert _write(client, *sent).status_code == 204
    assert _write(client, sent[1]).status_code == 204
    response = client.get(
        "/prometheus/api/v1/query",
        params={"query": "count_over_time(node_load1[1m])", "time": START + 15},
    )
    assert response.json()["data"]["result"][0]["value"][1] == "2"


def test_duplicate_and_out_of_order_samples_are_400(client: TestClient) -> None:
    assert _write(client, _series(1.0, T0 + 15_000)).status_code == 204
    duplicate = _write(client, _series(9.0, T0 + 15_000))
    assert duplicate.status_code == 400
    assert "duplicate sample" in duplicate.json()["error"]["message"]
    late = _write(client, _series(1.0, T0))
    assert late.status_code == 400
    assert "out of order" in late.json()["error"]["message"]
    (kept,) = _query(client, "node_load1", START + 15)
    assert kept["value"][1] == "1"


def test_conflicts_within_one_request_are_dropped_silently(client: TestClient) -> None:
    sent = [_series(1.0, T0 + 15_000), _series(2.0, T0 + 15_000), _series(3.0, T0)]
    assert _write(client, *sent).status_code == 204
    (kept,) = _query(client, "node_load1", START + 15)
    assert kept["value"][1] == "1"
    assert _query(client, "node_load1", START) == []


def test_samples_too_far_ahead_are_out_of_bounds(client: TestClient, clock: FakeClock) -> None:
    ahead = _write(client, _series(1.0, round((clock.now + 601) * 1000)))
    assert ahead.status_code == 400
    assert "out of bounds" in ahead.json()["error"]["message"]
    assert _write(client, _series(1.0, round((clock.now + 599) * 1000))).status_code == 204


def test_invalid_series_are_skipped_and_the_rest_stored(client: TestClient) -> None:
    no_name = TimeSeries([("instance", "host-a:9100")], [(T0, 1.0)])
    bad_name = TimeSeries([("__name__", "1bad"), ("instance", "h")], [(T0, 1.0)])
    repeated = TimeSeries([("__name__", "x"), ("a", "1"), ("a", "2")], [(T0, 1.0)])
    no_instance = TimeSeries([("__name__", "solo"), ("empty", "")], [(T0, 4.0)])
    response = _write(client, no_name, bad_name, repeated, no_instance, _series(2.0))
    assert response.status_code == 204
    found = sorted(
        (item["metric"] for item in _query(client, '{__name__=~".+"}', START)),
        key=lambda m: m["__name__"],
    )
    # Without an instance the series stays without one, as Prometheus shows it.
    assert found == [
        {"__name__": "node_load1", "instance": "host-a:9100", "job": "node"},
        {"__name__": "solo"},
    ]
    assert _query(client, 'solo{instance=""}', START) != []
    assert _query(client, 'solo{instance=~".+"}', START) == []


def test_nan_inf_and_stale_markers_are_stored_bit_for_bit(client: TestClient) -> None:
    stale = struct.unpack("<d", struct.pack("<Q", 0x7FF0000000000002))[0]
    sent = [
        _series(math.nan, T0, name="summary_quantile"),
        _series(math.inf, T0, name="bound"),
        _series(1.0, T0), _series(2.0, T0 + 15_000), _series(stale, T0 + 20_000),
    ]  # fmt: skip
    assert _write(client, *sent).status_code == 204
    (nan,) = _query(client, "summary_quantile", START)
    assert nan["value"][1] == "NaN"
    (inf,) = _query(client, "bound", START)
    assert inf["value"][1] == "+Inf"
    # The stale marker ends the series at +20 s, not 5 minutes after its last value.
    assert _query(client, "node_load1", START + 19) != []
    assert _query(client, "node_load1", START + 21) == []
    # A re-sent stale marker is the same bits: accepted, not a duplicate.
    assert _write(client, _series(stale, T0 + 20_000)).status_code == 204
    body = client.get(
        "/api/v1/history",
        params={
            "metric": "node_load1",
            "instance": "host-a:9100",
            "start": START,
            "end": START + 30,
        },
    ).json()
    (series,) = body["series"]
    assert [value for _ts, value in series["points"]] == [1.0, 2.0], "no marker in history"
    nan_history = client.get(
        "/api/v1/history",
        params={
            "metric": "summary_quantile",
            "instance": "host-a:9100",
            "start": START,
            "end": START,
        },
    )
    assert nan_history.status_code == 200, nan_history.text
    assert nan_history.json()["series"][0]["points"] == [[START, None]]  # NaN is null in JSON


def test_a_metadata_only_request_is_204(client: TestClient) -> None:
    # WriteRequest field 3 (metadata) only: an unknown field to the decoder.
    metadata = b"\x1a\x06\x08\x01\x12\x02up"
    body = bytes(cramjam.snappy.compress_raw(metadata))
    assert client.post("/api/v1/write", content=body, headers=HEADERS).status_code == 204


def test_transport_errors_answer_as_prometheus(client: TestClient) -> None:
    good = encode_write_request([_series(1.0)])
    post = client.post
    assert client.get("/api/v1/write", headers=HEADERS).status_code == 405
    json_type = {**HEADERS, "Content-Type": "application/json"}
    assert post("/api/v1/write", content=good, headers=json_type).status_code == 415
    v2 = {**HEADERS, "Content-Type": "application/x-protobuf;proto=io.prometheus.write.v2.Request"}
    assert post("/api/v1/write", content=good, headers=v2).status_code == 415
    v1 = {**HEADERS, "Content-Type": "application/x-protobuf;proto=prometheus.WriteRequest"}
    assert post("/api/v1/write", content=good, headers=v1).status_code == 204
    gzip = {**HEADERS, "Content-Encoding": "gzip"}
    assert post("/api/v1/write", content=good, headers=gzip).status_code == 415
    assert post("/api/v1/write", content=b"\xff\xff\xff", headers=HEADERS).status_code == 400
    not_proto = bytes(cramjam.snappy.compress_raw(b"\xff\xff\xff\xff"))
    assert post("/api/v1/write", content=not_proto, headers=HEADERS).status_code == 400
    bare = {"Authorization": HEADERS["Authorization"]}  # no Content-Type or Content-Encoding
    assert post("/api/v1/write", content=good, headers=bare).status_code == 204


def test_limits_are_the_native_ones(make_app: Any) -> None:
    with TestClient(make_app(max_body_bytes=1024, max_decompressed_bytes=1024)) as client:
        big = [_series(float(i), name=f"m{i}") for i in range(200)]
        body = encode_write_request(big)
        assert len(body) > 1024
        assert client.post("/api/v1/write", content=body, headers=HEADERS).status_code == 413
        inflated = bytes(cramjam.snappy.compress_raw(b"\x00" * 2048))
        answer = client.post("/api/v1/write", content=inflated, headers=HEADERS)
        assert answer.status_code == 400
        assert "exceeds the limit" in answer.json()["error"]["message"]
    with TestClient(make_app(max_series_per_batch=2)) as client:
        three = [_series(1.0, name=name) for name in ("a", "b", "c")]
        assert _write(client, *three).status_code == 400
        assert _write(client, *three[:2]).status_code == 204


def test_writes_need_an_ingest_token(client: TestClient) -> None:
    body = encode_write_request([_series(1.0)])
    headers = {key: value for key, value in HEADERS.items() if key != "Authorization"}
    assert client.post("/api/v1/write", content=body, headers=headers).status_code == 401
    wrong = {**headers, "Authorization": "Bearer dcm_wrong"}
    assert client.post("/api/v1/write", content=body, headers=wrong).status_code == 401
