"""The NVML event thread over a fake pynvml module: events, lost GPUs, missing API, give-up."""

from __future__ import annotations

import logging
import time

import pytest

from agent.events.nvml_source import NvmlEventSource
from tests.agent.events.fake_pynvml import (
    DRIVER_NOT_LOADED,
    FUNCTION_NOT_FOUND,
    GPU_IS_LOST,
    NOT_SUPPORTED,
    RECOVERY_ACTION,
    UNKNOWN,
    XID_CRITICAL,
    FakeEventApi,
    two_gpus,
)

WALL = 1_700_000_000.0


def _source(api: FakeEventApi, **kwargs: object) -> NvmlEventSource:
    return NvmlEventSource(
        api.module(), wall=lambda: WALL, wait_timeout_ms=50, error_pause_seconds=0.0, **kwargs
    )


def _run_until(source: NvmlEventSource, done: object, timeout: float = 5.0) -> None:
    source.start()
    deadline = time.monotonic() + timeout
    while not done() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)


def test_xid_and_recovery_events_are_queued_with_their_gpu() -> None:
    api = two_gpus()
    api.script = [
        api.event(1, XID_CRITICAL, 79),
        api.event(0, RECOVERY_ACTION, 2, gpuInstanceId=0xFFFFFFFF),
        api.event(0, XID_CRITICAL, 13, gpuInstanceId=3, computeInstanceId=0),
        api.event(None, XID_CRITICAL, 48),
        api.event(0, 0x4, 1),  # a P-state event: not registered for, ignored
    ]
    source = _source(api)
    try:
        _run_until(source, lambda: not api.script and api.waits > 6)
        observations = source.poll(WALL)
    finally:
        source.stop()
    assert [(o.code, o.gpu_index, o.pci_bus_id) for o in observations] == [
        (79, 1, "00000000:2A:00.0"),
        (154, 0, "00000000:18:00.0"),
        (13, 0, "00000000:18:00.0"),
        (48, None, None),
    ]
    assert all(o.source == "nvml" and o.time == WALL for o in observations)
    assert observations[1].recovery_action == 2
    assert "GPU instance 3, compute instance 0" in observations[2].message
    assert api.registered == {0: XID_CRITICAL | RECOVERY_ACTION, 1: XID_CRITICAL | RECOVERY_ACTION}
    assert source.poll(WALL) == []  # drained


def test_stop_joins_promptly_and_releases_nvml() -> None:
    api = two_gpus()
    source = NvmlEventSource(api.module(), wait_timeout_ms=1000)
    source.start()
    assert source.wait_ready(5.0)
    started = time.monotonic()
    source.stop()
    assert time.monotonic() - started < 1.5
    assert not source.active
    assert api.calls[-2:] == ["nvmlEventSetFree", "nvmlShutdown"]


def test_a_lost_gpu_is_skipped_and_the_others_still_report(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = two_gpus()
    api.gpus[0].errors["nvmlDeviceGetHandleByIndex"] = GPU_IS_LOST
    api.script = [api.event(1, XID_CRITICAL, 94)]
    source = _source(api)
    try:
        with caplog.at_level(logging.WARNING):
            _run_until(source, lambda: not api.script)
            assert source.wait_ready(5.0)
        assert source.registered_gpus == [1]
        assert source.active
        deadline = time.monotonic() + 5
        observations = source.poll(WALL)
        while not observations and time.monotonic() < deadline:
            time.sleep(0.01)
            observations = source.poll(WALL)
    finally:
        source.stop()
    assert [(o.code, o.gpu_index) for o in observations] == [(94, 1)]
    assert [r.getMessage() for r in caplog.records] == [
        "GPU 0: not registered for XID events: nvmlDeviceGetHandleByIndex: NVML error 15"
    ]


def test_no_event_registration_turns_the_source_off_with_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = two_gpus(register_errors=[FUNCTION_NOT_FOUND])
    source = _source(api)
    with caplog.at_level(logging.INFO):
        source.start()
        assert source.wait_ready(5.0)
        source.stop()
    assert not source.active
    assert api.waits == 0
    assert "nvmlEventSetFree" in api.calls and api.calls[-1] == "nvmlShutdown"
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and messages[0].startswith("XID events from NVML off: the driver")


def test_a_driver_without_recovery_events_is_registered_for_xids_only() -> None:
    api = two_gpus(register_errors=[NOT_SUPPORTED])  # the first register call refuses the mask
    source = _source(api)
    source.start()
    assert source.wait_ready(5.0)
    source.stop()
    assert api.registered == {0: XID_CRITICAL, 1: XID_CRITICAL | RECOVERY_ACTION}


def test_supported_types_mask_what_is_registered() -> None:
    api = two_gpus()
    api.gpus[0].supported = XID_CRITICAL
    api.gpus[1].supported = 0x4  # no XID events on this one
    source = _source(api)
    source.start()
    assert source.wait_ready(5.0)
    source.stop()
    assert api.registered == {0: XID_CRITICAL}


def test_a_binding_without_recovery_events_registers_xids_only() -> None:
    api = two_gpus(with_recovery_type=False)
    source = _source(api)
    source.start()
    assert source.wait_ready(5.0)
    source.stop()
    assert api.registered == {0: XID_CRITICAL, 1: XID_CRITICAL}


def test_consecutive_wait_errors_stop_the_thread_with_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = two_gpus()
    # A timeout resets the run: 5 errors, a timeout, then errors until the limit of 10.
    api.script = [UNKNOWN] * 5 + [10] + [GPU_IS_LOST] * 20
    source = _source(api, max_consecutive_errors=10)
    with caplog.at_level(logging.WARNING):
        _run_until(source, lambda: not source.active)
        source.stop()
    assert not source.active
    assert api.waits == 5 + 1 + 10
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert "10 waits in a row failed" in messages[0]


def test_nvml_init_failure_turns_the_source_off_with_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    api = two_gpus(init_error=DRIVER_NOT_LOADED)
    source = _source(api)
    with caplog.at_level(logging.INFO):
        source.start()
        assert source.wait_ready(5.0)
        source.stop()
    assert api.calls == ["nvmlInit"]
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "NVML failed to start" in messages[0]
    assert source.poll(WALL) == []


def test_a_module_without_the_event_api_is_refused(caplog: pytest.LogCaptureFixture) -> None:
    module = two_gpus().module()
    del module.nvmlEventSetWait
    source = NvmlEventSource(module)
    with caplog.at_level(logging.WARNING):
        source.start()
        assert source.wait_ready(5.0)
        source.stop()
    assert [r.getMessage() for r in caplog.records] == [
        "XID events from NVML off: the pynvml module lacks nvmlEventSetWait"
    ]


def test_the_queue_keeps_the_newest_events() -> None:
    api = two_gpus()
    api.script = [api.event(0, XID_CRITICAL, code) for code in (31, 43, 45, 48, 63)]
    source = _source(api, max_queued=3)
    try:
        _run_until(source, lambda: not api.script and api.waits > 5)
    finally:
        source.stop()
    assert [o.code for o in source.poll(WALL)] == [45, 48, 63]
    assert source.dropped == 2


def test_no_driver_is_quiet_when_asked(caplog: pytest.LogCaptureFixture) -> None:
    api = two_gpus(init_error=DRIVER_NOT_LOADED)
    source = NvmlEventSource(api.module(), quiet_when_absent=True)
    with caplog.at_level(logging.INFO):
        source.start()
        assert source.wait_ready(5.0)
        source.stop()
    assert [(r.levelno, r.getMessage()[:25]) for r in caplog.records] == [
        (logging.INFO, "XID events from NVML off:")
    ]
