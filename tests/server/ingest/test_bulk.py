"""POST /api/v1/ingest/bulk: many batches per request, one result per record, in order."""

from __future__ import annotations

import gzip
import struct
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from agent.wire.codec import encode_batch
from agent.wire.protocol import PERMANENT_CODES
from agent.wire.schema import Ack, MetricFamily, RefusedSeries
from server.errors import ApiError
from server.ingest.bulk import MEDIA_TYPE, join_records, record_result, split_records
from server.ingest.service import RecordOutcome
from tests.factories import NODE_ID, default_metrics, identity, make_batch
from tests.server.conftest import START, push, row_counts
from tests.server.ingest.helpers import NODE_TOKEN, push_bulk, with_node_token


def _backlog(count: int, first_seq: int = 1) -> list:
    return [
        make_batch(seq=seq, timestamp=START - 10 * (count - i), with_inventory=i == 0)
        for i, seq in enumerate(range(first_seq, first_seq + count))
    ]


def test_split_records_is_the_inverse_of_join_records() -> None:
    payloads = [b"", b"a", b"bc" * 300]
    assert split_records(join_records(payloads), 3) == payloads
    assert split_records(b"", 3) == []


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        pytest.param(b"\x00\x00", "too few for a 4-byte length", id="short-prefix"),
        pytest.param(struct.pack(">I", 10) + b"abc", "claims 10 bytes but only 3", id="past-end"),
        pytest.param(join_records([b"ab"]) + b"\x00", "record 1: 1 bytes left", id="trailing"),
    ],
)
def test_broken_framing_is_a_400(client: TestClient, body: bytes, needle: str) -> None:
    response = push_bulk(client, body=body)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "bad_framing"
    assert needle in error["message"]


def test_a_backlog_is_stored_and_each_record_acknowledged(
    client: TestClient, tmp_path: Path
) -> None:
    writer = client.app.state.services.store.writer  # type: ignore[attr-defined]
    commits = writer.commits
    batches = _backlog(8)
    response = push_bulk(client, batches)
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["seq"] for r in results] == list(range(1, 9))
    assert {r["status"] for r in results} == {"accepted"}
    assert all(r["samples"] == 6 and r["http_status"] == 200 for r in results)
    assert all(r["code"] is None and r["message"] is None for r in results)
    assert row_counts(tmp_path / "dcmon.db")["samples"] == 48
    # The records were queued together: they share group commits instead of one each.
    assert writer.commits - commits < len(batches)
    # The newest batch of the backlog is the node's latest.
    assert client.get("/api/v1/nodes/gpu01").json()["last_push"] == START


def test_records_are_answered_one_by_one(client: TestClient, tmp_path: Path) -> None:
    stored = make_batch(seq=1, timestamp=START - 20)
    assert push(client, stored).status_code == 200
    future = make_batch(seq=3, timestamp=START + 3600)
    payloads = [
        encode_batch(stored),  # duplicate
        b"not gzip",  # rejected, seq unknown
        encode_batch(future),  # kept for retry (the clock may be fixed), with its seq
        encode_batch(make_batch(seq=4, timestamp=START)),  # accepted
    ]
    results = push_bulk(client, payloads=payloads).json()["results"]
    assert [(r["seq"], r["status"], r["http_status"], r["code"]) for r in results] == [
        (1, "duplicate", 200, None),
        (None, "rejected", 400, "bad_compression"),
        (3, "retry", 422, "timestamp_in_future"),
        (4, "accepted", 200, None),
    ]
    assert "gzip" in results[1]["message"]
    assert row_counts(tmp_path / "dcmon.db")["ingested_batches"] == 2
    metrics = client.get("/metrics").text
    assert 'dcmon_server_ingest_rejected_batches_total{reason="bad_compression"} 1.0' in metrics
    assert 'dcmon_server_ingest_rejected_batches_total{reason="timestamp_in_future"} 1.0' in metrics
    assert 'dcmon_server_ingest_requests_total{code="200"} 2.0' in metrics


def test_a_record_of_another_node_is_kept_for_retry(
    make_app: Callable[..., FastAPI], tmp_path: Path
) -> None:
    app = make_app()
    with_node_token(app, NODE_ID)
    with TestClient(app) as client:
        other = make_batch(seq=7, timestamp=START, node=identity("gpu02", node_id="f" * 32))
        own = make_batch(seq=1, timestamp=START)
        results = push_bulk(client, [own, other], token=NODE_TOKEN).json()["results"]
        assert results[0]["status"] == "accepted"
        assert results[1]["seq"] == 7
        assert (results[1]["status"], results[1]["http_status"]) == ("retry", 403)
        assert results[1]["code"] == "node_mismatch"
        assert row_counts(tmp_path / "dcmon.db")["nodes"] == 1


