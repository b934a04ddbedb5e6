"""Ingest input limits and node authorization: each refusal is a 4xx naming the reason, counted by
its code, and leaves nothing of the batch behind."""

from __future__ import annotations

import gzip
import json
import struct
import tracemalloc
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from agent.wire.codec import WireError, decode_batch
from agent.wire.schema import MAX_LABEL_VALUE_LENGTH, MAX_LABELS_PER_SAMPLE, MetricFamily
from tests.factories import NODE_ID, default_metrics, identity, make_batch
from tests.server.conftest import START, FakeClock, push, row_counts
from tests.server.ingest.helpers import NODE_TOKEN, with_node_token

OTHER_NODE = "f" * 32


def _rejected(client: TestClient, reason: str) -> float:
    prefix = f'dcmon_server_ingest_rejected_batches_total{{reason="{reason}"}} '
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(prefix):
            return float(line.removeprefix(prefix))
    return 0.0


def _family(name: str, count: int, label: str = "i") -> MetricFamily:
    return MetricFamily(name=name, samples=[({label: str(i)}, float(i)) for i in range(count)])


# -- node authorization --------------------------------------------------------------------


def test_a_node_token_writes_its_own_node(make_app: Callable[..., FastAPI], tmp_path: Path) -> None:
    app = make_app()
    with_node_token(app, NODE_ID)
    with TestClient(app) as client:
        response = push(client, make_batch(timestamp=START), token=NODE_TOKEN)
        assert response.status_code == 200, response.text
        assert row_counts(tmp_path / "dcmon.db")["samples"] == 6


def test_a_node_token_may_not_write_another_node(
    make_app: Callable[..., FastAPI], tmp_path: Path
) -> None:
    app = make_app()
    with_node_token(app, NODE_ID)
    with TestClient(app) as client:
        other = make_batch(timestamp=START, node=identity(name="gpu02", node_id=OTHER_NODE))
        response = push(client, other, token=NODE_TOKEN)
        assert response.status_code == 403
        error = response.json()["error"]
        assert error["code"] == "node_mismatch"
        assert OTHER_NODE in error["message"] and NODE_ID in error["message"]
        assert row_counts(tmp_path / "dcmon.db")["nodes"] == 0
        assert _rejected(client, "node_mismatch") == 1
        # The shared fleet token still writes any node.
        assert push(client, other).status_code == 200


# -- series per batch and per node ---------------------------------------------------------


def test_a_batch_with_too_many_samples_is_refused(
    make_app: Callable[..., FastAPI], tmp_path: Path
) -> None:
    with TestClient(make_app(max_series_per_batch=10)) as client:
        families = [_family("dcmon_test_a", 6), _family("dcmon_test_b", 5)]
        response = push(client, make_batch(timestamp=START, metrics=families))
        assert response.status_code == 422
        error = response.json()["error"]
        assert error["code"] == "too_many_series"
        assert "11 samples" in error["message"] and "10" in error["message"]
        assert row_counts(tmp_path / "dcmon.db")["nodes"] == 0
        assert _rejected(client, "too_many_series") == 1
        fits = [_family("dcmon_test_a", 5), _family("dcmon_test_b", 5)]
        assert push(client, make_batch(timestamp=START, metrics=fits)).status_code == 200


def _refused_series(client: TestClient) -> dict[str, float]:
    """Returns: the refused-series counters of /metrics, by their label text."""
    counts = {}
    for line in client.get("/metrics").text.splitlines():
        for family in (
            "dcmon_server_ingest_refused_series_total",
            "dcmon_node_refused_series_total",
        ):
            if line.startswith(family + "{"):
                name, value = line.rsplit(" ", 1)
                counts[name] = float(value)
    return counts


