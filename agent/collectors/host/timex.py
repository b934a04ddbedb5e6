"""The ``timex`` collector: the kernel clock discipline's state, from ``adjtimex(2)``.

Input: one read-only ``adjtimex`` call (``modes`` = 0, no privilege needed) through libc,
behind the ``Adjtimex`` seam so tests can script readings. Output, as node_exporter's timex:
gauges ``node_timex_sync_status`` (0 when the call answers ``TIME_ERROR``: the clock is not
synchronised), ``offset_seconds``, ``frequency_adjustment_ratio``, ``maxerror_seconds``,
``estimated_error_seconds``, ``status`` (the ``STA_*`` bits), ``loop_time_constant``,
``tick_seconds``, ``tai_offset_seconds``, the PPS gauges ``pps_frequency_hertz``,
``pps_jitter_seconds``, ``pps_shift_seconds``, ``pps_stability_hertz``, and the PPS counters
``pps_jitter_total``, ``pps_calibration_total``, ``pps_error_total`` and
``pps_stability_exceeded_total``. Distributed training needs clocks within milliseconds of each
other (NCCL timeouts, trace alignment); ``sync_status`` 0 or a growing ``maxerror`` is the alert.

Conversions are node_exporter's: ``offset`` and ``jitter`` are nanoseconds when ``STA_NANO`` is
set in ``status``, else microseconds; ``maxerror``, ``esterror`` and ``tick`` are always
microseconds; ``freq``, ``ppsfreq`` and ``stabil`` are ppm scaled by 2^16 (``freq`` reported as
the ratio 1 + ppm / 1e6); ``shift`` is reported as the kernel keeps it (the PPS interval's
log2 seconds), as node_exporter does.

Errors: a libc without ``adjtimex`` (not Linux) raises ``TimexUnavailableError`` at every
collection, with the same message, so the daemon reports it once and marks the collector
failed; ``EPERM`` (a seccomp profile that forbids the call in a container) yields nothing, as
in node_exporter, with one log line; any other errno raises ``OSError``. The ``struct timex``
layout is the C library's ``long``-field one of LP64 Linux (x86-64, arm64, ppc64le).
"""

from __future__ import annotations

import ctypes
import logging
import os
from collections.abc import Callable
from typing import Any, NamedTuple

from agent.collectors.base import Sample

logger = logging.getLogger(__name__)

TIME_ERROR = 5
"""``adjtimex`` return value: the clock is not synchronised."""
STA_NANO = 0x2000
"""``status`` bit: ``offset`` and ``jitter`` are in nanoseconds, not microseconds."""
NANOSECONDS_PER_SECOND = 1_000_000_000
MICROSECONDS_PER_SECOND = 1_000_000
PPM_SCALED = 1_000_000 * 65_536
"""One part in 1 (ratio 1.0) in the kernel's scaled-ppm unit (ppm x 2^16)."""


class TimexUnavailableError(RuntimeError):
    """This platform's C library has no ``adjtimex``."""


class TimexReading(NamedTuple):
    """The fields of ``struct timex`` that are reported, raw, and the call's return value."""

    state: int
    offset: int
    freq: int
    maxerror: int
    esterror: int
    status: int
    constant: int
    tick: int
    ppsfreq: int
    jitter: int
    shift: int
    stabil: int
    jitcnt: int
    calcnt: int
    errcnt: int
    stbcnt: int
    tai: int


Adjtimex = Callable[[], TimexReading]
"""Reads the clock state; raises ``OSError`` with the call's errno, or
``TimexUnavailableError``."""


class _Timeval(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long))


class _Timex(ctypes.Structure):
    """glibc's and musl's ``struct timex`` (``long`` fields; ``int`` where the header has it)."""

    _fields_ = (
        ("modes", ctypes.c_uint),
        ("offset", ctypes.c_long),
        ("freq", ctypes.c_long),
        ("maxerror", ctypes.c_long),
        ("esterror", ctypes.c_long),
        ("status", ctypes.c_int),
        ("constant", ctypes.c_long),
        ("precision", ctypes.c_long),
        ("tolerance", ctypes.c_long),
        ("time", _Timeval),
        ("tick", ctypes.c_long),
        ("ppsfreq", ctypes.c_long),
        ("jitter", ctypes.c_long),
        ("shift", ctypes.c_int),
        ("stabil", ctypes.c_long),
        ("jitcnt", ctypes.c_long),
        ("calcnt", ctypes.c_long),
        ("errcnt", ctypes.c_long),
        ("stbcnt", ctypes.c_long),
        ("tai", ctypes.c_int),
        ("_reserved", ctypes.c_int * 11),
    )