def test_cardinality_counts_series_of_earlier_records_of_the_same_request(
    make_app: Callable[..., FastAPI],
) -> None:
    with TestClient(make_app(max_series_per_node=8)) as client:
        first = make_batch(seq=1, timestamp=START - 10)  # 6 series
        extra = [
            MetricFamily(name="dcmon_test_extra", samples=[({"i": str(i)}, 1.0) for i in range(3)])
        ]
        second = make_batch(seq=2, timestamp=START, metrics=extra, with_inventory=False)
        results = push_bulk(client, [first, second]).json()["results"]
        # The first record's 6 series count although not committed yet: 2 of the 3 new fit,
        # the second record is stored without the third.
        assert [r["status"] for r in results] == ["accepted", "accepted"]
        assert results[1]["samples"] == 4  # 2 collector-status series + 2 of dcmon_test_extra
        assert results[1]["refused"] == [
            {"metric": "dcmon_test_extra", "series": 1, "reason": "cardinality_limit"}
        ]
        fits = make_batch(seq=3, timestamp=START, metrics=default_metrics(), with_inventory=False)
        assert push_bulk(client, [fits]).json()["results"][0]["status"] == "accepted"


def test_too_many_records_is_a_413(make_app: Callable[..., FastAPI], tmp_path: Path) -> None:
    with TestClient(make_app(max_batches_per_bulk=3)) as client:
        response = push_bulk(client, _backlog(4))
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "too_many_batches"
        assert row_counts(tmp_path / "dcmon.db")["nodes"] == 0
        assert push_bulk(client, _backlog(3)).status_code == 200


def test_the_whole_body_is_bounded(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(max_body_bytes=2048)) as client:
        response = push_bulk(client, payloads=[gzip.compress(b"x") + bytes(4096)])
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "body_too_large"


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({"Content-Type": "application/json"}, "unsupported_media_type"),
        ({"Content-Encoding": "gzip"}, "unsupported_encoding"),
    ],
)
def test_content_type_and_encoding_are_checked(
    client: TestClient, headers: dict[str, str], code: str
) -> None:
    response = push_bulk(client, _backlog(1), headers=headers)
    assert response.status_code == 415
    assert response.json()["error"]["code"] == code


def test_bulk_needs_an_ingest_token(client: TestClient) -> None:
    response = push_bulk(client, _backlog(1), token=None)
    assert response.status_code == 401
    response = push_bulk(client, _backlog(1), token="wrong")
    assert response.status_code == 401


def test_an_empty_bulk_request_stores_nothing(client: TestClient) -> None:
    response = push_bulk(client, [])
    assert response.status_code == 200
    assert response.json() == {"results": [], "bench": None}


def test_the_route_is_described_in_the_openapi(client: TestClient) -> None:
    operation = client.get("/openapi.json").json()["paths"]["/api/v1/ingest/bulk"]["post"]
    body = operation["requestBody"]
    assert MEDIA_TYPE in body["content"]
    assert "4-byte big-endian" in body["description"]
    assert {"200", "400", "413", "415", "429", "503"} <= set(operation["responses"])


def test_split_records_refuses_past_the_limit() -> None:
    with pytest.raises(ApiError) as caught:
        split_records(join_records([b"a", b"b"]), 1)
    assert caught.value.status == 413


def test_a_stored_record_carries_the_series_its_ack_refused() -> None:
    refused = RefusedSeries(metric="dcmon_job_gpu_info", series=3, reason="cardinality_limit")
    ack = Ack(status="accepted", seq=4, samples=6, refused=[refused])
    result = record_result(RecordOutcome(4, ack=ack))
    assert (result.status, result.samples, result.refused) == ("accepted", 6, [refused])
    assert result.model_dump(mode="json")["refused"] == [
        {"metric": "dcmon_job_gpu_info", "series": 3, "reason": "cardinality_limit"}
    ]


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        *[(422, code, "rejected") for code in sorted(PERMANENT_CODES)],
        (422, "timestamp_in_future", "retry"),
        (422, "cardinality_limit", "retry"),
        (503, "storage_unavailable", "retry"),
        (403, "node_mismatch", "retry"),
        (409, "name_conflict", "retry"),
        (500, "internal_error", "retry"),
    ],
)
def test_a_record_is_rejected_only_for_a_permanent_code(
    status: int, code: str, expected: str
) -> None:
    """The agent's rule for single answers (agent.wire.protocol) judges bulk records too."""
    result = record_result(RecordOutcome(4, error=ApiError(status, code, "why")))
    assert (result.status, result.http_status, result.code) == (expected, status, code)
