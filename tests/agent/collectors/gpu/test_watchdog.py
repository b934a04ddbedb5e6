"""The GPU collector's watchdog, cadences and fences, against scripted NVML.

"A call that hangs" is scripted as a step that blocks on a ``threading.Event``: the real
failure (a driver stuck in D state after XID 45/79/119) never returns on its own either.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

import pytest

from agent.collectors.base import Sample
from agent.collectors.gpu import GpuCollector
from agent.collectors.gpu.backend import NvmlTimeout, Utilization
from agent.collectors.gpu.busid import normalise_bus_id
from agent.collectors.gpu.scripted import ScriptedBackend
from tests.fakes.nvml import HOSTNAME, bus_id, healthy_h100_node

NOW = 1_760_000_000.0
LOGGER = "agent.collectors.gpu"  # the collector, its watch and its sampler


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def by_gpu(samples: list[Sample], metric: str) -> dict[str, float]:
    return {s.labels["gpu"]: s.value for s in samples if s.name == metric}


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """Set at teardown so no scripted hang outlives its test."""
    event = threading.Event()
    yield event
    event.set()


def hangs_from(call: int, release: threading.Event, value: object) -> object:
    """A step that answers ``value`` until call ``call``, then blocks until ``release``."""

    def step(count: int) -> object:
        if count >= call:
            release.wait()
        return value

    return step


def test_a_hung_call_stalls_nothing_and_is_reported_after_the_deadline(
    release: threading.Event, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    backend = healthy_h100_node(3)
    backend.devices[1].utilization = hangs_from(2, release, Utilization(10, 5))
    clock = FakeMonotonic()
    collector = GpuCollector(
        backend, HOSTNAME, monotonic=clock, budget_seconds=0.05, call_deadline_seconds=5.0
    )
    first = collector.collect(NOW)
    assert by_gpu(first, "dcmon_gpu_up") == {"0": 1.0, "1": 1.0, "2": 1.0}

    started = time.monotonic()
    second = collector.collect(NOW)  # GPU 1 blocks inside its utilization call
    clock.now += 1
    third = collector.collect(NOW)
    # The tick returned although a driver call never did (the budget is 0.05 s).
    assert time.monotonic() - started < 2.0
    for tick in (second, third):
        assert by_gpu(tick, "dcmon_gpu_up") == {"0": 1.0, "2": 1.0, "1": 1.0}
        assert by_gpu(tick, "DCGM_FI_DEV_GPU_UTIL")["0"] == 0.0

    clock.now += 5  # past the deadline
    hung = collector.collect(NOW)
    assert by_gpu(hung, "dcmon_gpu_up") == {"0": 1.0, "1": 0.0, "2": 1.0}
    assert by_gpu(hung, "dcmon_gpu_driver_unresponsive") == {"0": 0.0, "1": 1.0, "2": 0.0}
    assert "DCGM_FI_DEV_GPU_UTIL" not in {s.name for s in hung if s.labels["gpu"] == "1"}
    calls = backend.call_count("utilization", 1)
    for _ in range(3):
        clock.now += 1
        collector.collect(NOW)
    assert backend.call_count("utilization", 1) == calls, "called a GPU whose call is stuck"
    assert backend.call_count("utilization", 0) > calls
    snapshot = {s.index: s for s in collector.snapshots()}
    assert not snapshot[1].up
    assert snapshot[0].up

    release.set()  # the driver call finally returns
    deadline = time.monotonic() + 5
    while backend.call_count("utilization", 1) == calls and time.monotonic() < deadline:
        collector.collect(NOW)
    recovered = collector.collect(NOW)
    assert by_gpu(recovered, "dcmon_gpu_driver_unresponsive")["1"] == 0.0
    assert by_gpu(recovered, "dcmon_gpu_up")["1"] == 1.0
    messages = [m for m in caplog.messages if "GPU 1" in m]
    assert len(messages) == 2
    assert "has not returned for" in messages[0]
    assert "answered again" in messages[1]


def test_a_hung_start_up_is_reported_and_never_blocks_the_tick(release: threading.Event) -> None:
    backend = ScriptedBackend([], init=lambda _: release.wait())
    clock = FakeMonotonic()
    collector = GpuCollector(
        backend, HOSTNAME, monotonic=clock, budget_seconds=0.02, call_deadline_seconds=5.0
    )
    assert collector.collect(NOW) == []
    clock.now += 6
    assert collector.collect(NOW) == []
    assert collector.inventory().status == "NVML start-up is not responding (driver hung?)"
    release.set()


def test_expensive_readings_run_on_their_cadence_and_are_resent_between() -> None:
    backend = healthy_h100_node(1)
    clock = FakeMonotonic()
    collector = GpuCollector(backend, HOSTNAME, monotonic=clock)
    energies = []
    for _ in range(12):
        energies.append(by_gpu(collector.collect(NOW), "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"))
        clock.now += 1
    assert all(energy == {"0": 2_000_000.0} for energy in energies)
    assert backend.call_count("total_energy_mj", 0) == 3  # at 0, 5 and 10 s
    assert backend.call_count("utilization", 0) == 12


def test_a_failed_expensive_reading_is_not_resent_stale() -> None:
    backend = healthy_h100_node(1)
    backend.devices[0].total_energy_mj = lambda n: 7 if n == 1 else NvmlTimeout("timeout")
    clock = FakeMonotonic()
    collector = GpuCollector(backend, HOSTNAME, monotonic=clock)
    assert by_gpu(collector.collect(NOW), "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION") == {"0": 7.0}
    clock.now += 5
    assert by_gpu(collector.collect(NOW), "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION") == {}


def test_fence_stops_driver_calls_for_a_gpu_until_it_expires() -> None:
    backend = healthy_h100_node(2)
    clock = FakeMonotonic()
    collector = GpuCollector(backend, HOSTNAME, monotonic=clock)
    collector.collect(NOW)
    assert collector.fence("0000:2a:00", 600, "XID 119 (GSP RPC timeout) in the kernel log")
    assert not collector.fence("0000:ff:00", 600, "no such GPU")
    calls = backend.call_count("utilization", 1)
    fenced = collector.collect(NOW)
    assert by_gpu(fenced, "dcmon_gpu_up") == {"0": 1.0, "1": 0.0}
    assert backend.call_count("utilization", 1) == calls
    clock.now += 601
    assert by_gpu(collector.collect(NOW), "dcmon_gpu_up") == {"0": 1.0, "1": 1.0}
    assert backend.call_count("utilization", 1) == calls + 1


def test_fence_by_index() -> None:
    collector = GpuCollector(healthy_h100_node(2), HOSTNAME, monotonic=FakeMonotonic())
    collector.collect(NOW)
    assert collector.fence(0, 60, "test")
    assert by_gpu(collector.collect(NOW), "dcmon_gpu_up") == {"0": 0.0, "1": 1.0}


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ("00000000:2A:00.0", "00000000:2A:00.0"),
        ("0000:2a:00", "00000000:2A:00.0"),
        ("0000:2A:00.1", "00000000:2A:00.1"),
        ("garbage", None),
        ("zz:yy:xx", None),
    ],
)
def test_bus_ids_match_across_nvml_and_kernel_spellings(
    spelling: str, expected: str | None
) -> None:
    assert normalise_bus_id(spelling) == expected
    assert normalise_bus_id(bus_id(1)) == "00000000:2A:00.0"


def test_snapshots_carry_what_job_attribution_needs() -> None:
    backend = healthy_h100_node(2)
    clock = FakeMonotonic()
    collector = GpuCollector(backend, HOSTNAME, monotonic=clock)
    collector.collect(NOW)
    snapshots = {s.index: s for s in collector.snapshots()}
    assert snapshots[1].uuid.endswith("01")
    assert snapshots[1].pci_bus_id == bus_id(1)
    assert snapshots[1].up
    assert snapshots[1].power_w == 101.0
    assert snapshots[1].utilization_percent == 10.0
    assert snapshots[1].energy_mj == 2_000_001
    assert snapshots[1].energy_monotonic == 1000.0
    assert snapshots[1].monotonic == 1000.0
    clock.now += 2
    collector.collect(NOW)
    later = {s.index: s for s in collector.snapshots()}[1]
    assert later.monotonic == 1002.0
    assert later.energy_monotonic == 1000.0  # energy is read every 5 s
