"""Temperature thresholds: static facts read once per NVML session and sent every tick.

Covers the collector over the scripted twin (read once, emitted each tick with the GPU's own
labels, NotSupported gives no series and no second call, a passing failure is retried, a lost
GPU re-reads them), the real backend's pynvml mapping over the fake module, and the simulated
node the demo runs on.
"""

from __future__ import annotations

import pytest

from agent.collectors.base import Sample
from agent.collectors.gpu import GpuCollector, NvmlError
from agent.collectors.gpu.backend import (
    NvmlFunctionNotFound,
    NvmlGpuLost,
    NvmlNotSupported,
    TemperatureThreshold,
)
from agent.collectors.gpu.faults import demo_plan
from agent.collectors.gpu.nvml_backend import PynvmlBackend
from agent.collectors.gpu.readings import STATIC_RETRY_SECONDS
from agent.collectors.gpu.scripted import ScriptedBackend, Step, sequence
from agent.collectors.gpu.simulated import SimulatedBackend
from tests.catalog_check import assert_conforms
from tests.fakes.nvml import HOSTNAME, FakeGpu, FakeNvmlLibrary, h100

THRESHOLDS = {
    TemperatureThreshold.SLOWDOWN: "DCGM_FI_DEV_SLOWDOWN_TEMP",
    TemperatureThreshold.SHUTDOWN: "DCGM_FI_DEV_SHUTDOWN_TEMP",
    TemperatureThreshold.GPU_MAX: "DCGM_FI_DEV_GPU_MAX_OP_TEMP",
    TemperatureThreshold.MEM_MAX: "DCGM_FI_DEV_MEM_MAX_OP_TEMP",
}
SCRIPTED = {
    TemperatureThreshold.SLOWDOWN: 88,
    TemperatureThreshold.SHUTDOWN: 93,
    TemperatureThreshold.GPU_MAX: 86,
    TemperatureThreshold.MEM_MAX: 94,
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(backend: ScriptedBackend) -> tuple[GpuCollector, Clock]:
    clock = Clock()
    return GpuCollector(backend, HOSTNAME, monotonic=clock), clock


def calls(backend: ScriptedBackend, which: TemperatureThreshold, index: int = 0) -> int:
    return backend.call_count(f"temperature_threshold_c:{which.name.lower()}", index)


def by_name(samples: list[Sample], gpu: str = "0") -> dict[str, Sample]:
    return {s.name: s for s in samples if s.labels.get("gpu") == gpu and len(s.labels) == 7}


def test_thresholds_are_read_once_and_sent_every_tick() -> None:
    backend = ScriptedBackend([h100(0, temperature_thresholds_c=dict(SCRIPTED)), h100(1)])
    collector, clock = make(backend)
    try:
        for tick in range(12):  # two minutes of 10 s ticks: past every periodic reading
            samples = collector.collect(0.0)
            assert_conforms(samples, source="gpu")
            for gpu in ("0", "1"):
                series = by_name(samples, gpu)
                for metric in THRESHOLDS.values():
                    assert metric in series, f"tick {tick}: GPU {gpu} lacks {metric}"
                    # the GPU's own labels, exactly those of its temperature
                    assert series[metric].labels == series["DCGM_FI_DEV_GPU_TEMP"].labels
            clock.now += 10.0
        gpu0 = by_name(samples, "0")
        assert {m: gpu0[m].value for m in THRESHOLDS.values()} == {
            THRESHOLDS[which]: float(value) for which, value in SCRIPTED.items()
        }
        assert by_name(samples, "1")["DCGM_FI_DEV_SLOWDOWN_TEMP"].value == 89.0  # model H100
        for which in THRESHOLDS:
            assert calls(backend, which, 0) == 1, which
            assert calls(backend, which, 1) == 1, which
    finally:
        collector.close()


def test_a_threshold_the_gpu_does_not_report_has_no_series_and_is_not_asked_again() -> None:
    only_slowdown = {TemperatureThreshold.SLOWDOWN: 90}
    backend = ScriptedBackend([h100(0, temperature_thresholds_c=only_slowdown)])
    collector, clock = make(backend)
    try:
        for _ in range(10):
            series = by_name(collector.collect(0.0))
            assert series["DCGM_FI_DEV_SLOWDOWN_TEMP"].value == 90.0
            for which in (
                TemperatureThreshold.SHUTDOWN,
                TemperatureThreshold.GPU_MAX,
                TemperatureThreshold.MEM_MAX,
            ):
                assert THRESHOLDS[which] not in series
            clock.now += 30.0
        for which in THRESHOLDS:
            assert calls(backend, which) == 1, which
        unsupported = collector.unsupported_readings()[0]
        assert {
            "shutdown_temperature_threshold",
            "gpu_max_temperature_threshold",
            "mem_max_temperature_threshold",
        } <= unsupported
        assert "slowdown_temperature_threshold" not in unsupported
    finally:
        collector.close()


def test_a_passing_failure_is_retried_after_a_minute_then_read_no_more() -> None:
    flaky: dict[TemperatureThreshold, Step[int]] = dict(SCRIPTED)
    flaky[TemperatureThreshold.SLOWDOWN] = sequence(NvmlError("Unknown Error", code=999), 88)
    backend = ScriptedBackend([h100(0, temperature_thresholds_c=flaky)])
    collector, clock = make(backend)
    slowdown = TemperatureThreshold.SLOWDOWN
    try:
        assert "DCGM_FI_DEV_SLOWDOWN_TEMP" not in by_name(collector.collect(0.0))
        clock.now += STATIC_RETRY_SECONDS - 10.0
        assert "DCGM_FI_DEV_SLOWDOWN_TEMP" not in by_name(collector.collect(0.0))
        assert calls(backend, slowdown) == 1  # not asked every tick while it fails
        clock.now += 10.0
        assert by_name(collector.collect(0.0))["DCGM_FI_DEV_SLOWDOWN_TEMP"].value == 88.0
        for _ in range(10):
            clock.now += 60.0
            assert by_name(collector.collect(0.0))["DCGM_FI_DEV_SLOWDOWN_TEMP"].value == 88.0
        assert calls(backend, slowdown) == 2
        assert "slowdown_temperature_threshold" not in collector.unsupported_readings()[0]
    finally:
        collector.close()


def test_a_gpu_that_comes_back_is_read_again_once() -> None:
    backend = ScriptedBackend([h100(0)])
    collector, clock = make(backend)
    try:
        collector.collect(0.0)
        backend.fail_device(0, NvmlGpuLost("fell off the bus", code=15))
        clock.now += 10.0
        lost = by_name(collector.collect(0.0))
        assert lost["dcmon_gpu_up"].value == 0.0
        assert "DCGM_FI_DEV_SLOWDOWN_TEMP" not in lost
        backend.fail_device(0, None)
        for _ in range(3):
            clock.now += 10.0
            back = by_name(collector.collect(0.0))
            assert back["DCGM_FI_DEV_SLOWDOWN_TEMP"].value == 89.0
        assert calls(backend, TemperatureThreshold.SLOWDOWN) == 2
    finally:
        collector.close()


@pytest.mark.parametrize("raw", [0, 255, 0xFFFFFFFF])
def test_an_impossible_threshold_is_dropped(raw: int) -> None:
    glitched = dict(SCRIPTED)
    glitched[TemperatureThreshold.SLOWDOWN] = raw
    collector, _ = make(ScriptedBackend([h100(0, temperature_thresholds_c=glitched)]))
    try:
        series = by_name(collector.collect(0.0))
        assert "DCGM_FI_DEV_SLOWDOWN_TEMP" not in series
        assert series["DCGM_FI_DEV_SHUTDOWN_TEMP"].value == 93.0
    finally:
        collector.close()


def test_the_real_backend_asks_nvml_for_each_threshold_by_its_constant() -> None:
    gpu = FakeGpu(0, temperature_thresholds={0: 92, 1: 89, 3: 87})  # no MEM_MAX (2)
    library = FakeNvmlLibrary([gpu])
    backend = PynvmlBackend(module=library.module())
    backend.init()
    try:
        assert backend.temperature_threshold_c(0, TemperatureThreshold.SHUTDOWN) == 92
        assert backend.temperature_threshold_c(0, TemperatureThreshold.SLOWDOWN) == 89
        assert backend.temperature_threshold_c(0, TemperatureThreshold.GPU_MAX) == 87
        with pytest.raises(NvmlNotSupported):
            backend.temperature_threshold_c(0, TemperatureThreshold.MEM_MAX)
        assert library.count("nvmlDeviceGetTemperatureThreshold") == 4
    finally:
        backend.shutdown()
    old_driver = FakeNvmlLibrary(
        [FakeGpu(0)], driver_lacks=frozenset({"nvmlDeviceGetTemperatureThreshold"})
    )
    backend = PynvmlBackend(module=old_driver.module())
    backend.init()
    try:
        with pytest.raises(NvmlFunctionNotFound):
            backend.temperature_threshold_c(0, TemperatureThreshold.SLOWDOWN)
    finally:
        backend.shutdown()


def test_the_demos_hot_gpu_is_past_its_simulated_slowdown_threshold() -> None:
    """The demo overheats GPU 5 to 91 C: within 5 C of its slowdown threshold (the rule's
    trigger), while the fault-free GPUs stay more than 10 C below it (the rule's hold)."""
    start = 1_760_000_000.0
    clock = Clock()
    clock.now = start + 120.0  # inside the overheat window
    backend = SimulatedBackend(8, clock=clock, boot_time_s=start, faults=demo_plan(start))
    collector = GpuCollector(backend, HOSTNAME, monotonic=clock)
    try:
        samples = collector.collect(clock.now)
        assert_conforms(samples, source="gpu")
        for gpu in range(8):
            series = by_name(samples, str(gpu))
            slowdown = series["DCGM_FI_DEV_SLOWDOWN_TEMP"].value
            temperature = series["DCGM_FI_DEV_GPU_TEMP"].value
            if gpu == 5:
                assert temperature >= slowdown - 5, (temperature, slowdown)
            else:
                assert temperature <= slowdown - 10, (gpu, temperature, slowdown)
    finally:
        collector.close()
