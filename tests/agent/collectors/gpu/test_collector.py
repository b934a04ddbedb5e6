"""GpuCollector against scripted NVML scenarios named after real failures."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from agent.collectors.base import Sample
from agent.collectors.gpu import (
    GpuCollector,
    GpuInventory,
    NvmlError,
    NvmlGpuLost,
    NvmlTimeout,
    NvmlUnavailable,
    PynvmlBackend,
    SimulatedBackend,
    open_backend,
)
from agent.collectors.gpu.backend import MemoryInfo, Utilization
from agent.collectors.gpu.scripted import ScriptedBackend, sequence
from agent.wire.schema import GpuFacts
from tests.catalog_check import assert_conforms
from tests.fakes.nvml import (
    GLITCH_UTILIZATION,
    HOSTNAME,
    bus_id,
    driver_appears_after,
    driver_missing,
    flaky_energy_counter,
    geforce_without_hbm_sensor,
    gpu_falls_off_the_bus,
    gpu_uuid,
    h100,
    healthy_h100_node,
    utilization_glitch,
)

LOGGER = "agent.collectors.gpu"  # the collector, its watch and its sampler
NOW = 1_760_000_000.0


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(backend: ScriptedBackend, retry: float = 300.0) -> tuple[GpuCollector, FakeMonotonic]:
    clock = FakeMonotonic()
    return GpuCollector(backend, HOSTNAME, init_retry_seconds=retry, monotonic=clock), clock


def values(samples: list[Sample]) -> dict[tuple[str, str], float]:
    """Returns: (metric, gpu index) -> value, for the series with only the GPU's labels."""
    plain = [s for s in samples if len(s.labels) == len(labels(0))]
    table = {(s.name, s.labels["gpu"]): s.value for s in plain}
    assert len(table) == len(plain), "a (metric, gpu) pair was emitted twice"
    return table


def expected_h100(index: int) -> dict[tuple[str, str], float]:
    """What ``tests.fakes.nvml.h100(index)`` must turn into, in catalog units."""
    gpu = str(index)
    return {
        ("dcmon_gpu_up", gpu): 1.0,
        ("dcmon_gpu_driver_unresponsive", gpu): 0.0,
        ("DCGM_FI_DEV_GPU_UTIL", gpu): 10.0 * index,
        ("DCGM_FI_DEV_MEM_COPY_UTIL", gpu): 5.0 * index,
        ("DCGM_FI_DEV_FB_USED", gpu): 1024.0 * index,
        ("DCGM_FI_DEV_FB_FREE", gpu): 81559.0 - 480.0 - 1024.0 * index,
        ("DCGM_FI_DEV_FB_RESERVED", gpu): 480.0,
        ("DCGM_FI_DEV_POWER_USAGE", gpu): 100.0 + index,
        ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", gpu): 2_000_000.0 + index,
        ("DCGM_FI_DEV_GPU_TEMP", gpu): 40.0 + index,
        ("DCGM_FI_DEV_MEMORY_TEMP", gpu): 45.0 + index,
        ("DCGM_FI_DEV_SM_CLOCK", gpu): 885.0,
        ("DCGM_FI_DEV_MEM_CLOCK", gpu): 2619.0,
        ("DCGM_FI_DEV_CLOCKS_EVENT_REASONS", gpu): 1.0,
    }


def expected_node(indices: range | list[int]) -> dict[tuple[str, str], float]:
    table: dict[tuple[str, str], float] = {}
    for index in indices:
        table |= expected_h100(index)
    return table


def labels(index: int) -> dict[str, str]:
    return {
        "gpu": str(index),
        "UUID": gpu_uuid(index),
        "pci_bus_id": bus_id(index),
        "device": f"nvidia{index}",
        "modelName": "NVIDIA H100 80GB HBM3",
        "Hostname": HOSTNAME,
        "DCGM_FI_DRIVER_VERSION": "580.159.04",
    }


def core(samples: list[Sample]) -> dict[tuple[str, str], float]:
    """Returns: the readings ``expected_h100`` covers (the table also has the newer ones)."""
    return core_of(values(samples))


