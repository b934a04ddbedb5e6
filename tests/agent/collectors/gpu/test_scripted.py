"""The scripted backend: values, exceptions and call-count callables are equally easy steps."""

from __future__ import annotations

import pytest

from agent.collectors.gpu.backend import (
    Clock,
    NvmlError,
    NvmlGpuLost,
    NvmlNotSupported,
    NvmlUnavailable,
)
from agent.collectors.gpu.scripted import ScriptedBackend, sequence
from tests.fakes.nvml import NO_DRIVER, h100


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
