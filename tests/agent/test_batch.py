"""Batch building: families in order, statuses kept, bad samples removed instead of refused."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from agent.batch import BatchBuilder, CollectorResult
from agent.collectors.base import Sample
from agent.wire.codec import WireError, decode_batch, encode_batch
from tests.factories import identity, inventory


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


@dataclasses.dataclass(frozen=True)
class _Event:
    time: float
    source: str
    code: int
    severity: str
    action: str
    kind: str = "xid"
    gpu_index: int | None = 3
    uuid: str | None = "GPU-3"
    pci_bus_id: str | None = "00000000:65:00.0"
    pid: int | None = None
    message: str = "GPU has fallen off the bus"
    mnemonic: str = "GPU_HAS_FALLEN_OFF_THE_BUS"


@dataclasses.dataclass(frozen=True)
class _Usage:
    job_id: str
    scheduler: str
    gpu_index: int
    uuid: str
    since: float
    user: str = "alice"
    step: str = "0"
    pids: list[int] = dataclasses.field(default_factory=lambda: [4242])
    memory_used_bytes: int = 1 << 30
    sm_percent: float | None = 87.0
    gpu_seconds: float = 20.0
    idle_seconds: float = 0.0
    energy_joules: float = 9000.5


def test_events_and_job_usage_travel_and_pass_the_strict_schema() -> None:
    event = _Event(1_800_000_000.0, "kmsg", 79, "critical", "RESTART_BM")
    usage = _Usage("123", "slurm", 3, "GPU-3", 1_799_999_000.0)
    batch = _builder().build(7, 1_800_000_000.0, [], None, events=[event], jobs=[usage])
    decoded = decode_batch(encode_batch(batch), "gzip", 1 << 24)  # the server's strict validation
    assert decoded.events[0].code == 79
    assert decoded.events[0].pci_bus_id == "00000000:65:00.0"
    assert decoded.jobs[0].model_dump() == dataclasses.asdict(usage)


def test_a_bad_job_record_is_refused_by_the_server_schema() -> None:
    usage = _Usage("123", "pbs", 3, "GPU-3", 1_799_999_000.0)  # not a known scheduler
    batch = _builder().build(7, 1_800_000_000.0, [], None, jobs=[usage])
    with pytest.raises(WireError):
        decode_batch(encode_batch(batch), "gzip", 1 << 24)


def test_the_plain_document_is_byte_for_byte_the_models_encoding() -> None:
    """The daemon encodes the plain document; the model of the same batch must encode to the
    same bytes, so the fast path cannot drift from the schema the server validates."""
    event = _Event(1_800_000_000.0, "kmsg", 79, "critical", "RESTART_BM")
    usage = _Usage("123", "slurm", 3, "GPU-3", 1_799_999_000.0)
    results = [
        CollectorResult(
            "cpu",
            [
                Sample("node_cpu_seconds_total", {"cpu": "0", "mode": "idle"}, 1.0),
                Sample("node_cpu_seconds_total", {"cpu": "0", "mode": "user"}, 2),  # an int
                Sample("node_boot_time_seconds", {}, 1.8e9),
                Sample("node_memory_MemTotal_bytes", {}, 1.5e20),
                Sample("node_load1", {}, True),
            ],
            True,
            0.001,
        ),
        CollectorResult("gpu", [], False, -0.5, "NvmlError: " + "x" * 2000),
    ]
    tick = _builder().tick(9, 1_800_000_000.25, results, inventory(), [event], [usage])
    batch = tick.to_batch()
    assert tick.payload() == encode_batch(batch)
    decoded = decode_batch(tick.payload(), "gzip", 1 << 24)
    assert decoded == batch
    assert tick.samples == batch.sample_count() == 5
    assert decoded.metrics[0].samples[1] == ({"cpu": "0", "mode": "user"}, 2.0)
    assert decoded.collectors[1].duration_seconds == 0.0
    assert decoded.collectors[1].error is not None and len(decoded.collectors[1].error) == 1024
    assert decoded.inventory == inventory()