def core_of(table: dict[tuple[str, str], float]) -> dict[tuple[str, str], float]:
    covered = {name for name, _ in expected_h100(0)}
    return {key: value for key, value in table.items() if key[0] in covered}


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


# Healthy node


def test_healthy_h100_node_reports_every_metric_in_dcgm_units_and_labels() -> None:
    collector, _ = make(healthy_h100_node())
    samples = collector.collect(NOW)
    assert_conforms(samples, source="gpu")
    assert core(samples) == expected_node(range(8))
    for sample in samples:
        own = labels(int(sample.labels["gpu"]))
        assert {name: sample.labels[name] for name in own} == own
        assert set(sample.labels) - set(own) <= {"reason", "link", "GPU_I_ID", "GPU_I_PROFILE"}
    assert collector.name == "gpu"


def test_inventory_has_static_facts_read_once() -> None:
    backend = healthy_h100_node()
    collector, clock = make(backend)
    for _ in range(3):
        collector.collect(NOW)
        clock.now += 5  # the energy counter's cadence
    inventory = collector.inventory()
    inventory = GpuInventory(
        inventory.driver_version,
        tuple(facts.model_copy(update={"unsupported": []}) for facts in inventory.gpus),
        inventory.status,
    )
    assert inventory == GpuInventory(
        driver_version="580.159.04",
        gpus=tuple(
            GpuFacts(
                index=index,
                uuid=gpu_uuid(index),
                model="NVIDIA H100 80GB HBM3",
                pci_bus_id=bus_id(index),
                serial=f"16509230{index:05d}",
                vbios_version="96.00.99.00.01",
                memory_total_bytes=85_520_809_984,
            )
            for index in range(8)
        ),
        status="",
    )
    for index in range(8):
        for call in ("uuid", "name", "pci_bus_id", "minor_number", "serial", "vbios_version"):
            assert backend.call_count(call, index) == 1, call
        assert backend.call_count("memory_info", index) == 1 + 3  # identity, then each tick
        assert backend.call_count("total_energy_mj", index) == 3
    assert backend.call_count("init") == 1


def test_inventory_before_any_collection_starts_nvml() -> None:
    backend = healthy_h100_node(2)
    collector, _ = make(backend)
    assert collector.inventory().gpus == ()
    assert backend.initialized
    collector.collect(NOW)  # identity and the capability probe run on the GPUs' workers
    assert [facts.uuid for facts in collector.inventory().gpus] == [gpu_uuid(0), gpu_uuid(1)]


def test_node_with_no_gpus_says_so() -> None:
    collector, _ = make(ScriptedBackend([]))
    assert collector.collect(NOW) == []
    assert collector.inventory() == GpuInventory("580.159.04", (), "NVML reports no NVIDIA GPU")


# Driver missing


def test_driver_missing_warns_once_sends_nothing_and_retries_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)
    backend = driver_missing()
    collector, clock = make(backend, retry=300.0)
    for _ in range(5):
        assert collector.collect(NOW) == []
        clock.now += 10
    assert backend.call_count("init") == 1, "retried before init_retry_seconds passed"
    inventory = collector.inventory()
    assert inventory == GpuInventory(None, (), "no NVIDIA driver: NVML library not found")
    clock.now += 300
    assert collector.collect(NOW) == []
    assert backend.call_count("init") == 2
    assert warnings(caplog) == [
        "GPU metrics off: no NVIDIA driver: NVML library not found. Hint: install the NVIDIA "
        "driver so that libnvidia-ml.so.1 is on the loader path. Retrying every 300 s; host "
        "metrics are unaffected."
    ]


