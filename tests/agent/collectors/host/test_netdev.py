"""The netdev collector: column names from the header, interface exclusion."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.collectors.host._files import MalformedFileError
from agent.collectors.host.netdev import NetdevCollector, column_names
from agent.collectors.host.options import HostOptions
from agent.wire.catalog import default_catalog
from tests.catalog_check import assert_conforms

from ._helpers import GPU_SERVER, RECORDED, label_values, tree_paths, value, write_tree

HEADER = (
    " face |bytes    packets errs drop fifo frame compressed multicast"
    "|bytes    packets errs drop fifo colls carrier compressed"
)


def test_header_gives_node_exporter_names_for_all_sixteen_columns() -> None:
    names = column_names(HEADER)

    assert names[:3] == (
        "node_network_receive_bytes_total",
        "node_network_receive_packets_total",
        "node_network_receive_errs_total",
    )
    assert names[13:] == (
        "node_network_transmit_colls_total",
        "node_network_transmit_carrier_total",
        "node_network_transmit_compressed_total",
    )
    from_sysfs = {"node_network_receive_nohandler_total"}
    assert (
        set(names) == {spec.name for spec in default_catalog().from_source("netdev")} - from_sysfs
    )


def test_recorded_vm_interfaces() -> None:
    samples = NetdevCollector(tree_paths(RECORDED), HostOptions()).collect(0.0)

    assert label_values(samples, "node_network_receive_bytes_total", "device") == {
        "lo",
        "ifb0",
        "ifb1",
        "eth0",
    }
    assert value(samples, "node_network_receive_bytes_total", device="eth0") == 97190265
    assert value(samples, "node_network_transmit_packets_total", device="eth0") == 2501
    assert len(samples) == 4 * (16 + 1)  # the columns and rx_nohandler
    assert_conforms(samples, source="netdev")


def test_gpu_server_pod_interfaces_are_excluded_by_default() -> None:
    samples = NetdevCollector(tree_paths(GPU_SERVER), HostOptions()).collect(0.0)

    assert label_values(samples, "node_network_receive_bytes_total", "device") == {
        "lo",
        "eno1",
        "ens1f0np0",
        "ens1f1np1",
        "ibp12s0",
        "bond0",
        "docker0",
        "cni0",
    }
    # eno1: 1 2 3 4 5 678 in errs..multicast, 6 7 8 9 10 11 in errs..compressed
    assert value(samples, "node_network_receive_errs_total", device="eno1") == 1
    assert value(samples, "node_network_receive_frame_total", device="eno1") == 4
    assert value(samples, "node_network_receive_multicast_total", device="eno1") == 678
    assert value(samples, "node_network_transmit_colls_total", device="eno1") == 9
    assert value(samples, "node_network_transmit_carrier_total", device="eno1") == 10
    assert value(samples, "node_network_receive_bytes_total", device="ibp12s0") == 55555555555555
    assert_conforms(samples, source="netdev")


def test_empty_exclusion_reports_every_interface() -> None:
    samples = NetdevCollector(
        tree_paths(GPU_SERVER), HostOptions(network_devices_exclude="")
    ).collect(0.0)

    devices = label_values(samples, "node_network_receive_bytes_total", "device")
    assert {"veth3a1b2c4", "cali9f8e7d6c5b4", "lxc12ab34cd"} <= devices


@pytest.mark.parametrize(
    "text",
    [
        "Inter-|   Receive |  Transmit\n",
        f"Inter-| Receive | Transmit\n{HEADER}\n  eth0: 1 2 3\n",
        f"Inter-| Receive | Transmit\n{HEADER}\n  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 x\n",
        "Inter-| Receive | Transmit\n face bytes packets\n",
        f"Inter-| Receive | Transmit\n{HEADER}\n  eth0 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n",
    ],
    ids=["no-column-line", "short-row", "non-integer", "bad-header", "no-colon"],
)
def test_malformed_net_dev_raises(scratch: Path, text: str) -> None:
    paths = write_tree(scratch, {"proc/net/dev": text})

    with pytest.raises(MalformedFileError, match="dev"):
        NetdevCollector(paths, HostOptions()).collect(0.0)