def test_a_batch_past_the_node_series_limit_is_stored_without_its_new_series(
    make_app: Callable[..., FastAPI], tmp_path: Path
) -> None:
    # 4 samples + 2 collector-status series per batch of the factory.
    with TestClient(make_app(max_series_per_node=10)) as client:
        assert push(client, make_batch(seq=1, timestamp=START)).status_code == 200
        assert row_counts(tmp_path / "dcmon.db")["series"] == 6
        exploding = [*default_metrics(), _family("dcmon_test_exploding", 5, label="request_id")]
        response = push(client, make_batch(seq=2, timestamp=START + 10, metrics=exploding))
        assert response.status_code == 200, response.text
        ack = response.json()
        assert (ack["status"], ack["samples"]) == ("accepted", 10)  # 6 known + 4 of 5 new
        assert ack["refused"] == [
            {"metric": "dcmon_test_exploding", "series": 1, "reason": "cardinality_limit"}
        ]
        counts = row_counts(tmp_path / "dcmon.db")
        assert (counts["series"], counts["samples"]) == (10, 16)
        assert _rejected(client, "cardinality_limit") == 0  # no batch was refused
        assert _refused_series(client) == {
            'dcmon_server_ingest_refused_series_total{reason="cardinality_limit"}': 1.0,
            'dcmon_node_refused_series_total{instance="gpu01",reason="cardinality_limit"}': 1.0,
        }
        # The refused series is in neither history nor the latest values on /metrics.
        assert 'request_id="4"' not in client.get("/metrics").text
        assert 'request_id="3"' in client.get("/metrics").text
        # The same batch shape again: known series flow, the fifth is refused again.
        again = push(client, make_batch(seq=3, timestamp=START + 20, metrics=exploding)).json()
        assert (again["samples"], again["refused"][0]["series"]) == (10, 1)


def test_the_series_limit_counts_only_series_written_within_the_active_window(
    make_app: Callable[..., FastAPI], clock: FakeClock
) -> None:
    window = 3600.0
    with TestClient(
        make_app(max_series_per_node=10, active_series_window_seconds=window)
    ) as client:
        first = [*default_metrics(), _family("dcmon_job_a", 4, label="job_id")]
        assert (
            push(client, make_batch(seq=1, timestamp=START, metrics=first)).json()["refused"] == []
        )
        second = [*default_metrics(), _family("dcmon_job_b", 4, label="job_id")]
        clock.now = START + 60
        ack = push(client, make_batch(seq=2, timestamp=clock.now, metrics=second)).json()
        assert ack["refused"] == [
            {"metric": "dcmon_job_b", "series": 4, "reason": "cardinality_limit"}
        ]
        # Job a's series go unwritten for longer than the window: they no longer count.
        clock.now = START + 60 + window + 60
        ack = push(client, make_batch(seq=3, timestamp=clock.now, metrics=second)).json()
        assert (ack["samples"], ack["refused"]) == (10, [])


def test_the_cardinality_limit_is_per_node(make_app: Callable[..., FastAPI]) -> None:
    with TestClient(make_app(max_series_per_node=6)) as client:
        assert push(client, make_batch(timestamp=START)).status_code == 200
        other = identity(name="gpu02", node_id=OTHER_NODE)
        assert push(client, make_batch(timestamp=START, node=other)).status_code == 200


# -- wire schema limits --------------------------------------------------------------------


def _document() -> dict[str, Any]:
    document: dict[str, Any] = json.loads(make_batch(timestamp=START).model_dump_json())
    return document


def _labels(document: dict[str, Any]) -> dict[str, str]:
    labels: dict[str, str] = document["metrics"][0]["samples"][0][0]
    return labels


def _too_many_labels(document: dict[str, Any]) -> None:
    _labels(document).update({f"l{i}": "x" for i in range(MAX_LABELS_PER_SAMPLE)})


def _long_label_value(document: dict[str, Any]) -> None:
    _labels(document)["cpu"] = "x" * (MAX_LABEL_VALUE_LENGTH + 1)


def _bad_label_name(document: dict[str, Any]) -> None:
    _labels(document)["bad-name"] = "x"


def _long_metric_name(document: dict[str, Any]) -> None:
    document["metrics"][0]["name"] = "m" * 201


def _bad_metric_name(document: dict[str, Any]) -> None:
    document["metrics"][1]["name"] = "1node_load"


