"""A simulated RDMA fabric: the ``infiniband`` collector's series for a simulated node.

Stage: collectors; stands in for ``agent.collectors.host.infiniband`` on a node whose GPUs are
simulated (``dcmon demo``, benchmarks), so the fabric dashboard and the fabric rules have data.
Input: the tick's time. Output: the same metric names, labels and units as the real collector
reads from ``/sys/class/infiniband`` (``agent/wire/catalog/fabric.toml``), for ``ports``
single-port adapters ``mlx5_0`` ...: ConnectX-7 (``MT4129``) InfiniBand ports on 400 Gb/s NDR
links, except the last one when there are two or more, which is a RoCE port (``link_layer``
Ethernet, which the collector does not report) of a ConnectX-6 Dx (``MT4125``) at 100 Gb/s,
as in the recorded ``tests/data/host/connectx/`` tree.

The model (a pure function of the seed, the port and the time since the simulated driver load):

- every port is ACTIVE / LinkUp at its line rate (``rate_bytes_per_second`` 5e10, RoCE 1.25e10);
- traffic in each direction runs at 10-50 % of the line rate, in two seeded waves (about 15
  and 1.5 minutes) per port and direction; the data counters are the exact integral of that
  rate, kept as the kernel keeps them (4-octet words, reported x 4), packets at 4,160 octets
  each on average, a few multicast packets a second (subnet administration);
- the fabric is congested for 60 s every 10 minutes (seeded offset): one port (chosen by the
  seed) waits for credits meanwhile, its ``port_xmit_wait`` growing 100,000 ticks a second;
  like the real 32-bit PMA field it stops at 2**32 - 1, which this rate reaches after about
  five days;
- the RoCE port reports mlx5's congestion-control counters as its ``hw_counters/`` hold them:
  ECN-marked packets received, CNPs sent (as notification point) and CNPs handled (as reaction
  point) grow at a low steady rate at all times (``ROCE_STEADY_PER_SECOND``, DCQCN at work on
  a busy fabric) and about 75 times faster in the congestion minute
  (``ROCE_BURST_PER_SECOND``); over the 5 minutes the ``RoceCongestion`` rule averages, the
  handled CNPs stay below its 1,000 a second, and ``rp_cnp_ignored`` stays 0 (congestion
  control is on). Its other RoCE counters (adaptive retransmissions, slow restart, ICRC
  errors) exist and stay 0;
- the error counters (symbol errors, link downed and recovered, receive errors, discards) and
  the mlx5 transport counters exist and stay at 0, as on a clean fabric.

Marked as simulated the way simulated GPUs are (their driver version reads "... (simulated)"):
``node_infiniband_info``'s ``firmware_version`` is ``28.39.1002 (simulated)`` (RoCE:
``22.39.1002 (simulated)``), so the series can never pass for a real adapter's.
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
ROCE_LINE_RATE_BYTES_PER_SECOND = 12.5e9
"""100 Gb/s Ethernet, in bytes per second (the kernel's ``rate`` reads ``100 Gb/sec (4X EDR)``)."""
ROCE_FIRMWARE = "22.39.1002 (simulated)"
ROCE_BOARD_ID = "MT_0000000359"
ROCE_HCA_TYPE = "MT4125"
"""ConnectX-6 Dx."""
ROCE_STEADY_PER_SECOND = {"np_ecn_marked_roce_packets": 40.0, "np_cnp_sent": 20.0,
                          "rp_cnp_handled": 20.0}  # fmt: skip
"""RoCE congestion counters' growth outside the congestion minute, per second."""
ROCE_BURST_PER_SECOND = {"np_ecn_marked_roce_packets": 3000.0, "np_cnp_sent": 1500.0,
                         "rp_cnp_handled": 1500.0}  # fmt: skip
"""Their growth in the congestion minute, per second."""
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
_ZERO_ROCE_COUNTERS = (
    "rp_cnp_ignored",
    "roce_adp_retrans",
    "roce_adp_retrans_to",
    "roce_slow_restart",
    "roce_slow_restart_cnps",
    "roce_slow_restart_trans",
    "rx_icrc_encapsulated",
)
"""mlx5 ``hw_counters/`` only RoCE ports have, besides the growing congestion counters."""


@dataclass(frozen=True)
class _Adapter:
    """What ``node_infiniband_info`` and the port's rate say about one simulated adapter."""

    hca_type: str
    board_id: str
    firmware_version: str
    line_rate_bytes_per_second: float
    roce: bool


_INFINIBAND = _Adapter(HCA_TYPE, BOARD_ID, SIMULATED_FIRMWARE, LINE_RATE_BYTES_PER_SECOND, False)
_ROCE = _Adapter(ROCE_HCA_TYPE, ROCE_BOARD_ID, ROCE_FIRMWARE, ROCE_LINE_RATE_BYTES_PER_SECOND, True)


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
    line_rate_bytes_per_second: float

    def octets(self, t: float) -> int:
        """Returns: octets sent in the first ``t`` seconds after the driver load."""
        busy_seconds = BASE_UTILIZATION * t + sum(wave.integral(t) for wave in self.waves)
        return int(self.line_rate_bytes_per_second * busy_seconds)


def _direction(rng: random.Random, line_rate_bytes_per_second: float) -> _Direction:
    waves = tuple(
        _Wave(amplitude, period * rng.uniform(0.8, 1.2), rng.uniform(0, 2 * math.pi))
        for amplitude, period in WAVES
    )
    return _Direction(waves, line_rate_bytes_per_second)


class SimulatedFabricCollector:
    """The fabric of a simulated node: ``ports`` ConnectX NDR ports, the last a RoCE port when
    there are two or more (see module docstring).

    Args:
        ports: number of adapters (one port each).
        seed: varies the traffic waves, the congestion minute and which port waits for credits;
            same seed, same series.
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
        self._adapters = [
            _ROCE if ports >= 2 and index == ports - 1 else _INFINIBAND for index in range(ports)
        ]
        self._traffic: list[tuple[_Direction, _Direction]] = []
        for index, adapter in enumerate(self._adapters):
            rng = random.Random(f"dcmon-simulated-fabric:{seed}:{index}")  # noqa: S311
            line_rate = adapter.line_rate_bytes_per_second
            self._traffic.append((_direction(rng, line_rate), _direction(rng, line_rate)))
        self._congested = seed % ports if ports else -1
        self._congestion_offset = random.Random(f"dcmon-fabric-wait:{seed}").uniform(  # noqa: S311
            0, CONGESTION_PERIOD_SECONDS
        )

    def collect(self, now: float) -> list[Sample]:
        """Returns: states, rates, counters and adapter info of every simulated port at ``now``."""
        t = max(0.0, now - self._boot)
        congested_s = self._congested_seconds(t)
        samples: list[Sample] = []
        for index, (adapter, (receive, transmit)) in enumerate(
            zip(self._adapters, self._traffic, strict=True)
        ):
            device = f"mlx5_{index}"
            info = {
                "device": device,
                "board_id": adapter.board_id,
                "firmware_version": adapter.firmware_version,
                "hca_type": adapter.hca_type,
            }
            samples.append(Sample(INFO_METRIC, info, 1.0))
            labels = {"device": device, "port": "1"}
            samples.append(Sample(STATE_METRIC, dict(labels), 4.0))
            samples.append(Sample(PHYSICAL_STATE_METRIC, dict(labels), 5.0))
            rate = adapter.line_rate_bytes_per_second
            samples.append(Sample(RATE_METRIC, dict(labels), rate))
            wait = congested_s if index == self._congested else 0.0
            raw = _counters(t, receive, transmit, wait)
            for file_name, value in raw.items():
                counter = COUNTERS[file_name]
                samples.append(Sample(counter.metric, dict(labels), float(value * counter.factor)))
            samples.append(Sample(SATURATED_METRIC, dict(labels), float(saturated_counters(raw))))
            hw = dict.fromkeys(_ZERO_HW_COUNTERS, 0)
            if adapter.roce:
                hw.update(_roce_counters(t, congested_s))
            for file_name, value in hw.items():
                samples.append(Sample(HW_COUNTERS[file_name].metric, dict(labels), float(value)))
        return samples

    def _congested_seconds(self, t: float) -> float:
        """Returns: seconds of the first ``t`` after the driver load the fabric was congested."""
        offset = self._congestion_offset
        return _congested_seconds(t + offset) - _congested_seconds(offset)


def _counters(t: float, receive: _Direction, transmit: _Direction, wait_s: float) -> dict[str, int]:
    """Returns: a port's ``counters/`` files as the kernel would show them at ``t``, the port
    having waited for credits ``wait_s`` seconds."""
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
        "port_xmit_wait": min(int(WAIT_TICKS_PER_SECOND * wait_s), PMA_32_BIT_CEILING),
    }
    raw.update(dict.fromkeys(_ZERO_COUNTERS, 0))
    return raw


def _roce_counters(t: float, congested_s: float) -> dict[str, int]:
    """Returns: the RoCE port's ``hw_counters/`` at ``t``, ``congested_s`` of it congested."""
    counters = {
        file_name: int(steady * (t - congested_s) + ROCE_BURST_PER_SECOND[file_name] * congested_s)
        for file_name, steady in ROCE_STEADY_PER_SECOND.items()
    }
    counters.update(dict.fromkeys(_ZERO_ROCE_COUNTERS, 0))
    return counters


def _congested_seconds(x: float) -> float:
    """Returns: congested time in ``[0, x)`` when each period starts with its congestion."""
    periods, into = divmod(x, CONGESTION_PERIOD_SECONDS)
    return periods * CONGESTION_SECONDS + min(into, CONGESTION_SECONDS)
