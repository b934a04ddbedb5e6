"""POST /api/v1/ingest: accepted batches are stored once; bad ones get a 4xx naming the problem
and leave nothing behind."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agent.wire.schema import MetricFamily
from server.ingest import service as ingest_service
from tests.factories import GPU_LABELS, default_metrics, identity, make_batch
from tests.server.conftest import START, FakeClock, push, row_counts


def test_accepted_batch_is_stored_and_acknowledged(client: TestClient, tmp_path: Path) -> None:
    response = push(client, make_batch(timestamp=START))
    assert response.status_code == 200
    # 4 samples sent + 2 derived collector-status samples
    assert response.json() == {
        "status": "accepted",
        "seq": 1,
        "samples": 6,
        "refused": [],
        "bench": None,
        "layout": None,
    }
    counts = row_counts(tmp_path / "dcmon.db")
    assert counts == {
        "nodes": 1,
        "gpus": 1,
        "series": 6,
        "samples": 6,
        "head_chunks": 1,
        "blocks": 0,
        "ingested_batches": 1,
    }


def test_resent_batch_is_acknowledged_without_effect(client: TestClient, tmp_path: Path) -> None:
    batch = make_batch(timestamp=START)
    push(client, batch)
    before = row_counts(tmp_path / "dcmon.db")
    response = push(client, batch)
    assert response.json() == {
        "status": "duplicate",
        "seq": 1,
        "samples": 0,
        "refused": [],
        "bench": None,
        "layout": None,
    }
    assert row_counts(tmp_path / "dcmon.db") == before


def test_reused_seq_with_a_new_tick_is_stored(client: TestClient, tmp_path: Path) -> None:
    push(client, make_batch(seq=1, timestamp=START - 20))
    response = push(client, make_batch(seq=1, timestamp=START - 10))  # agent state was reset
    assert response.json()["status"] == "accepted"
    assert row_counts(tmp_path / "dcmon.db")["samples"] == 12


def _document() -> dict:
    return json.loads(make_batch(timestamp=START).model_dump_json())


def _gz(document: object) -> bytes:
    return gzip.compress(json.dumps(document).encode())


def _mutated(mutate) -> bytes:
    document = _document()
    mutate(document)
    return _gz(document)


BAD_BODIES = [
    pytest.param(b"not gzip", {}, 400, "bad_compression", "gzip", id="not-gzip"),
    pytest.param(gzip.compress(b"{nope"), {}, 400, "malformed_json", "JSON", id="malformed-json"),
    pytest.param(gzip.compress(b"[]"), {}, 422, "invalid_batch", "object", id="not-an-object"),
    pytest.param(
        _mutated(lambda d: d.update(schema_version=9)),
        {},
        422,
        "unsupported_schema_version",
        "schema_version 9",
        id="schema-version",
    ),
    pytest.param(
        _mutated(lambda d: d.update(seq="12")), {}, 422, "invalid_batch", "seq", id="wrong-type"
    ),
    pytest.param(
        _mutated(lambda d: d["metrics"][0]["samples"][1].__setitem__(1, "fast")),
        {},
        422,
        "invalid_batch",
        "metrics.0.samples.1.1",
        id="value-not-a-number",
    ),
    pytest.param(
        _mutated(lambda d: d["metrics"][1].update(name="node load")),
        {},
        422,
        "invalid_batch",
        "metrics.1.name",
        id="bad-metric-name",
    ),
    pytest.param(
        _mutated(lambda d: d["metrics"].append(d["metrics"][0])),
        {},
        422,
        "invalid_batch",
        "appears twice",
        id="family-twice",
    ),
    pytest.param(
        _mutated(lambda d: d["metrics"][0]["samples"].append(d["metrics"][0]["samples"][0])),
        {},
        422,
        "invalid_batch",
        "repeats a series",
        id="series-twice",
    ),
    pytest.param(
        _mutated(lambda d: d["metrics"][0]["samples"][0][0].update(instance="spoof")),
        {},
        422,
        "invalid_batch",
        "reserved",
        id="reserved-label",
    ),
    pytest.param(
        _mutated(lambda d: d.update(timestamp=START + 3600)),
        {},
        422,
        "timestamp_in_future",
        "ahead",
        id="future-timestamp",
    ),
    pytest.param(b"{}", {"Content-Encoding": "br"}, 415, "unsupported_encoding", "br", id="br"),
    pytest.param(
        _gz(_document()),
        {"Content-Type": "text/plain"},
        415,
        "unsupported_media_type",
        "text/plain",
        id="content-type",
    ),
]


@pytest.mark.parametrize(("body", "headers", "status", "code", "needle"), BAD_BODIES)
def test_bad_input_is_refused_with_the_reason_and_nothing_is_stored(
    client: TestClient,
    tmp_path: Path,
    body: bytes,
    headers: dict[str, str],
    status: int,
    code: str,
    needle: str,
) -> None:
    before = row_counts(tmp_path / "dcmon.db")
    response = push(client, body=body, headers=headers)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == code
    assert needle in error["message"]
    assert row_counts(tmp_path / "dcmon.db") == before
    assert client.get("/api/v1/nodes").json() == {"nodes": []}


def test_oversized_bodies(make_app, tmp_path: Path) -> None:
    with TestClient(make_app(max_body_bytes=2048, max_decompressed_bytes=4096)) as client:
        big = gzip.compress(b"x" * 10) + b"\0" * 4096
        response = push(client, body=big)
        assert response.status_code == 413
        assert "exceeds 2048" in response.json()["error"]["message"]
        bomb = gzip.compress(b" " * 1_000_000)
        assert len(bomb) < 2048
        response = push(client, body=bomb)
        assert response.status_code == 413
        assert "inflates past" in response.json()["error"]["message"]
        assert row_counts(tmp_path / "dcmon.db")["samples"] == 0


@pytest.mark.parametrize(
    ("token", "needle"),
    [(None, "missing bearer token"), ("wrong", "unknown or revoked token"), ("", "Bearer <token>")],
)
def test_writes_need_a_known_token(client: TestClient, token, needle, tmp_path: Path) -> None:
    response = push(client, make_batch(timestamp=START), token=token)
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert needle in response.json()["error"]["message"]
    assert row_counts(tmp_path / "dcmon.db")["samples"] == 0


def test_malformed_authorization_header(client: TestClient) -> None:
    response = push(
        client, make_batch(timestamp=START), token=None, headers={"Authorization": "Basic abc"}
    )
    assert response.status_code == 401
    assert "Bearer <token>" in response.json()["error"]["message"]


def test_a_second_live_node_with_the_same_name_is_refused(
    client: TestClient, clock: FakeClock
) -> None:
    push(client, make_batch(timestamp=START))
    other = identity(node_id="f" * 32)
    response = push(client, make_batch(timestamp=START, node=other))
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "name_conflict"
    # Once the first node has been silent long enough, a reinstalled node may take the name.
    clock.now += 120
    response = push(client, make_batch(timestamp=clock.now, node=other))
    assert response.status_code == 200


def test_rejections_are_counted_by_reason(client: TestClient) -> None:
    push(client, body=b"junk")
    push(client, make_batch(timestamp=START), token="wrong")
    push(client, make_batch(timestamp=START))
    metrics = client.get("/metrics").text
    assert 'dcmon_server_ingest_rejected_batches_total{reason="bad_compression"} 1.0' in metrics
    assert 'dcmon_server_ingest_rejected_batches_total{reason="unauthenticated"} 1.0' in metrics
    assert 'dcmon_server_ingest_requests_total{code="200"} 1.0' in metrics
    assert 'dcmon_server_ingest_requests_total{code="400"} 1.0' in metrics
    assert "dcmon_server_ingest_samples_total 6.0" in metrics


def test_inventory_updates_gpus(client: TestClient) -> None:
    push(client, make_batch(timestamp=START))
    detail = client.get("/api/v1/nodes/gpu01").json()
    assert [(g["index"], g["uuid"], g["model"]) for g in detail["gpus"]] == [
        (0, GPU_LABELS["UUID"], "NVIDIA H100 80GB HBM3")
    ]
    assert detail["gpus"][0]["driver_version"] == "580.159.04"
    assert detail["gpus"][0]["latest"]["utilization_percent"] == 42.0


def test_unknown_metric_names_are_accepted(client: TestClient) -> None:
    family = MetricFamily(name="dcmon_future_metric", samples=[({}, 1.0)])
    response = push(client, make_batch(timestamp=START, metrics=[*default_metrics(), family]))
    assert response.status_code == 200
    assert "# TYPE dcmon_future_metric untyped" in client.get("/metrics").text


def test_events_and_job_usage_commit_with_the_samples_and_only_for_a_new_batch(
    make_app, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the ingest service's docstring says: a batch's events and job usage are written in
    its samples' transaction (a failure there keeps none of the batch), and a re-sent batch
    writes none of them again."""
    calls: list[bool] = []
    failing = [True]
    write_usages = ingest_service.write_usages

    def counted(conn, node_pk, timestamp, usages):  # type: ignore[no-untyped-def]
        calls.append(failing[0])
        if failing[0]:
            raise RuntimeError("job usage write failed")
        return write_usages(conn, node_pk, timestamp, usages)

    monkeypatch.setattr(ingest_service, "write_usages", counted)
    batch = make_batch(timestamp=START)
    with TestClient(make_app(), raise_server_exceptions=False) as client:
        assert push(client, batch).status_code == 500
        counts = row_counts(tmp_path / "dcmon.db")
        assert (counts["nodes"], counts["samples"], counts["ingested_batches"]) == (0, 0, 0)
        failing[0] = False
        tries = len(calls)
        assert push(client, batch).json()["status"] == "accepted"
        assert push(client, batch).json()["status"] == "duplicate"
    assert len(calls) == tries + 1  # written with the stored batch, not with the duplicate