def test_driver_appearing_later_starts_collection(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    backend = driver_appears_after(failed_inits=2)
    collector, clock = make(backend, retry=60.0)
    assert collector.collect(NOW) == []  # init 1 fails
    clock.now += 59
    assert collector.collect(NOW) == []  # too early to retry
    clock.now += 1
    assert collector.collect(NOW) == []  # init 2 fails
    clock.now += 60
    samples = collector.collect(NOW)  # init 3 works
    assert core(samples) == expected_node(range(2))
    assert backend.call_count("init") == 3
    assert collector.inventory().status == ""
    assert len(warnings(caplog)) == 1
    assert "NVML started: driver 580.159.04, 2 GPU(s)" in caplog.messages


def test_nvml_failing_under_a_running_session_stops_then_restarts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    backend = healthy_h100_node(2)
    gone = NvmlUnavailable("NVML stopped working (nvmlDeviceGetUtilizationRates: Uninitialized)")
    backend.devices[1].utilization = sequence(Utilization(10, 5), gone, Utilization(10, 5))
    collector, clock = make(backend, retry=30.0)
    assert core(collector.collect(NOW)) == expected_node(range(2))
    assert collector.collect(NOW) == []
    assert not backend.initialized
    assert collector.inventory().status.startswith("NVML stopped working")
    clock.now += 30
    assert core(collector.collect(NOW)) == expected_node(range(2))
    assert backend.call_count("init") == 2
    assert len(warnings(caplog)) == 1


# GPU lost


def test_gpu_falling_off_the_bus_reports_up_zero_while_others_keep_reporting(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    collector, _ = make(gpu_falls_off_the_bus(lost=3, from_tick=3, until_tick=5))
    healthy = expected_node(range(8))
    lost = expected_node([0, 1, 2, 4, 5, 6, 7]) | {
        ("dcmon_gpu_up", "3"): 0.0,
        ("dcmon_gpu_driver_unresponsive", "3"): 0.0,
    }
    ticks = [collector.collect(NOW) for _ in range(6)]
    assert [core(tick) for tick in ticks] == [healthy, healthy, lost, lost, healthy, healthy]
    up_samples = [s for s in ticks[2] if s.labels["gpu"] == "3"]
    assert up_samples == [
        Sample("dcmon_gpu_up", labels(3), 0.0),
        Sample("dcmon_gpu_driver_unresponsive", labels(3), 0.0),
    ]
    for tick in ticks:
        assert_conforms(tick, source="gpu")
    lost_lines = [m for m in warnings(caplog) if "GPU 3" in m]
    assert lost_lines == [
        f"GPU 3 ({gpu_uuid(3)}) is not answering: nvmlDeviceGetUtilizationRates: GPU is lost; "
        "reporting dcmon_gpu_up=0 until it does"
    ]
    assert f"GPU 3 ({gpu_uuid(3)}) answers again" in caplog.messages


def test_gpu_lost_mid_tick_drops_that_gpus_partial_readings() -> None:
    backend = healthy_h100_node(2)
    backend.devices[0].temperature_c = NvmlGpuLost("GPU is lost", code=15)
    collector, _ = make(backend)
    assert core(collector.collect(NOW)) == expected_h100(1) | {
        ("dcmon_gpu_up", "0"): 0.0,
        ("dcmon_gpu_driver_unresponsive", "0"): 0.0,
    }
    assert backend.call_count("memory_temperature_c", 0) == 0, "kept reading a lost GPU"


def test_gpu_lost_at_start_is_counted_and_identified_when_it_returns() -> None:
    backend = healthy_h100_node(3)
    backend.fail_device(2, NvmlGpuLost("GPU is lost", code=15))
    collector, _ = make(backend)
    samples = collector.collect(NOW)
    assert_conforms(samples, source="gpu")
    assert core(samples) == expected_node(range(2)) | {
        ("dcmon_gpu_up", "2"): 0.0,
        ("dcmon_gpu_driver_unresponsive", "2"): 0.0,
    }
    unknown = {"gpu": "2", "UUID": "", "pci_bus_id": "", "device": "", "modelName": ""}
    unknown |= {"Hostname": HOSTNAME, "DCGM_FI_DRIVER_VERSION": "580.159.04"}
    assert samples[-2:] == [
        Sample("dcmon_gpu_up", unknown, 0.0),
        Sample("dcmon_gpu_driver_unresponsive", unknown, 0.0),
    ]
    assert [facts.index for facts in collector.inventory().gpus] == [0, 1]
    backend.fail_device(2, None)
    assert core(collector.collect(NOW)) == expected_node(range(3))
    assert [facts.index for facts in collector.inventory().gpus] == [0, 1, 2]


# Unsupported readings


def test_unsupported_memory_temperature_is_absent_and_never_asked_again() -> None:
    backend = geforce_without_hbm_sensor()
    collector, _ = make(backend)
    ticks = [collector.collect(NOW) for _ in range(5)]
    for tick in ticks:
        assert_conforms(tick, source="gpu")
        names = {sample.name for sample in tick}
        assert "DCGM_FI_DEV_MEMORY_TEMP" not in names
        assert {"DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_POWER_USAGE", "dcmon_gpu_up"} <= names
    for index in range(2):
        assert backend.call_count("memory_temperature_c", index) == 1
        assert backend.call_count("temperature_c", index) == 5
    unsupported = collector.unsupported_readings()
    assert all("memory_temperature" in unsupported[index] for index in range(2))
    assert all("temperature" not in unsupported[index] for index in range(2))
    facts = collector.inventory().gpus
    assert [f.serial for f in facts] == [None, None]
    assert [f.model for f in facts] == ["NVIDIA GeForce RTX 4090"] * 2
    assert values(ticks[0])[("DCGM_FI_DEV_POWER_USAGE", "1")] == 30.0


def test_reserved_memory_absent_when_only_the_v1_call_exists() -> None:
    total, used = 85_520_809_984, 503_316_480 + (3 << 30)
    backend = ScriptedBackend([h100(0, memory_info=MemoryInfo(total, used, total - used, None))])
    collector, _ = make(backend)
    table = values(collector.collect(NOW))
    assert ("DCGM_FI_DEV_FB_RESERVED", "0") not in table
    assert table[("DCGM_FI_DEV_FB_USED", "0")] == 480.0 + 3072.0
    assert table[("DCGM_FI_DEV_FB_FREE", "0")] == 81559.0 - 480.0 - 3072.0


def test_fractional_mebibytes_are_kept() -> None:
    total = 85_520_809_984
    used = (1 << 20) + (1 << 19)  # 1.5 MiB
    memory = MemoryInfo(total, used, total - 503_316_480 - used, 503_316_480)
    collector, _ = make(ScriptedBackend([h100(0, memory_info=memory)]))
    table = values(collector.collect(NOW))
    assert table[("DCGM_FI_DEV_FB_USED", "0")] == 1.5
    assert table[("DCGM_FI_DEV_FB_FREE", "0")] == 81559.0 - 480.0 - 1.5


# Glitches and errors


def test_utilization_glitch_is_dropped_not_sent() -> None:
    collector, _ = make(utilization_glitch())
    samples = collector.collect(NOW)
    assert_conforms(samples, source="gpu")
    table = values(samples)
    assert ("DCGM_FI_DEV_GPU_UTIL", "1") not in table
    assert table[("DCGM_FI_DEV_MEM_COPY_UTIL", "1")] == 7.0
    assert table[("DCGM_FI_DEV_GPU_UTIL", "0")] == 0.0  # a real 0 % is kept
    assert GLITCH_UTILIZATION not in table.values()


@pytest.mark.parametrize(
    ("temperature", "memory_temperature", "expected"),
    [
        (255, 46, {"DCGM_FI_DEV_MEMORY_TEMP": 46.0}),
        (43, 0, {"DCGM_FI_DEV_GPU_TEMP": 43.0}),
        (200, 4_294_967_295, {"DCGM_FI_DEV_GPU_TEMP": 200.0}),
        (0, 201, {"DCGM_FI_DEV_GPU_TEMP": 0.0}),
    ],
)
def test_impossible_temperatures_are_dropped(
    temperature: int, memory_temperature: int, expected: dict[str, float]
) -> None:
    backend = ScriptedBackend(
        [h100(0, temperature_c=temperature, memory_temperature_c=memory_temperature)]
    )
    collector, _ = make(backend)
    table = values(collector.collect(NOW))
    live = ("DCGM_FI_DEV_GPU_TEMP", "DCGM_FI_DEV_MEMORY_TEMP")  # not the thresholds
    temps = {name: value for (name, _), value in table.items() if name in live}
    assert temps == expected


def test_failing_reading_is_logged_once_per_error_not_every_tick(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    unknown = NvmlError("nvmlDeviceGetTotalEnergyConsumption: Unknown Error", code=999)
    timeout = NvmlTimeout("nvmlDeviceGetTotalEnergyConsumption: Timeout", code=10)
    backend = flaky_energy_counter(sequence(unknown, unknown, unknown, timeout, timeout, 5_000))
    collector, clock = make(backend)
    ticks = []
    for _ in range(7):
        ticks.append(values(collector.collect(NOW)))
        clock.now += 5  # the energy counter's cadence
    energy = [tick.get(("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "0")) for tick in ticks]
    assert energy == [None, None, None, None, None, 5000.0, 5000.0]
    without_energy = {
        key: value
        for key, value in expected_h100(0).items()
        if key[0] != "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
    }
    for tick in ticks[:5]:
        assert core_of(tick) == without_energy | expected_h100(1)
    assert backend.call_count("total_energy_mj", 0) == 7, "a failing reading must be retried"
    assert warnings(caplog) == [
        "GPU 0: total_energy failed, skipped until it recovers: NvmlError: "
        "nvmlDeviceGetTotalEnergyConsumption: Unknown Error",
        "GPU 0: total_energy failed, skipped until it recovers: NvmlTimeout: "
        "nvmlDeviceGetTotalEnergyConsumption: Timeout",
    ]
    assert caplog.messages.count("GPU 0: total_energy is readable again") == 1


def test_error_recurring_after_recovery_is_logged_again(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    unknown = NvmlError("Unknown Error", code=999)
    backend = flaky_energy_counter(sequence(unknown, 1, unknown))
    collector, clock = make(backend)
    for _ in range(4):
        collector.collect(NOW)
        clock.now += 5
    assert len(warnings(caplog)) == 2


# Lifecycle and factory


def test_close_shuts_nvml_down_and_stays_idle() -> None:
    backend = healthy_h100_node(1)
    collector, clock = make(backend)
    collector.collect(NOW)
    collector.close()
    assert not backend.initialized
    assert backend.call_count("shutdown") == 1
    clock.now += 10_000
    assert collector.collect(NOW) == []
    assert backend.call_count("init") == 1
    collector.close()
    assert backend.call_count("shutdown") == 1


def test_open_backend_builds_each_kind_without_touching_the_driver() -> None:
    simulated = open_backend("simulated", simulated_count=3, seed=7)
    assert isinstance(simulated, SimulatedBackend)
    assert len(simulated.devices) == 3
    assert isinstance(open_backend("nvml"), PynvmlBackend)
    with pytest.raises(ValueError, match="unknown simulated GPU model"):
        open_backend("simulated", simulated_model="NVIDIA Imaginary 9000")
    with pytest.raises(ValueError, match="unknown GPU backend"):
        open_backend("cuda")  # type: ignore[arg-type]


SCENARIOS: dict[str, Callable[[], ScriptedBackend]] = {
    "healthy_h100_node": healthy_h100_node,
    "driver_missing": driver_missing,
    "driver_appears_after": lambda: driver_appears_after(1),
    "gpu_falls_off_the_bus": lambda: gpu_falls_off_the_bus(lost=0, from_tick=2, until_tick=3),
    "geforce_without_hbm_sensor": geforce_without_hbm_sensor,
    "utilization_glitch": utilization_glitch,
    "flaky_energy_counter": lambda: flaky_energy_counter(NvmlError("Unknown Error", code=999)),
    "simulated": lambda: SimulatedBackend(8, clock=lambda: NOW, seed=3),
}


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_every_scenario_conforms_to_the_catalog(scenario: str) -> None:
    collector, clock = make(SCENARIOS[scenario](), retry=1.0)
    for _ in range(4):
        assert_conforms(collector.collect(NOW), source="gpu")
        clock.now += 1