class LibcAdjtimex:
    """The real ``adjtimex``: libc is looked up on the first call, and a failure is kept."""

    def __init__(self) -> None:
        self._function: Callable[[Any], int] | None = None
        self._unavailable: str | None = None
        self._buffer = _Timex()

    def __call__(self) -> TimexReading:
        function = self._function or self._load()
        buffer = self._buffer
        buffer.modes = 0  # read only
        state = function(ctypes.byref(buffer))
        if state == -1:
            code = ctypes.get_errno()
            raise OSError(code, f"adjtimex: {os.strerror(code)}")
        return TimexReading(
            state,
            buffer.offset,
            buffer.freq,
            buffer.maxerror,
            buffer.esterror,
            buffer.status,
            buffer.constant,
            buffer.tick,
            buffer.ppsfreq,
            buffer.jitter,
            buffer.shift,
            buffer.stabil,
            buffer.jitcnt,
            buffer.calcnt,
            buffer.errcnt,
            buffer.stbcnt,
            buffer.tai,
        )

    def _load(self) -> Callable[[Any], int]:
        if self._unavailable is None:
            try:
                function = ctypes.CDLL(None, use_errno=True).adjtimex
            except (OSError, AttributeError) as exc:
                self._unavailable = f"adjtimex is not available here: {exc}"
            else:
                function.argtypes = (ctypes.POINTER(_Timex),)
                function.restype = ctypes.c_int
                self._function = function
                return function
        raise TimexUnavailableError(self._unavailable)


class TimexCollector:
    """Reports the kernel's clock-discipline state."""

    name = "timex"

    def __init__(self, adjtimex: Adjtimex | None = None) -> None:
        self._adjtimex = adjtimex or LibcAdjtimex()
        self._refused = False

    def collect(self, now: float) -> list[Sample]:
        """Returns: the 17 timex metrics (seconds, ratios, hertz, counts), or nothing when the
        call is refused with ``EPERM``.

        Raises:
            TimexUnavailableError: the C library has no ``adjtimex``.
            OSError: the call failed otherwise.
        """
        try:
            reading = self._adjtimex()
        except PermissionError:  # EPERM or EACCES, as Go's os.ErrPermission
            if not self._refused:
                self._refused = True
                logger.info("adjtimex refused (a seccomp profile?); timex metrics left out")
            return []
        return timex_samples(reading)


def timex_samples(reading: TimexReading) -> list[Sample]:
    """Returns: the metrics of one reading, converted as node_exporter converts them."""
    divisor = NANOSECONDS_PER_SECOND if reading.status & STA_NANO else MICROSECONDS_PER_SECOND
    values = (
        ("node_timex_sync_status", 0.0 if reading.state == TIME_ERROR else 1.0),
        ("node_timex_offset_seconds", reading.offset / divisor),
        ("node_timex_frequency_adjustment_ratio", 1 + reading.freq / PPM_SCALED),
        ("node_timex_maxerror_seconds", reading.maxerror / MICROSECONDS_PER_SECOND),
        ("node_timex_estimated_error_seconds", reading.esterror / MICROSECONDS_PER_SECOND),
        ("node_timex_status", float(reading.status)),
        ("node_timex_loop_time_constant", float(reading.constant)),
        ("node_timex_tick_seconds", reading.tick / MICROSECONDS_PER_SECOND),
        ("node_timex_pps_frequency_hertz", reading.ppsfreq / PPM_SCALED),
        ("node_timex_pps_jitter_seconds", reading.jitter / divisor),
        ("node_timex_pps_shift_seconds", float(reading.shift)),
        ("node_timex_pps_stability_hertz", reading.stabil / PPM_SCALED),
        ("node_timex_pps_jitter_total", float(reading.jitcnt)),
        ("node_timex_pps_calibration_total", float(reading.calcnt)),
        ("node_timex_pps_error_total", float(reading.errcnt)),
        ("node_timex_pps_stability_exceeded_total", float(reading.stbcnt)),
        ("node_timex_tai_offset_seconds", float(reading.tai)),
    )
    return [Sample(name, {}, value) for name, value in values]
