"""The scripted backend: values, exceptions and call-count callables are equally easy steps."""

from __future__ import annotations

import threading

import pytest

from agent.collectors.gpu.backend import (
    Clock,
    GpmMetric,
    MigMode,
    NvmlError,
    NvmlGpuLost,
    NvmlNotFound,
    NvmlNotSupported,
    NvmlUnavailable,
    PcieCounter,
)
from agent.collectors.gpu.scripted import ScriptedBackend, hang, sequence
from tests.fakes.nvml import NO_DRIVER, h100, process_vanishes_between_calls


def test_value_step_is_returned_every_time() -> None:
    backend = ScriptedBackend([h100(0, power_usage_mw=250_000)])
    backend.init()
    assert [backend.power_usage_mw(0) for _ in range(3)] == [250_000] * 3
    assert backend.call_count("power_usage_mw", 0) == 3


def test_exception_instance_and_class_are_raised_every_time() -> None:
    lost = NvmlGpuLost("GPU is lost", code=15)
    backend = ScriptedBackend([h100(0, temperature_c=lost, memory_temperature_c=NvmlNotSupported)])
    backend.init()
    for _ in range(2):
        with pytest.raises(NvmlGpuLost, match="GPU is lost") as caught:
            backend.temperature_c(0)
        assert caught.value is not lost, "each raise gets its own copy"
        assert caught.value.code == 15
        with pytest.raises(NvmlNotSupported, match="scripted failure of memory_temperature_c"):
            backend.memory_temperature_c(0)


def test_callable_of_the_call_count_works_twice_then_raises() -> None:
    def power(call: int) -> object:
        return 300_000 + call if call <= 2 else NvmlGpuLost("fell off the bus")

    backend = ScriptedBackend([h100(0, power_usage_mw=power)])
    backend.init()
    assert backend.power_usage_mw(0) == 300_001
    assert backend.power_usage_mw(0) == 300_002
    with pytest.raises(NvmlGpuLost):
        backend.power_usage_mw(0)


def test_sequence_plays_steps_in_order_and_repeats_the_last() -> None:
    backend = ScriptedBackend([h100(0, total_energy_mj=sequence(1, NvmlError, 3))])
    backend.init()
    assert backend.total_energy_mj(0) == 1
    with pytest.raises(NvmlError):
        backend.total_energy_mj(0)
    assert [backend.total_energy_mj(0) for _ in range(2)] == [3, 3]
    with pytest.raises(ValueError, match="at least one step"):
        sequence()


def test_calls_before_init_fail_like_nvml() -> None:
    backend = ScriptedBackend([h100(0)])
    with pytest.raises(NvmlError, match="not initialised") as caught:
        backend.uuid(0)
    assert caught.value.code == 1
    with pytest.raises(NvmlError):
        backend.device_count()


def test_init_can_be_scripted_to_fail_then_succeed() -> None:
    backend = ScriptedBackend([h100(0)], init=sequence(NO_DRIVER, None))
    with pytest.raises(NvmlUnavailable, match="NVML library not found") as caught:
        backend.init()
    assert caught.value.hint.startswith("install the NVIDIA driver")
    assert not backend.initialized
    backend.init()
    assert backend.initialized
    assert backend.call_count("init") == 2
    backend.shutdown()
    assert not backend.initialized


def test_fail_device_makes_every_call_of_one_gpu_raise_until_cleared() -> None:
    backend = ScriptedBackend([h100(0), h100(1)])
    backend.init()
    backend.fail_device(1, NvmlGpuLost("GPU is lost", code=15))
    with pytest.raises(NvmlGpuLost):
        backend.uuid(1)
    with pytest.raises(NvmlGpuLost):
        backend.clock_mhz(1, Clock.SM)
    assert backend.power_usage_mw(0) == 100_000
    backend.fail_device(1, None)
    assert backend.power_usage_mw(1) == 101_000
    assert backend.call_count("uuid", 1) == 1


def test_clocks_are_scripted_per_domain() -> None:
    backend = ScriptedBackend([h100(0)])
    backend.init()
    assert backend.clock_mhz(0, Clock.SM) == 885
    assert backend.clock_mhz(0, Clock.MEM) == 2619
    assert backend.max_clock_mhz(0, Clock.SM) == 1980
    with pytest.raises(NvmlError, match="clock video is not scripted"):
        backend.clock_mhz(0, Clock.VIDEO)
    assert backend.call_count("clock_mhz:sm", 0) == 1