def _value(value: str) -> Callable[[dict[str, Any]], str]:
    def mutate(document: dict[str, Any]) -> str:
        document["metrics"][0]["samples"][1][1] = "__VALUE__"
        return value

    return mutate


@pytest.mark.parametrize(
    ("mutate", "location", "needle"),
    [
        pytest.param(_too_many_labels, "metrics.0.samples.0.0", "at most 32", id="label-count"),
        pytest.param(_long_label_value, "metrics.0.samples.0.0.cpu", "1024", id="label-length"),
        pytest.param(_bad_label_name, "metrics.0.samples.0.0.bad-name", "pattern", id="label-name"),
        pytest.param(_long_metric_name, "metrics.0.name", "at most 200", id="metric-name-length"),
        pytest.param(_bad_metric_name, "metrics.1.name", "pattern", id="metric-name-syntax"),
        pytest.param(_value("NaN"), "metrics.0.samples.1.1", "finite", id="nan"),
        pytest.param(_value("Infinity"), "metrics.0.samples.1.1", "finite", id="inf"),
        pytest.param(_value("-Infinity"), "metrics.0.samples.1.1", "finite", id="minus-inf"),
        pytest.param(_value("1e999"), "metrics.0.samples.1.1", "finite", id="overflow"),
    ],
)
def test_schema_limits_name_the_location(
    client: TestClient,
    tmp_path: Path,
    mutate: Callable[[dict[str, Any]], str | None],
    location: str,
    needle: str,
) -> None:
    document = _document()
    value = mutate(document)
    text = json.dumps(document)
    if value is not None:  # JSON has no NaN or Infinity: write the token by hand
        text = text.replace('"__VALUE__"', value)
    response = push(client, body=gzip.compress(text.encode()))
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_batch"
    problems = {problem["location"]: problem["message"] for problem in error["problems"]}
    assert any(key.startswith(location) for key in problems), problems
    assert location in error["message"]
    assert any(needle in message for message in problems.values()), problems
    assert row_counts(tmp_path / "dcmon.db")["nodes"] == 0


# -- compression bombs ---------------------------------------------------------------------


def _gzip_bomb(inflated_mib: int) -> bytes:
    """A valid gzip stream of ``inflated_mib`` MiB of zeros in about 1/1000 of that, built from
    one full-flushed block repeated (compressing 1 GiB for real takes seconds)."""
    chunk = bytes(1 << 20)
    compressor = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    first = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    block = compressor.compress(chunk) + compressor.flush(zlib.Z_FULL_FLUSH)
    last = compressor.flush()[:-8]  # the final empty block, without the 2-chunk trailer
    crc = 0
    for _ in range(inflated_mib):
        crc = zlib.crc32(chunk, crc)
    trailer = struct.pack("<II", crc, (inflated_mib << 20) & 0xFFFFFFFF)
    return first + block * (inflated_mib - 1) + last + trailer


def test_the_bomb_is_real() -> None:
    bomb = _gzip_bomb(4)
    assert zlib.decompress(bomb, 16 + zlib.MAX_WBITS) == bytes(4 << 20)


def test_a_gzip_bomb_is_refused_without_inflating_past_the_limit() -> None:
    bomb = _gzip_bomb(1024)  # 1 GiB of zeros in about 1 MiB
    assert len(bomb) < 2 << 20
    limit = 1 << 20
    tracemalloc.start()
    try:
        with pytest.raises(WireError) as caught:
            decode_batch(bomb, "gzip", limit)
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert caught.value.code == "body_too_large"
    # The output up to the limit, plus at most a copy of the unread input: never the 1 GiB.
    bound = 2 * limit + 2 * len(bomb)
    assert peak < bound, f"inflating allocated {peak} bytes (limit {limit}, body {len(bomb)})"


def test_a_gzip_bomb_posted_to_the_server_gets_413(client: TestClient, tmp_path: Path) -> None:
    response = push(client, body=_gzip_bomb(1024))
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "body_too_large"
    assert "inflates past" in error["message"]
    assert row_counts(tmp_path / "dcmon.db")["nodes"] == 0
    assert _rejected(client, "body_too_large") == 1
