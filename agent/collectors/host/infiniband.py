"""The ``infiniband`` collector: InfiniBand and RoCE ports of RDMA adapters, as node_exporter's.

Input: ``/sys/class/infiniband/<device>/`` (``board_id``, ``fw_ver``, ``hca_type``) and each
``ports/<n>/`` (``state``, ``phys_state``, ``rate``, ``counters/``, ``hw_counters/`` and, on
kernels before 4.5, ``counters_ext/``). Output, labelled ``{device, port}`` as node_exporter's
``infiniband`` collector (``agent/wire/catalog/fabric.toml``):

- per port: ``node_infiniband_state_id`` (4 = ACTIVE), ``node_infiniband_physical_state_id``
  (5 = LinkUp, 3 = Disabled, 2 = Polling), ``node_infiniband_rate_bytes_per_second`` (the
  ``rate`` file's Gb/s x 125,000,000);
- the PMA port counters of ``counters/`` under node_exporter's names (``COUNTERS``): traffic
  (``port_data_{received,transmitted}_bytes_total``: the kernel counts 4-octet words, so the
  value is x 4), packets, errors, discards, ``port_transmit_wait_total`` (ticks the port had
  data but no credits to send it); the pre-4.5 ``counters_ext/`` ones as ``legacy_*``;
- the driver's ``hw_counters/`` (mlx5: RDMA transport retries and NAKs, CQE errors, and on RoCE
  ports the congestion-control counters ``np_cnp_sent``, ``rp_cnp_handled``, ...) under
  upstream's names (``HW_COUNTERS``), two that upstream lacks as ``dcmon_infiniband_*``, and
  ``lifespan`` (how long the driver caches them) as ``node_infiniband_lifespan_seconds``;
- per device ``node_infiniband_info{device,board_id,firmware_version,hca_type}`` = 1;
- ``dcmon_infiniband_port_saturated_counters``: how many of the port's PMA counters sit at
  their ceiling. The IBTA PortCounters (symbol errors: 16 bits, link downed: 8, local link
  integrity: 4, ``port_xmit_wait``: 32 even on current ConnectX, data and packets: 32 on
  adapters without the extended set) stop at all ones instead of wrapping, so a saturated
  counter reads flat and its rate says "no errors" or "no congestion" when that is unknown.
  ``perfquery -x -R`` (or a driver reload) clears them.

RoCE ports (``link_layer`` Ethernet on mlx5) have the same files and are reported the same way.

Missing and unreadable: no ``/sys/class/infiniband`` yields nothing. A counter the kernel
refuses (EINVAL when the port's PMA query fails, EACCES) or that reads ``N/A (no PMA)`` (older
kernels) is left out, the rest of the port still reported; an attribute that exists but does not
parse raises ``MalformedFileError``. Deviations from node_exporter: a device without ``fw_ver``,
or a port whose ``state``, ``phys_state`` or ``rate`` cannot be read, is reported without that
reading where node_exporter fails the whole collection; ``lifespan_seconds`` is the real
fraction (0.01 for the default 10 ms) where upstream's integer division reports 0.

Cost: every folder is opened once and its files read relative to it (``openat``, one
``read``), so the kernel does not walk the long sysfs path for each counter; a counter folder
is listed with ``os.scandir`` only every ``RELIST_EVERY`` collections (its files are fixed by
the driver); ``link_layer`` and the GID tables are not read. On the recorded four-port tree a
collection takes about 1.5 ms here, nearly all of it the ~200 open/read/close system calls;
on real adapters each ``counters/`` read is also a firmware query in the kernel.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import NamedTuple

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host._files import MalformedFileError, parse_int, read_attribute

BYTES_PER_SECOND_PER_GBIT = 125_000_000
OCTETS_PER_WORD = 4
"""``port_rcv_data`` and ``port_xmit_data`` count 4-octet words."""
NO_PMA = "N/A (no PMA)"
"""What kernels before 4.19 printed for a counter whose PMA query failed."""

INFO_METRIC = "node_infiniband_info"
STATE_METRIC = "node_infiniband_state_id"
PHYSICAL_STATE_METRIC = "node_infiniband_physical_state_id"
RATE_METRIC = "node_infiniband_rate_bytes_per_second"
LIFESPAN_METRIC = "node_infiniband_lifespan_seconds"
SATURATED_METRIC = "dcmon_infiniband_port_saturated_counters"


class Counter(NamedTuple):
    """One counter file: its metric, the factor to base units, and its PMA width in bits."""

    metric: str
    factor: int = 1
    width_bits: int | None = None
    """Bits of the saturating IBTA PortCounters field (None: 64-bit or driver-defined)."""


def _ib(suffix: str) -> str:
    return f"node_infiniband_{suffix}"


COUNTERS: dict[str, Counter] = {
    "excessive_buffer_overrun_errors": Counter(_ib("excessive_buffer_overrun_errors_total"), 1, 4),
    "link_downed": Counter(_ib("link_downed_total"), 1, 8),
    "link_error_recovery": Counter(_ib("link_error_recovery_total"), 1, 8),
    "local_link_integrity_errors": Counter(_ib("local_link_integrity_errors_total"), 1, 4),
    "multicast_rcv_packets": Counter(_ib("multicast_packets_received_total")),
    "multicast_xmit_packets": Counter(_ib("multicast_packets_transmitted_total")),
    "port_rcv_constraint_errors": Counter(_ib("port_constraint_errors_received_total"), 1, 8),
    "port_rcv_data": Counter(_ib("port_data_received_bytes_total"), OCTETS_PER_WORD, 32),
    "port_rcv_discards": Counter(_ib("port_discards_received_total")),
    "port_rcv_errors": Counter(_ib("port_errors_received_total"), 1, 16),
    "port_rcv_packets": Counter(_ib("port_packets_received_total"), 1, 32),
    "port_rcv_remote_physical_errors": Counter(
        _ib("port_receive_remote_physical_errors_total"), 1, 16
    ),
    "port_rcv_switch_relay_errors": Counter(_ib("port_receive_switch_relay_errors_total"), 1, 16),
    "port_xmit_constraint_errors": Counter(_ib("port_constraint_errors_transmitted_total"), 1, 8),
    "port_xmit_data": Counter(_ib("port_data_transmitted_bytes_total"), OCTETS_PER_WORD, 32),
    "port_xmit_discards": Counter(_ib("port_discards_transmitted_total"), 1, 16),
    "port_xmit_packets": Counter(_ib("port_packets_transmitted_total"), 1, 32),
    "port_xmit_wait": Counter(_ib("port_transmit_wait_total"), 1, 32),
    "symbol_error": Counter(_ib("symbol_error_total"), 1, 16),
    "unicast_rcv_packets": Counter(_ib("unicast_packets_received_total")),
    "unicast_xmit_packets": Counter(_ib("unicast_packets_transmitted_total")),
    "VL15_dropped": Counter(_ib("vl15_dropped_total"), 1, 16),
}
"""``ports/<n>/counters/`` file -> counter. Widths are the kernel's PMA table; data and packet
counters are 32 bits only without the extended set, so for them only the exact 32-bit ceiling
counts as saturated."""

LEGACY_COUNTERS: dict[str, Counter] = {
    "port_multicast_rcv_packets": Counter(_ib("legacy_multicast_packets_received_total")),
    "port_multicast_xmit_packets": Counter(_ib("legacy_multicast_packets_transmitted_total")),
    "port_rcv_data_64": Counter(_ib("legacy_data_received_bytes_total"), OCTETS_PER_WORD),
    "port_rcv_packets_64": Counter(_ib("legacy_packets_received_total")),
    "port_unicast_rcv_packets": Counter(_ib("legacy_unicast_packets_received_total")),
    "port_unicast_xmit_packets": Counter(_ib("legacy_unicast_packets_transmitted_total")),
    "port_xmit_data_64": Counter(_ib("legacy_data_transmitted_bytes_total"), OCTETS_PER_WORD),
    "port_xmit_packets_64": Counter(_ib("legacy_packets_transmitted_total")),
}
"""``ports/<n>/counters_ext/`` (kernels before 4.5) file -> counter."""

HW_COUNTERS: dict[str, Counter] = {
    "duplicate_request": Counter(_ib("duplicate_requests_packets_total")),
    "implied_nak_seq_err": Counter(_ib("implied_nak_seq_errors_total")),
    "local_ack_timeout_err": Counter(_ib("local_ack_timeout_errors_total")),
    "np_cnp_sent": Counter(_ib("np_cnp_packets_sent_total")),
    "np_ecn_marked_roce_packets": Counter(_ib("np_ecn_marked_roce_packets_received_total")),
    "out_of_buffer": Counter(_ib("out_of_buffer_drops_total")),
    "out_of_sequence": Counter(_ib("out_of_sequence_packets_received_total")),
    "packet_seq_err": Counter(_ib("packet_sequence_errors_total")),
    "req_cqe_error": Counter(_ib("req_cqes_errors_total")),
    "req_cqe_flush_error": Counter(_ib("req_cqes_flush_errors_total")),
    "req_remote_access_errors": Counter(_ib("req_remote_access_errors_total")),
    "req_remote_invalid_request": Counter(_ib("req_remote_invalid_request_errors_total")),
    "resp_cqe_error": Counter(_ib("resp_cqes_errors_total")),
    "resp_cqe_flush_error": Counter(_ib("resp_cqes_flush_errors_total")),
    "resp_local_length_error": Counter(_ib("resp_local_length_errors_total")),
    "resp_remote_access_errors": Counter(_ib("resp_remote_access_errors_total")),
    "rnr_nak_retry_err": Counter(_ib("rnr_nak_retry_packets_received_total")),
    "roce_adp_retrans": Counter(_ib("roce_adp_retransmits_total")),
    "roce_adp_retrans_to": Counter(_ib("roce_adp_retransmits_timeout_total")),
    "roce_slow_restart": Counter(_ib("roce_slow_restart_used_total")),
    "roce_slow_restart_cnps": Counter(_ib("roce_slow_restart_cnps_total")),
    "roce_slow_restart_trans": Counter(_ib("roce_slow_restart_total")),
    "rp_cnp_handled": Counter(_ib("rp_cnp_packets_handled_total")),
    "rp_cnp_ignored": Counter(_ib("rp_cnp_ignored_packets_received_total")),
    "rx_atomic_requests": Counter(_ib("rx_atomic_requests_total")),
    "rx_dct_connect": Counter(_ib("rx_dct_connect_requests_total")),
    "rx_icrc_encapsulated": Counter(_ib("rx_icrc_encapsulated_errors_total")),
    "rx_read_requests": Counter(_ib("rx_read_requests_total")),
    "rx_write_requests": Counter(_ib("rx_write_requests_total")),
    # Newer mlx5 counters node_exporter does not read: a QP that exhausted its transport (or
    # receiver-not-ready) retries went to the error state, which fails an NCCL or MPI job.
    "req_transport_retries_exceeded": Counter(
        "dcmon_infiniband_req_transport_retries_exceeded_total"
    ),
    "req_rnr_retries_exceeded": Counter("dcmon_infiniband_req_rnr_retries_exceeded_total"),
}
"""``ports/<n>/hw_counters/`` file -> counter (``lifespan`` is handled apart: a gauge)."""

FileReader = Callable[[int, str], str | None]
"""Reads attribute ``name`` of the folder open as ``dir_fd``: its stripped text, or None when the
kernel refuses it (the collector leaves the reading out)."""

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
RELIST_EVERY = 60
"""Collections between two listings of a counter folder (its files are fixed by the driver)."""


def read_at(dir_fd: int, name: str) -> str | None:
    """Returns: the stripped text of attribute ``name`` of the folder ``dir_fd``, or None.

    One ``openat`` and one ``read``: the kernel resolves the short name against the open
    folder instead of walking the long ``/sys/class/infiniband/...`` path for every counter.
    Every ``OSError`` (EINVAL from a PMA query that failed, EACCES, ENOENT) means no reading.
    """
    return read_attribute(name, dir_fd)


def _open_folder(name: str | Path, dir_fd: int | None = None) -> int | None:
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=dir_fd)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _listing(dir_fd: int) -> list[str]:
    with os.scandir(dir_fd) as listing:
        return [entry.name for entry in listing]


def parse_state(path: str, text: str) -> int:
    """Returns: the number of a ``state``/``phys_state`` text (``4: ACTIVE`` -> 4).

    Raises:
        MalformedFileError: the text is not ``<number>: <name>``.
    """
    number, colon, _ = text.partition(":")
    if not colon:
        raise MalformedFileError(path, f"expected '<id>: <name>', found {text[:40]!r}")
    return parse_int(path, number.strip())


def parse_rate(path: str, text: str) -> float:
    """Returns: the bytes per second of a ``rate`` text (``400 Gb/sec (4X NDR)`` -> 5e10).

    Raises:
        MalformedFileError: the text does not start with a number of Gb/s.
    """
    number, _, rest = text.partition(" ")
    try:
        gbits = float(number)
    except ValueError:
        raise MalformedFileError(
            path, f"expected '<Gb/s> Gb/sec ...', found {text[:40]!r}"
        ) from None
    if not rest.startswith("Gb/sec"):
        raise MalformedFileError(path, f"expected '<Gb/s> Gb/sec ...', found {text[:40]!r}")
    return float(int(gbits * BYTES_PER_SECOND_PER_GBIT))


class InfinibandCollector:
    """Reads every RDMA device's ports and counters.

    Args:
        paths: where sysfs is.
        read_file: reads one attribute of an open folder (tests inject one that refuses a
            counter as a driver does).
    """

    name = "infiniband"

    def __init__(self, paths: HostPaths, read_file: FileReader = read_at) -> None:
        self._root = paths.sys / "class" / "infiniband"
        self._read = read_file
        # counter folder -> the names in it this collector reads, listed again every
        # RELIST_EVERY collections (a firmware update can add hw_counters)
        self._names: dict[str, tuple[str, ...]] = {}
        self._collections = 0

    def collect(self, now: float) -> list[Sample]:
        """Returns: port states, rates, counters and device info; nothing without RDMA devices.

        Raises:
            MalformedFileError: a state, rate or counter file does not parse.
        """
        root = _open_folder(self._root)
        if root is None:
            return []
        if self._collections % RELIST_EVERY == 0:
            self._names.clear()
        self._collections += 1
        samples: list[Sample] = []
        try:
            for device in sorted(_listing(root)):
                folder = _open_folder(device, root)
                if folder is None:
                    continue  # not a device folder, or removed while being listed
                try:
                    self._device(folder, device, samples)
                finally:
                    os.close(folder)
        finally:
            os.close(root)
        return samples

    def _device(self, folder: int, device: str, samples: list[Sample]) -> None:
        read = self._read
        info = {
            "device": device,
            "board_id": read(folder, "board_id") or "",
            "firmware_version": read(folder, "fw_ver") or "",
            "hca_type": read(folder, "hca_type") or "",
        }
        samples.append(Sample(INFO_METRIC, info, 1.0))
        ports = _open_folder("ports", folder)
        if ports is None:
            return
        try:
            numbers = sorted((int(name), name) for name in _listing(ports) if name.isdigit())
            for number, name in numbers:
                port = _open_folder(name, ports)
                if port is None:
                    continue
                labels = {"device": device, "port": str(number)}
                try:
                    self._port(port, f"{self._root}/{device}/ports/{name}", labels, samples)
                finally:
                    os.close(port)
        finally:
            os.close(ports)

    def _port(self, port: int, where: str, labels: dict[str, str], samples: list[Sample]) -> None:
        read = self._read
        for file_name, metric in (("state", STATE_METRIC), ("phys_state", PHYSICAL_STATE_METRIC)):
            text = read(port, file_name)
            if text:
                state = parse_state(f"{where}/{file_name}", text)
                samples.append(Sample(metric, dict(labels), float(state)))
        rate = read(port, "rate")
        if rate:
            samples.append(Sample(RATE_METRIC, dict(labels), parse_rate(f"{where}/rate", rate)))
        counters = self._counters(port, "counters", where, COUNTERS, labels, samples)
        if counters is not None:
            saturated = saturated_counters(counters)
            samples.append(Sample(SATURATED_METRIC, dict(labels), float(saturated)))
        self._counters(port, "counters_ext", where, LEGACY_COUNTERS, labels, samples)
        self._counters(port, "hw_counters", where, HW_COUNTERS, labels, samples)

    def _counters(
        self,
        port: int,
        folder_name: str,
        where: str,
        table: Mapping[str, Counter],
        labels: dict[str, str],
        samples: list[Sample],
    ) -> dict[str, int] | None:
        """Appends one counter folder's counters; returns file -> raw value (None: no folder)."""
        folder = _open_folder(folder_name, port)
        if folder is None:
            return None
        raw: dict[str, int] = {}
        read = self._read
        key = f"{where}/{folder_name}"
        try:
            names = self._names.get(key)
            if names is None:
                wanted = set(table) | ({"lifespan"} if table is HW_COUNTERS else set())
                names = self._names[key] = tuple(sorted(set(_listing(folder)) & wanted))
            for file_name in names:
                text = read(folder, file_name)
                if text is None or text == NO_PMA:
                    continue
                try:
                    value = int(text)
                except ValueError:  # the path is built only for the error
                    value = parse_int(f"{where}/{folder_name}/{file_name}", text)
                counter = table.get(file_name)
                if counter is None:  # hw_counters/lifespan, in milliseconds
                    samples.append(Sample(LIFESPAN_METRIC, labels, value / 1000))
                    continue
                raw[file_name] = value
                # the port's samples share one labels dict: nothing downstream changes labels
                samples.append(Sample(counter.metric, labels, float(value * counter.factor)))
        finally:
            os.close(folder)
        return raw


def saturated_counters(raw: Mapping[str, int]) -> int:
    """Returns: how many PMA counters of one port read their field's all-ones ceiling."""
    count = 0
    for file_name, value in raw.items():
        width = COUNTERS[file_name].width_bits
        if width is not None and value == (1 << width) - 1:
            count += 1
    return count