def test_unknown_index_is_an_invalid_argument() -> None:
    backend = ScriptedBackend([h100(0)])
    backend.init()
    with pytest.raises(NvmlError, match="no GPU with index 1") as caught:
        backend.name(1)
    assert caught.value.code == 2


def test_before_call_hook_sees_each_call_name() -> None:
    seen: list[str] = []
    backend = ScriptedBackend([h100(0)], before_call=seen.append)
    backend.init()
    backend.utilization(0)
    backend.clock_mhz(0, Clock.MEM)
    assert seen == ["init", "utilization", "clock_mhz:mem"]


def test_hang_blocks_until_released_then_answers() -> None:
    release = threading.Event()
    backend = ScriptedBackend([h100(0, temperature_c=hang(release, 55))])
    backend.init()
    answers: list[int] = []
    caller = threading.Thread(target=lambda: answers.append(backend.temperature_c(0)))
    caller.start()
    caller.join(0.2)
    assert caller.is_alive() and answers == []
    assert backend.power_usage_mw(0) == 100_000, "other calls are not blocked"
    release.set()
    caller.join(5)
    assert answers == [55]


def test_hang_can_end_in_an_error() -> None:
    release = threading.Event()
    release.set()
    backend = ScriptedBackend([h100(0, power_usage_mw=hang(release, NvmlGpuLost("lost")))])
    backend.init()
    with pytest.raises(NvmlGpuLost):
        backend.power_usage_mw(0)


def test_field_values_answer_entry_by_entry_in_one_counted_call() -> None:
    backend = ScriptedBackend([h100(0)])
    backend.init()
    backend.devices[0].fields[(74, 0)] = sequence(5, NvmlGpuLost("lost", code=15))
    first = backend.field_values(0, [(74, 0), (29, 0), (230, 0)])
    assert [(e.field, e.value) for e in first] == [(74, 5.0), (29, None), (230, 0.0)]
    assert isinstance(first[1].error, NvmlNotSupported)
    second = backend.field_values(0, [(74, 0)])
    assert isinstance(second[0].error, NvmlGpuLost)
    assert backend.call_count("field_values", 0) == 2
    backend.fail_device(0, NvmlGpuLost("GPU is lost", code=15))
    with pytest.raises(NvmlGpuLost):
        backend.field_values(0, [(74, 0)])


def test_gpm_answers_from_the_second_sample_and_only_what_was_asked() -> None:
    backend = ScriptedBackend([h100(0)])
    backend.init()
    with pytest.raises(NvmlNotFound):
        backend.gpm_metrics(0, [GpmMetric.SM_UTIL])
    assert backend.gpm_metrics(0, [GpmMetric.SM_UTIL, GpmMetric.PCIE_TX_PER_SEC]) == {
        GpmMetric.SM_UTIL: 0.0,
        GpmMetric.PCIE_TX_PER_SEC: 0.75,
    }
    backend.devices[0].gpm_supported = False
    with pytest.raises(NvmlNotSupported):
        backend.gpm_metrics(0, [GpmMetric.SM_UTIL])


def test_idle_h100_defaults_match_the_probe() -> None:
    backend = ScriptedBackend([h100(0)])
    backend.init()
    with pytest.raises(NvmlNotSupported):
        backend.nvlink_states(0)
    with pytest.raises(NvmlNotSupported):
        backend.vgpu_license_status(0)
    assert backend.mig_mode(0) == MigMode(current=False, pending=False)
    assert backend.running_processes(0) == []
    assert backend.process_utilization(0, 0) == []
    assert backend.pcie_throughput_kib_per_s(0, PcieCounter.TX) == 768


def test_process_vanishes_between_calls() -> None:
    backend = process_vanishes_between_calls()
    backend.init()
    pids = [process.pid for process in backend.running_processes(0)]
    samples = backend.process_utilization(0, 0)
    assert pids == [1111, 2222]
    assert [sample.pid for sample in samples] == [1111]
    assert backend.process_utilization(0, samples[0].timestamp_us) == []


def test_process_utilization_not_found_is_empty() -> None:
    backend = ScriptedBackend([h100(0, process_utilization=NvmlNotFound("none", code=6))])
    backend.init()
    assert backend.process_utilization(0, 0) == []
