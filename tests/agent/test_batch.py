"""Batch building: families in order, statuses kept, bad samples removed instead of refused."""

from __future__ import annotations

import logging

import pytest

from agent.batch import BatchBuilder, CollectorResult
from agent.collectors.base import Sample
from agent.wire.codec import decode_batch, encode_batch
from tests.factories import identity


def _builder() -> BatchBuilder:
    return BatchBuilder(identity(), interval_seconds=10.0)


def test_samples_are_grouped_by_family_in_collection_order() -> None:
    results = [
        CollectorResult(
            "cpu",
            [
                Sample("node_cpu_seconds_total", {"cpu": "0", "mode": "idle"}, 1.0),
                Sample("node_load1", {}, 0.5),
                Sample("node_cpu_seconds_total", {"cpu": "0", "mode": "user"}, 2.0),
            ],
            True,
            0.001,
        ),
        CollectorResult("gpu", [], False, 0.2, "NvmlError: boom"),
    ]
    batch = _builder().build(7, 1_800_000_000.0, results, None)
    assert [family.name for family in batch.metrics] == ["node_cpu_seconds_total", "node_load1"]
    assert len(batch.metrics[0].samples) == 2
    assert [(c.name, c.success, c.error) for c in batch.collectors] == [
        ("cpu", True, None),
        ("gpu", False, "NvmlError: boom"),
    ]
    assert (batch.seq, batch.timestamp, batch.interval_seconds) == (7, 1_800_000_000.0, 10.0)
    # What the agent builds without validation is exactly what the server accepts.
    assert decode_batch(encode_batch(batch), "gzip", 1 << 20) == batch


def test_non_finite_values_are_dropped(caplog: pytest.LogCaptureFixture) -> None:
    samples = [
        Sample("node_load1", {}, float("nan")),
        Sample("node_load5", {}, float("inf")),
        Sample("node_load15", {}, 1.0),
    ]
    with caplog.at_level(logging.WARNING):
        batch = _builder().build(1, 1.0, [CollectorResult("loadavg", samples, True, 0.0)], None)
    assert [family.name for family in batch.metrics] == ["node_load15"]
    assert "non-finite" in caplog.text


@pytest.mark.parametrize(
    "second",
    [{"cpu": "0", "mode": "idle"}, {"mode": "idle", "cpu": "0"}],
    ids=["same-order", "other-order"],
)
def test_a_series_emitted_twice_is_kept_once(second: dict[str, str]) -> None:
    samples = [
        Sample("node_cpu_seconds_total", {"cpu": "0", "mode": "idle"}, 1.0),
        Sample("node_cpu_seconds_total", {"cpu": "0", "mode": "user"}, 2.0),
        Sample("node_cpu_seconds_total", second, 3.0),
    ]
    batch = _builder().build(1, 1.0, [CollectorResult("cpu", samples, True, 0.0)], None)
    assert batch.metrics[0].samples == [
        ({"cpu": "0", "mode": "idle"}, 1.0),
        ({"cpu": "0", "mode": "user"}, 2.0),
    ]
