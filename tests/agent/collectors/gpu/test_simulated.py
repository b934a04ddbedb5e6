"""The simulated backend: deterministic, physically plausible, and usable by the collector."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from agent.collectors.gpu import GpuCollector, NvmlGpuLost
from agent.collectors.gpu.backend import Clock, ClocksEventReason, Utilization
from agent.collectors.gpu.simulated import (
    A100_SXM_80GB,
    H100_SXM,
    PROBE_MEDIAN_US,
    STATE_REUSE_S,
    GpuSpec,
    SimulatedBackend,
    SimulatedGpu,
)
from agent.wire.catalog import default_catalog
from tests.catalog_check import assert_conforms

GPU_METRICS = default_catalog().from_source("gpu")

T0 = 1_760_000_000.0


class Wall:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def simulated(
    count: int = 8,
    seed: int = 0,
    model: str | None = None,
    call_latency: bool = False,
    sleep: Callable[[float], None] | None = None,
) -> tuple[SimulatedBackend, Wall]:
    wall = Wall()
    backend = SimulatedBackend(
        count,
        seed=seed,
        model=model,
        clock=wall,
        boot_time_s=T0 - 3600,
        call_latency=call_latency,
        **({} if sleep is None else {"sleep": sleep}),
    )
    backend.init()
    return backend, wall


def snapshot(backend: SimulatedBackend, index: int) -> tuple[object, ...]:
    return (
        backend.uuid(index),
        backend.pci_bus_id(index),
        backend.serial(index),
        backend.utilization(index),
        backend.memory_info(index),
        backend.power_usage_mw(index),
        backend.total_energy_mj(index),
        backend.temperature_c(index),
        backend.memory_temperature_c(index),
        backend.clock_mhz(index, Clock.SM),
        backend.clock_mhz(index, Clock.MEM),
        backend.clocks_event_reasons(index),
    )


def test_same_seed_and_time_give_the_same_readings() -> None:
    first, first_wall = simulated(seed=42)
    second, second_wall = simulated(seed=42)
    other, other_wall = simulated(seed=43)
    differs = False
    for offset in (0.0, 17.5, 600.0, 7_200.0, 86_400.0):
        first_wall.now = second_wall.now = other_wall.now = T0 + offset
        for index in range(8):
            assert snapshot(first, index) == snapshot(second, index)
            differs |= snapshot(first, index)[3:] != snapshot(other, index)[3:]
    assert differs, "a different seed should give a different workload"


def test_identities_are_stable_unique_and_well_formed() -> None:
    backend, _ = simulated(count=16)
    uuids = [backend.uuid(index) for index in range(16)]
    buses = [backend.pci_bus_id(index) for index in range(16)]
    assert len(set(uuids)) == len(set(buses)) == 16
    for value in uuids:
        assert value.startswith("GPU-")
        uuid.UUID(value.removeprefix("GPU-"))
    assert buses[:2] == ["00000000:18:00.0", "00000000:2A:00.0"]
    assert buses[8] == "00000001:18:00.0"
    assert [backend.minor_number(index) for index in range(3)] == [0, 1, 2]
    again, _ = simulated(count=16)
    assert [again.uuid(index) for index in range(16)] == uuids


def test_energy_is_monotonic_and_integrates_power() -> None:
    backend, wall = simulated(count=8, seed=5)
    for index in range(8):
        previous = -1
        wall.now = T0
        while wall.now < T0 + 4 * 3600:
            energy = backend.total_energy_mj(index)
            assert energy >= previous, f"GPU {index}: energy went down at {wall.now}"
            previous = energy
            wall.now += 7.3
    for index in range(8):
        wall.now = T0 + 1234.5
        start = backend.total_energy_mj(index)
        powers = []
        for _ in range(600):
            powers.append(backend.power_usage_mw(index))
            wall.now += 0.1
        joules = (backend.total_energy_mj(index) - start) / 1000
        mean_power_w = sum(powers) / len(powers) / 1000
        assert joules == pytest.approx(mean_power_w * 60, rel=0.02)


def test_energy_counts_from_the_simulated_driver_load() -> None:
    wall = Wall(T0)
    backend = SimulatedBackend(1, clock=wall, boot_time_s=T0)
    backend.init()
    assert backend.total_energy_mj(0) == 0
    wall.now = T0 - 100
    assert backend.total_energy_mj(0) == 0
    wall.now = T0 + 10
    assert 700 < backend.total_energy_mj(0) <= 7_000_000  # 10 s between 70 W and 700 W


@pytest.mark.parametrize("spec", [H100_SXM, A100_SXM_80GB], ids=lambda spec: spec.name)
def test_readings_stay_in_range_and_agree_with_each_other(spec: GpuSpec) -> None:
    backend, wall = simulated(count=8, seed=9, model=spec.name)
    idle_seen = busy_seen = capped_seen = False
    idle_temps, busy_temps = [], []
    limit = spec.power_limit_mw
    for step in range(0, 6 * 3600, 97):
        wall.now = T0 + step
        for index in range(8):
            rates = backend.utilization(index)
            memory = backend.memory_info(index)
            power = backend.power_usage_mw(index)
            temperature = backend.temperature_c(index)
            memory_temperature = backend.memory_temperature_c(index)
            sm_clock = backend.clock_mhz(index, Clock.SM)
            reasons = ClocksEventReason(backend.clocks_event_reasons(index))
            assert 0 <= rates.gpu_percent <= 100 and 0 <= rates.memory_percent <= 100
            assert memory.reserved_bytes is not None
            assert memory.used_bytes + memory.free_bytes + memory.reserved_bytes == (
                memory.total_bytes
            )
            assert 0 < power <= limit
            assert 25 <= temperature <= 90 and 25 <= memory_temperature <= 95
            assert 0 < sm_clock <= backend.max_clock_mhz(index, Clock.SM)
            assert backend.clock_mhz(index, Clock.MEM) == backend.max_clock_mhz(index, Clock.MEM)
            if ClocksEventReason.GPU_IDLE in reasons:
                idle_seen = True
                assert rates == Utilization(0, 0)
                assert memory.used_bytes == 0
                low, high = spec.idle_power_w
                assert low - 1.5 <= power / 1000 <= high + 1.5
                assert sm_clock == spec.idle_sm_clock_mhz
                idle_temps.append(temperature)
            else:
                busy_seen = True
                assert rates.gpu_percent > 0 and memory.used_bytes > 0
                busy_temps.append(temperature)
            if ClocksEventReason.SW_POWER_CAP in reasons:
                capped_seen = True
                assert power >= 0.95 * limit
                assert sm_clock < backend.max_clock_mhz(index, Clock.SM)
    assert idle_seen and busy_seen and capped_seen
    assert sum(busy_temps) / len(busy_temps) > sum(idle_temps) / len(idle_temps) + 10


def test_collector_over_a_simulated_node_reports_everything() -> None:
    wall = Wall()
    # The simulated wall clock also paces the readings' periods (energy every 5 s).
    collector = GpuCollector(SimulatedBackend(8, clock=wall, seed=1), "sim-node", monotonic=wall)
    first = collector.collect(wall.now)
    wall.now += 10
    second = collector.collect(wall.now)
    # What a simulated DGX H100 does not have: pre-Ampere retired pages, the 20 ms PCIe sample
    # (GPM gives PCIe rates), vGPU licensing, MIG instances.
    absent = {
        "DCGM_FI_DEV_RETIRED_SBE",
        "DCGM_FI_DEV_RETIRED_DBE",
        "DCGM_FI_DEV_RETIRED_PENDING",
        "dcmon_gpu_pcie_tx_bytes_per_second",
        "dcmon_gpu_pcie_rx_bytes_per_second",
        "DCGM_FI_DEV_VGPU_LICENSE_STATUS",
    } | {spec.name for spec in GPU_METRICS if "GPU_I_ID" in spec.labels}
    gpm = {spec.name for spec in GPU_METRICS if spec.name.startswith("DCGM_FI_PROF_")}
    expected = {spec.name for spec in GPU_METRICS} - absent
    for samples, missing in ((first, gpm), (second, set())):  # GPM needs two samples
        assert_conforms(samples, source="gpu")
        for gpu in map(str, range(8)):
            names = {s.name for s in samples if s.labels["gpu"] == gpu}
            assert names == expected - missing, f"GPU {gpu}: {sorted(names ^ (expected - missing))}"
        links = {s.labels["link"] for s in samples if s.name == "dcmon_gpu_nvlink_up"}
        assert links == {str(link) for link in range(18)}
    energy = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
    before = {s.labels["gpu"]: s.value for s in first if s.name == energy}
    after = {s.labels["gpu"]: s.value for s in second if s.name == energy}
    assert all(after[gpu] > before[gpu] for gpu in before)
    assert collector.inventory().gpus[0].model == "NVIDIA H100 80GB HBM3"


def test_simulated_faults_can_be_injected() -> None:
    backend, _ = simulated(count=2)
    collector = GpuCollector(backend, "sim-node")
    backend.fail_device(1, NvmlGpuLost("GPU is lost", code=15))
    up = {s.labels["gpu"]: s.value for s in collector.collect(T0) if s.name == "dcmon_gpu_up"}
    assert up == {"0": 1.0, "1": 0.0}


def test_call_latency_mode_waits_each_calls_probed_median() -> None:
    waits: list[float] = []
    backend, _ = simulated(count=1, call_latency=True, sleep=waits.append)
    assert waits == []  # init was not measured, so it takes no time
    backend.total_energy_mj(0)
    backend.power_usage_mw(0)
    backend.clock_mhz(0, Clock.SM)
    backend.minor_number(0)  # not measured: no wait
    assert waits == pytest.approx([3050.054e-6, 1.99e-6, 1.9325e-6])
    assert set(PROBE_MEDIAN_US) <= {
        "field_values",
        "remapped_rows",
        "pcie_link",
        "pcie_replay_count",
        "pcie_throughput_kib_per_s:tx",
        "pcie_throughput_kib_per_s:rx",
        "mig_mode",
        "persistence_mode",
        "running_processes",
        "name",
        "uuid",
        "serial",
        "pci_bus_id",
        "utilization",
        "memory_info",
        "power_usage_mw",
        "enforced_power_limit_mw",
        "total_energy_mj",
        "temperature_c",
        "memory_temperature_c",
        "clock_mhz:sm",
        "clock_mhz:mem",
        "max_clock_mhz:sm",
        "clocks_event_reasons",
    }


def test_latency_mode_really_takes_time_by_default() -> None:
    backend, _ = simulated(count=1, call_latency=True)
    started = time.perf_counter()
    for _ in range(5):
        backend.total_energy_mj(0)
    assert time.perf_counter() - started >= 5 * 3050e-6


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(ValueError, match="count"):
        SimulatedBackend(-1)
    with pytest.raises(ValueError, match="known: NVIDIA A100-SXM4-80GB, NVIDIA H100 80GB HBM3"):
        SimulatedBackend(1, model="H100")


def test_one_reads_calls_share_one_state_and_later_reads_get_a_fresh_one() -> None:
    """The calls of one read come microseconds apart and share the state computed first
    (the simulation's arithmetic is not NVML's cost); a later read computes its own."""
    t0 = 1_800_000_000.0
    shared = SimulatedGpu(H100_SXM, 0, 0, t0 - 3600)
    first = shared.state(t0)
    assert shared.state(t0 + STATE_REUSE_S / 2) is first
    # Find a later time at which the readings differ, and check it is computed afresh.
    fresh = SimulatedGpu(H100_SXM, 0, 0, t0 - 3600)
    later = next(t0 + k for k in range(1, 600) if fresh.state(t0 + k) != first)
    assert shared.state(later) == SimulatedGpu(H100_SXM, 0, 0, t0 - 3600).state(later)
    assert shared.state(later) != first
    assert shared.state(t0) == first  # going back in time is never served from the reuse
