"""NVML sampled while a test runs: spreads per test window, the throttle reasons seen and how
they are judged, failed readings counted, and a sampling thread that survives a bad round."""

from __future__ import annotations

import time

from agent.bench.conditions import MAX_KEPT, Sampler, throttle_findings
from agent.collectors.gpu.backend import Clock, ClocksEventReason, NvmlNotSupported
from agent.collectors.gpu.scripted import ScriptedBackend, sequence
from tests.fakes.nvml import h100

CAP = int(ClocksEventReason.SW_POWER_CAP)
HW = int(ClocksEventReason.HW_SLOWDOWN)


def _nvml(*scripts: object) -> ScriptedBackend:
    nvml = ScriptedBackend(list(scripts))  # type: ignore[arg-type]
    nvml.init()
    return nvml


def test_a_window_summarises_the_samples_taken_while_its_test_ran() -> None:
    busy = h100(0, clocks_event_reasons=sequence(CAP, CAP | HW, CAP))
    busy.clocks_mhz[Clock.SM] = sequence(885, 1980, 1700, 1900)
    quiet = h100(1, temperature_c=NvmlNotSupported("no sensor", code=3))
    sampler = Sampler(_nvml(busy, quiet), [0, 1])
    sampler.sample()  # before the test: not its sample
    sampler.begin(0)
    sampler.begin(1)
    for _ in range(3):
        sampler.sample()
    first, second = sampler.end(0), sampler.end(1)
    assert first is not None and second is not None
    assert first.samples == 3 and first.sm_clock_mhz == (1700.0, 1900.0, 1980.0)
    assert first.power_w == (100.0, 100.0, 100.0) and first.temperature_c == (40.0, 40.0, 40.0)
    assert first.throttle_reasons == ("SW_POWER_CAP", "HW_SLOWDOWN")
    assert second.temperature_c == () and second.power_w == (101.0, 101.0, 101.0)
    assert sampler.read_errors == 4  # the missing sensor, once per sample
    assert sampler.end(0) is None  # closed
    samples, seen = sampler.seen(0)
    assert samples == 4 and seen == {"SW_POWER_CAP": 4, "HW_SLOWDOWN": 1}


def test_hardware_slowdown_fails_software_thermal_warns_and_the_power_cap_is_expected() -> None:
    (fail,) = throttle_findings(20, {"HW_THERMAL_SLOWDOWN": 3, "SW_POWER_CAP": 20})
    assert (fail.level, fail.check) == ("fail", "throttle")
    assert "HW_THERMAL_SLOWDOWN (3 of 20 samples)" in fail.message
    (warn,) = throttle_findings(20, {"SW_THERMAL_SLOWDOWN": 5})
    assert warn.level == "warn" and "5 of 20 samples" in warn.message
    assert throttle_findings(20, {"SW_POWER_CAP": 20, "GPU_IDLE": 1}) == []


def test_a_long_window_keeps_bounded_samples_with_exact_extremes() -> None:
    script = h100(0)
    script.clocks_mhz[Clock.SM] = lambda call: call  # 1, 2, 3, ... MHz
    sampler = Sampler(_nvml(script), [0])
    sampler.begin(0)
    count = 3 * MAX_KEPT
    for _ in range(count):
        sampler.sample()
    got = sampler.end(0)
    assert got is not None and got.samples == count
    low, median, high = got.sm_clock_mhz
    assert (low, high) == (1.0, float(count))
    assert abs(median - (count + 1) / 2) < count * 0.01


def test_the_thread_counts_a_failed_round_and_keeps_sampling() -> None:
    script = h100(0)
    script.clocks_mhz[Clock.SM] = sequence(ValueError("a binding bug"), 1980)
    nvml = _nvml(script)
    sampler = Sampler(nvml, [0], interval_s=0.001)
    sampler.begin(0)
    sampler.start()
    deadline = time.monotonic() + 5.0
    while nvml.call_count("clock_mhz:sm", 0) < 5 and time.monotonic() < deadline:
        time.sleep(0.005)
    sampler.stop()
    assert sampler.errors == 1
    got = sampler.end(0)
    assert got is not None and got.samples >= 3 and got.sm_clock_mhz[0] == 1980.0
