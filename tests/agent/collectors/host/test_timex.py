"""The timex collector: adjtimex readings converted as node_exporter converts them."""

from __future__ import annotations

import ctypes
import errno
import logging

import pytest

from agent.collectors.base import Sample
from agent.collectors.host import timex
from agent.collectors.host.timex import (
    LibcAdjtimex,
    TimexCollector,
    TimexReading,
    TimexUnavailableError,
)
from agent.wire.catalog import default_catalog
from tests.catalog_check import assert_conforms

from ._helpers import names, value

# chronyd locked to a PPS source: nanosecond resolution, 12.5 ppm fast, leap-second table loaded.
SYNCED_NANO = TimexReading(
    state=0,
    offset=-250_000,
    freq=819_200,
    maxerror=1_500,
    esterror=20,
    status=0x2000 | 0x0001 | 0x0004 | 0x0100,
    constant=4,
    tick=10_000,
    ppsfreq=-65_536,
    jitter=3_000,
    shift=8,
    stabil=131_072,
    jitcnt=2,
    calcnt=40,
    errcnt=1,
    stbcnt=3,
    tai=37,
)
# No time daemon: microsecond resolution, STA_UNSYNC, the kernel's 16 s error bounds.
UNSYNCED_MICRO = SYNCED_NANO._replace(
    state=5, offset=-250, jitter=3, status=0x0040, maxerror=16_000_000, esterror=16_000_000
)


def collect(reading: TimexReading) -> list[Sample]:
    return TimexCollector(lambda: reading).collect(0.0)


def test_nanosecond_readings_are_converted_like_node_exporter() -> None:
    samples = collect(SYNCED_NANO)

    assert value(samples, "node_timex_sync_status") == 1
    assert value(samples, "node_timex_offset_seconds") == -0.00025
    assert value(samples, "node_timex_frequency_adjustment_ratio") == 1 + 12.5e-6
    assert value(samples, "node_timex_maxerror_seconds") == 0.0015
    assert value(samples, "node_timex_estimated_error_seconds") == 0.00002
    assert value(samples, "node_timex_status") == 0x2105
    assert value(samples, "node_timex_loop_time_constant") == 4
    assert value(samples, "node_timex_tick_seconds") == 0.01
    assert value(samples, "node_timex_pps_frequency_hertz") == -1e-6
    assert value(samples, "node_timex_pps_jitter_seconds") == 3e-6
    assert value(samples, "node_timex_pps_shift_seconds") == 8
    assert value(samples, "node_timex_pps_stability_hertz") == 2e-6
    assert value(samples, "node_timex_pps_jitter_total") == 2
    assert value(samples, "node_timex_pps_calibration_total") == 40
    assert value(samples, "node_timex_pps_error_total") == 1
    assert value(samples, "node_timex_pps_stability_exceeded_total") == 3
    assert value(samples, "node_timex_tai_offset_seconds") == 37
    assert names(samples) == {spec.name for spec in default_catalog().from_source("timex")}
    assert_conforms(samples, source="timex")


def test_microsecond_readings_and_time_error() -> None:
    samples = collect(UNSYNCED_MICRO)

    assert value(samples, "node_timex_sync_status") == 0
    assert value(samples, "node_timex_offset_seconds") == -0.00025
    assert value(samples, "node_timex_pps_jitter_seconds") == 3e-6
    assert value(samples, "node_timex_maxerror_seconds") == 16


def test_permission_refused_yields_nothing_and_logs_once(caplog: pytest.LogCaptureFixture) -> None:
    def refuse() -> TimexReading:
        raise OSError(errno.EPERM, "adjtimex: Operation not permitted")

    caplog.set_level(logging.INFO, logger="agent.collectors.host.timex")
    collector = TimexCollector(refuse)

    assert collector.collect(0.0) == []
    assert collector.collect(1.0) == []
    assert len(caplog.records) == 1


def test_other_errors_raise() -> None:
    def fail() -> TimexReading:
        raise OSError(errno.EINVAL, "adjtimex: Invalid argument")

    with pytest.raises(OSError, match="Invalid argument"):
        TimexCollector(fail).collect(0.0)


def test_the_struct_has_the_c_librarys_size() -> None:
    # sizeof(struct timex) is 208 on LP64 Linux (glibc and musl).
    assert ctypes.sizeof(timex._Timex) == 208


def test_libc_adjtimex_reads_this_kernel() -> None:
    try:
        reading = LibcAdjtimex()()
    except PermissionError:
        pytest.skip("a seccomp profile forbids adjtimex here")

    assert 0 <= reading.state <= 5
    assert reading.tick > 0
    assert reading.maxerror >= 0
    samples = TimexCollector(LibcAdjtimex()).collect(0.0)
    assert len(samples) == 17


def test_a_libc_without_adjtimex_raises_the_same_clear_error_each_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    loads: list[object] = []

    class NoAdjtimex:
        def __init__(self, name: object, use_errno: bool = False) -> None:
            loads.append(name)

        def __getattr__(self, name: str) -> object:
            raise AttributeError(f"symbol {name} not found")

    monkeypatch.setattr(timex.ctypes, "CDLL", NoAdjtimex)
    collector = TimexCollector()

    with pytest.raises(TimexUnavailableError, match="adjtimex is not available") as first:
        collector.collect(0.0)
    with pytest.raises(TimexUnavailableError) as second:
        collector.collect(1.0)

    assert str(first.value) == str(second.value)
    assert len(loads) == 1  # looked up once
