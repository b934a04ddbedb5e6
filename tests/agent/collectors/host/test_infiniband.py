"""The infiniband collector on a recorded ConnectX node: node_exporter's names and units, RoCE
ports, saturated and unreadable counters, and what it does with files that do not parse."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from agent.collectors.host import infiniband
from agent.collectors.host._files import MalformedFileError
from agent.collectors.host.infiniband import (
    InfinibandCollector,
    parse_rate,
    parse_state,
    read_at,
)
from tests.catalog_check import assert_conforms

from ._helpers import DATA, RECORDED, label_values, names, tree_paths, value, write_tree

CONNECTX = DATA / "connectx"
PORT0 = {"device": "mlx5_0", "port": "1"}
HDR = {"device": "mlx5_1", "port": "1"}
DOWN = {"device": "mlx5_2", "port": "1"}
ROCE = {"device": "mlx5_3", "port": "1"}


def connectx() -> list[infiniband.Sample]:
    return InfinibandCollector(tree_paths(CONNECTX)).collect(0.0)


def test_ndr_port_state_rate_and_traffic_in_octets() -> None:
    samples = connectx()

    assert value(samples, "node_infiniband_state_id", **PORT0) == 4
    assert value(samples, "node_infiniband_physical_state_id", **PORT0) == 5
    assert value(samples, "node_infiniband_rate_bytes_per_second", **PORT0) == 50e9
    # the kernel counts 4-octet words
    assert value(samples, "node_infiniband_port_data_received_bytes_total", **PORT0) == float(
        15532118703421077 * 4
    )
    assert value(samples, "node_infiniband_port_data_transmitted_bytes_total", **PORT0) == float(
        15901277356912003 * 4
    )
    assert value(samples, "node_infiniband_port_packets_received_total", **PORT0) == 14871203346102
    assert value(samples, "node_infiniband_unicast_packets_transmitted_total", **PORT0) == float(
        15219938411500
    )
    assert value(samples, "node_infiniband_symbol_error_total", **PORT0) == 3
    assert value(samples, "node_infiniband_link_downed_total", **PORT0) == 1
    assert value(samples, "node_infiniband_port_discards_transmitted_total", **PORT0) == 7
    assert value(samples, "node_infiniband_vl15_dropped_total", **PORT0) == 0
    assert value(samples, "node_infiniband_port_errors_received_total", **PORT0) == 2
    assert value(samples, "dcmon_infiniband_req_transport_retries_exceeded_total", **PORT0) == 2
    assert value(samples, "node_infiniband_local_ack_timeout_errors_total", **PORT0) == 12
    assert value(samples, "node_infiniband_lifespan_seconds", **PORT0) == 0.01
    assert_conforms(samples, source="infiniband")


def test_device_info_for_every_adapter() -> None:
    infos = {s.labels["device"]: s.labels for s in connectx() if s.name == "node_infiniband_info"}

    assert set(infos) == {"mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3"}
    assert infos["mlx5_0"] == {
        "device": "mlx5_0",
        "board_id": "MT_0000000838",
        "firmware_version": "28.39.1002",
        "hca_type": "MT4129",
    }
    assert infos["mlx5_3"]["hca_type"] == "MT4125"


def test_saturated_32_bit_transmit_wait_is_reported_as_read_and_counted() -> None:
    samples = connectx()

    assert value(samples, "node_infiniband_port_transmit_wait_total", **PORT0) == 2**32 - 1
    assert value(samples, "dcmon_infiniband_port_saturated_counters", **PORT0) == 1
    assert value(samples, "node_infiniband_port_transmit_wait_total", **HDR) == 1853320187
    assert value(samples, "dcmon_infiniband_port_saturated_counters", **HDR) == 0


def test_a_counter_the_pma_could_not_answer_is_left_out_alone() -> None:
    samples = connectx()
    relay = "node_infiniband_port_receive_switch_relay_errors_total"

    assert {s.labels["device"] for s in samples if s.name == relay} == {
        "mlx5_0",
        "mlx5_2",
        "mlx5_3",
    }
    assert value(samples, "node_infiniband_port_receive_remote_physical_errors_total", **HDR) == 0
    assert value(samples, "node_infiniband_port_transmit_wait_total", **HDR) == 1853320187


def test_a_port_that_is_down_keeps_its_counters() -> None:
    samples = connectx()

    assert value(samples, "node_infiniband_state_id", **DOWN) == 1
    assert value(samples, "node_infiniband_physical_state_id", **DOWN) == 2
    assert value(samples, "node_infiniband_rate_bytes_per_second", **DOWN) == 1.25e9  # 4X SDR
    assert value(samples, "node_infiniband_link_downed_total", **DOWN) == 2
    assert value(samples, "node_infiniband_port_data_received_bytes_total", **DOWN) > 0


def test_roce_port_has_the_pma_counters_and_the_congestion_counters() -> None:
    samples = connectx()

    assert value(samples, "node_infiniband_rate_bytes_per_second", **ROCE) == 12.5e9
    assert value(samples, "node_infiniband_port_data_received_bytes_total", **ROCE) == float(
        1702331876120044 * 4
    )
    assert value(samples, "node_infiniband_np_cnp_packets_sent_total", **ROCE) == 1843
    assert value(samples, "node_infiniband_rp_cnp_packets_handled_total", **ROCE) == 25311
    assert value(samples, "node_infiniband_np_ecn_marked_roce_packets_received_total", **ROCE) == (
        20977
    )
    assert value(samples, "node_infiniband_rp_cnp_ignored_packets_received_total", **ROCE) == 0
    assert value(samples, "node_infiniband_out_of_sequence_packets_received_total", **ROCE) == 17
    assert value(samples, "node_infiniband_packet_sequence_errors_total", **ROCE) == 3
    assert value(samples, "node_infiniband_implied_nak_seq_errors_total", **ROCE) == 1
    assert value(samples, "node_infiniband_roce_adp_retransmits_total", **ROCE) == 9
    # InfiniBand ports of the same driver have no congestion-control counters
    cnp = label_values(samples, "node_infiniband_np_cnp_packets_sent_total", "device")
    assert cnp == {"mlx5_3"}


def test_no_rdma_devices_yields_nothing() -> None:
    assert InfinibandCollector(tree_paths(RECORDED)).collect(0.0) == []


def test_a_counter_the_kernel_refuses_is_left_out() -> None:
    """Current kernels answer EINVAL when a port's PMA query fails; ``read_at`` maps that to
    None (``test_read_at_maps_every_oserror_to_none``)."""

    def refuse_symbol_errors(dir_fd: int, name: str) -> str | None:
        return None if name == "symbol_error" else read_at(dir_fd, name)

    samples = InfinibandCollector(tree_paths(CONNECTX), refuse_symbol_errors).collect(0.0)

    assert "node_infiniband_symbol_error_total" not in names(samples)
    assert value(samples, "node_infiniband_link_downed_total", **PORT0) == 1


def test_read_at_maps_every_oserror_to_none(monkeypatch: pytest.MonkeyPatch) -> None:
    folder = os.open(CONNECTX / "sys/class/infiniband/mlx5_0/ports/1/counters", os.O_RDONLY)
    try:
        assert read_at(folder, "symbol_error") == "3"
        assert read_at(folder, "no_such_counter") is None

        def einval(fd: int, size: int) -> bytes:
            raise OSError(errno.EINVAL, "Invalid argument")

        monkeypatch.setattr(infiniband.os, "read", einval)
        assert read_at(folder, "symbol_error") is None
    finally:
        os.close(folder)


def ib_port(root: str, **files: str) -> dict[str, str]:
    base = {
        f"{root}/state": "4: ACTIVE\n",
        f"{root}/phys_state": "5: LinkUp\n",
        f"{root}/rate": "56 Gb/sec (4X FDR)\n",
        f"{root}/link_layer": "InfiniBand\n",
    }
    return base | {f"{root}/{name}": text for name, text in files.items()}


def test_pre_4_5_counters_ext_are_the_legacy_metrics(scratch: Path) -> None:
    port = "sys/class/infiniband/mlx4_0/ports/1"
    paths = write_tree(
        scratch,
        {
            "sys/class/infiniband/mlx4_0/fw_ver": "2.42.5000\n",
            **ib_port(
                port,
                **{
                    "counters/port_xmit_data": "4294967295\n",  # the 32-bit PMA field, stuck
                    "counters/port_rcv_data": "4294967295\n",
                    "counters/symbol_error": "65535\n",
                    "counters/link_downed": "12\n",
                    "counters_ext/port_xmit_data_64": "91202217732211\n",
                    "counters_ext/port_rcv_data_64": "88123001217339\n",
                    "counters_ext/port_unicast_xmit_packets": "73311220911\n",
                    "counters_ext/port_multicast_rcv_packets": "1200\n",
                },
            ),
        },
    )

    samples = InfinibandCollector(paths).collect(0.0)
    labels = {"device": "mlx4_0", "port": "1"}

    assert value(samples, "node_infiniband_legacy_data_transmitted_bytes_total", **labels) == (
        91202217732211 * 4
    )
    assert value(samples, "node_infiniband_legacy_data_received_bytes_total", **labels) == (
        88123001217339 * 4
    )
    assert value(samples, "node_infiniband_legacy_unicast_packets_transmitted_total", **labels) == (
        73311220911
    )
    assert value(samples, "node_infiniband_port_data_transmitted_bytes_total", **labels) == (
        (2**32 - 1) * 4
    )
    # both 32-bit data fields and the 16-bit symbol error counter sit at their ceiling
    assert value(samples, "dcmon_infiniband_port_saturated_counters", **labels) == 3
    assert value(samples, "node_infiniband_rate_bytes_per_second", **labels) == 7e9
    info = [s.labels for s in samples if s.name == "node_infiniband_info"]
    assert info == [
        {"device": "mlx4_0", "board_id": "", "firmware_version": "2.42.5000", "hca_type": ""}
    ]
    assert_conforms(samples, source="infiniband")


def test_a_64_bit_counter_past_two_to_the_32_is_not_saturated(scratch: Path) -> None:
    port = "sys/class/infiniband/mlx5_0/ports/1"
    paths = write_tree(
        scratch,
        ib_port(
            port,
            **{
                "counters/port_xmit_data": f"{2**32}\n",
                "counters/port_xmit_packets": f"{2**32 - 2}\n",
                "counters/link_error_recovery": "255\n",  # 8 bits: saturated
                "counters/local_link_integrity_errors": "14\n",  # 4 bits, one short
            },
        ),
    )

    samples = InfinibandCollector(paths).collect(0.0)

    assert value(samples, "dcmon_infiniband_port_saturated_counters", **PORT0) == 1


def test_a_port_without_counter_folders_reports_state_only(scratch: Path) -> None:
    paths = write_tree(scratch, ib_port("sys/class/infiniband/rxe0/ports/1"))

    samples = InfinibandCollector(paths).collect(0.0)

    assert names(samples) == {
        "node_infiniband_info",
        "node_infiniband_state_id",
        "node_infiniband_physical_state_id",
        "node_infiniband_rate_bytes_per_second",
    }


def test_a_counter_added_by_the_driver_is_found_at_the_next_listing(scratch: Path) -> None:
    port = "sys/class/infiniband/mlx5_0/ports/1"
    paths = write_tree(scratch, ib_port(port, **{"hw_counters/out_of_buffer": "7\n"}))
    collector = InfinibandCollector(paths)
    assert "node_infiniband_out_of_sequence_packets_received_total" not in names(
        collector.collect(0.0)
    )
    (scratch / port / "hw_counters" / "out_of_sequence").write_text("11\n")

    for _ in range(infiniband.RELIST_EVERY - 1):
        assert "node_infiniband_out_of_sequence_packets_received_total" not in names(
            collector.collect(0.0)
        )
    assert (
        value(
            collector.collect(0.0),
            "node_infiniband_out_of_sequence_packets_received_total",
            **PORT0,
        )
        == 11
    )


@pytest.mark.parametrize(
    ("relative", "text", "where"),
    [
        ("counters/symbol_error", "many\n", "counters/symbol_error"),
        ("hw_counters/np_cnp_sent", "-\n", "hw_counters/np_cnp_sent"),
        ("state", "ACTIVE\n", "state"),
        ("phys_state", "x: LinkUp\n", "phys_state"),
        ("rate", "fast\n", "rate"),
    ],
)
def test_a_file_that_does_not_parse_fails_the_collection(
    scratch: Path, relative: str, text: str, where: str
) -> None:
    port = "sys/class/infiniband/mlx5_0/ports/1"
    paths = write_tree(scratch, {**ib_port(port), f"{port}/{relative}": text})

    with pytest.raises(MalformedFileError, match=where):
        InfinibandCollector(paths).collect(0.0)


@pytest.mark.parametrize(
    ("text", "bytes_per_second"),
    [
        ("2.5 Gb/sec (1X SDR)", 312_500_000),
        ("56 Gb/sec (4X FDR)", 7e9),
        ("200 Gb/sec (2X NDR)", 25e9),
        ("800 Gb/sec (4X XDR)", 100e9),
    ],
)
def test_parse_rate(text: str, bytes_per_second: float) -> None:
    assert parse_rate("rate", text) == bytes_per_second


def test_parse_state() -> None:
    assert parse_state("state", "5: ACTIVE_DEFER") == 5
    assert parse_state("phys_state", "7: Phy Test") == 7
