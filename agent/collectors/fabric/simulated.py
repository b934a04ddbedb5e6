"""A simulated InfiniBand fabric: the ``infiniband`` collector's series for a simulated node.

Stage: collectors; stands in for ``agent.collectors.host.infiniband`` on a node whose GPUs are
simulated (``dcmon demo``, benchmarks), so the fabric dashboard and the fabric rules have data.
Input: the tick's time. Output: the same metric names, labels and units as the real collector
reads from ``/sys/class/infiniband`` (``agent/wire/catalog/fabric.toml``), for ``ports``
single-port ConnectX-7 adapters ``mlx5_0`` ... on 400 Gb/s NDR links.

The model (a pure function of the seed, the port and the time since the simulated driver load):

- every port is ACTIVE / LinkUp at 400 Gb/s (``rate_bytes_per_second`` 5e10);
- traffic in each direction runs at 10-50 % of the line rate, in two seeded waves (about 15
  and 1.5 minutes) per port and direction; the data counters are the exact integral of that
  rate, kept as the kernel keeps them (4-octet words, reported x 4), packets at 4,160 octets
  each on average, a few multicast packets a second (subnet administration);
- one port (chosen by the seed) sees congestion for 60 s every 10 minutes, its
  ``port_xmit_wait`` growing 100,000 ticks a second meanwhile; like the real 32-bit PMA field
  it stops at 2**32 - 1, which this rate reaches after about five days;
- the error counters (symbol errors, link downed and recovered, receive errors, discards) and
  the mlx5 transport counters exist and stay at 0, as on a clean fabric.

Marked as simulated the way simulated GPUs are (their driver version reads "... (simulated)"):
``node_infiniband_info``'s ``firmware_version`` is ``28.39.1002 (simulated)``, so the series can
never pass for a real adapter's.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from agent.collectors.base import Sample
from agent.collectors.host.infiniband import (
    COUNTERS,
    HW_COUNTERS,
    INFO_METRIC,
    PHYSICAL_STATE_METRIC,
    RATE_METRIC,
    SATURATED_METRIC,
    STATE_METRIC,
    saturated_counters,
)

LINE_RATE_BYTES_PER_SECOND = 50e9
"""400 Gb/s (4X NDR), in bytes per second."""
SIMULATED_FIRMWARE = "28.39.1002 (simulated)"
BOARD_ID = "MT_0000000838"
HCA_TYPE = "MT4129"
"""ConnectX-7."""
OCTETS_PER_PACKET = 4160
"""Average packet on the wire: a 4 KiB MTU payload and its headers."""
MULTICAST_PACKETS_PER_SECOND = (3.0, 0.1)
"""Received, transmitted."""
CONGESTION_PERIOD_SECONDS = 600.0
CONGESTION_SECONDS = 60.0
WAIT_TICKS_PER_SECOND = 100_000.0
PMA_32_BIT_CEILING = 2**32 - 1
BASE_UTILIZATION = 0.30
WAVES = ((0.15, 900.0), (0.05, 97.0))
"""(amplitude as a fraction of the line rate, period in seconds); the sum of the amplitudes
stays below the base, so traffic never stops."""

_ZERO_COUNTERS = (
    "symbol_error",
    "link_error_recovery",
    "link_downed",
    "port_rcv_errors",
    "port_rcv_remote_physical_errors",
    "port_rcv_switch_relay_errors",
    "port_xmit_discards",
    "port_xmit_constraint_errors",
    "port_rcv_constraint_errors",
    "local_link_integrity_errors",
    "excessive_buffer_overrun_errors",
    "VL15_dropped",
)
_ZERO_HW_COUNTERS = (
    "local_ack_timeout_err",
    "out_of_sequence",
    "packet_seq_err",
    "rnr_nak_retry_err",
    "req_transport_retries_exceeded",
)


@dataclass(frozen=True)
class _Wave:
    amplitude: float
    period_s: float
    phase: float

    def integral(self, t: float) -> float:
        """Returns: the integral of ``amplitude * sin(2 pi t / period + phase)`` from 0 to t."""
        omega = 2 * math.pi / self.period_s
        return self.amplitude / omega * (math.cos(self.phase) - math.cos(omega * t + self.phase))


@dataclass(frozen=True)
class _Direction:
    """One direction of one port: the fraction of the line rate it uses, as seeded waves."""

    waves: tuple[_Wave, ...]

    def octets(self, t: float) -> int:
        """Returns: octets sent in the first ``t`` seconds after the driver load."""
        busy_seconds = BASE_UTILIZATION * t + sum(wave.integral(t) for wave in self.waves)
        return int(LINE_RATE_BYTES_PER_SECOND * busy_seconds)


def _direction(rng: random.Random) -> _Direction:
    waves = tuple(
        _Wave(amplitude, period * rng.uniform(0.8, 1.2), rng.uniform(0, 2 * math.pi))
        for amplitude, period in WAVES
    )
    return _Direction(waves)


class SimulatedFabricCollector:
    """The fabric of a simulated node: ``ports`` ConnectX-7 NDR ports (see module docstring).

    Args:
        ports: number of adapters (one port each).
        seed: varies the traffic waves and which port sees congestion; same seed, same series.
        boot_time_s: Unix time the simulated driver loaded (counters start there); default:
            the clock's reading when the collector is built.
        clock: wall-clock Unix time in seconds.
    """

    name = "infiniband"

    def __init__(
        self,
        ports: int,
        seed: int = 0,
        boot_time_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if ports < 0:
            raise ValueError("ports must be >= 0")
        self._boot = clock() if boot_time_s is None else boot_time_s
        self._traffic: list[tuple[_Direction, _Direction]] = []
        for index in range(ports):
            rng = random.Random(f"dcmon-simulated-fabric:{seed}:{index}")  # noqa: S311
            self._traffic.append((_direction(rng), _direction(rng)))
        self._congested = seed % ports if ports else -1
        self._congestion_offset = random.Random(f"dcmon-fabric-wait:{seed}").uniform(  # noqa: S311
            0, CONGESTION_PERIOD_SECONDS
        )

    def collect(self, now: float) -> list[Sample]:
        """Returns: states, rates, counters and adapter info of every simulated port at ``now``."""
        t = max(0.0, now - self._boot)
        samples: list[Sample] = []
        for index, (receive, transmit) in enumerate(self._traffic):
            device = f"mlx5_{index}"
            samples.append(
                Sample(
                    INFO_METRIC,
                    {
                        "device": device,
                        "board_id": BOARD_ID,
                        "firmware_version": SIMULATED_FIRMWARE,
                        "hca_type": HCA_TYPE,
                    },
                    1.0,
                )
            )
            labels = {"device": device, "port": "1"}
            samples.append(Sample(STATE_METRIC, dict(labels), 4.0))
            samples.append(Sample(PHYSICAL_STATE_METRIC, dict(labels), 5.0))
            samples.append(Sample(RATE_METRIC, dict(labels), LINE_RATE_BYTES_PER_SECOND))
            raw = self._counters(index, t, receive, transmit)
            for file_name, value in raw.items():
                counter = COUNTERS[file_name]
                samples.append(Sample(counter.metric, dict(labels), float(value * counter.factor)))
            samples.append(Sample(SATURATED_METRIC, dict(labels), float(saturated_counters(raw))))
            for file_name in _ZERO_HW_COUNTERS:
                samples.append(Sample(HW_COUNTERS[file_name].metric, dict(labels), 0.0))
        return samples

    def _counters(
        self, index: int, t: float, receive: _Direction, transmit: _Direction
    ) -> dict[str, int]:
        """Returns: the port's ``counters/`` files as the kernel would show them at ``t``."""
        received, sent = receive.octets(t), transmit.octets(t)
        received_packets = received // OCTETS_PER_PACKET
        sent_packets = sent // OCTETS_PER_PACKET
        multicast_in = int(MULTICAST_PACKETS_PER_SECOND[0] * t)
        multicast_out = int(MULTICAST_PACKETS_PER_SECOND[1] * t)
        raw = {
            "port_rcv_data": received // 4,
            "port_xmit_data": sent // 4,
            "port_rcv_packets": received_packets + multicast_in,
            "port_xmit_packets": sent_packets + multicast_out,
            "unicast_rcv_packets": received_packets,
            "unicast_xmit_packets": sent_packets,
            "multicast_rcv_packets": multicast_in,
            "multicast_xmit_packets": multicast_out,
            "port_xmit_wait": self._wait_ticks(index, t),
        }
        raw.update(dict.fromkeys(_ZERO_COUNTERS, 0))
        return raw

    def _wait_ticks(self, index: int, t: float) -> int:
        """Returns: ``port_xmit_wait`` at ``t``: 60 s of congestion every 10 minutes on one port."""
        if index != self._congested:
            return 0
        offset = self._congestion_offset
        congested = _congested_seconds(t + offset) - _congested_seconds(offset)
        return min(int(WAIT_TICKS_PER_SECOND * congested), PMA_32_BIT_CEILING)


def _congested_seconds(x: float) -> float:
    """Returns: congested time in ``[0, x)`` when each period starts with its congestion."""
    periods, into = divmod(x, CONGESTION_PERIOD_SECONDS)
    return periods * CONGESTION_SECONDS + min(into, CONGESTION_SECONDS)
