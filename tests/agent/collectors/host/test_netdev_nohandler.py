"""The netdev collector's rx_nohandler counter, read from sysfs for the interfaces it reports."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.collectors.host._files import MalformedFileError
from agent.collectors.host.netdev import NetdevCollector
from agent.collectors.host.options import HostOptions

from ._helpers import GPU_SERVER, RECORDED, tree_paths, write_tree

NOHANDLER = "node_network_receive_nohandler_total"
NET_DEV = (
    "Inter-|   Receive                                                |  Transmit\n"
    " face |bytes    packets errs drop fifo frame compressed multicast"
    "|bytes    packets errs drop fifo colls carrier compressed\n"
    "  eth0: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"
    "veth9: 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"
)


def nohandler(tree: Path, options: HostOptions | None = None) -> dict[str, float]:
    samples = NetdevCollector(tree_paths(tree), options or HostOptions()).collect(0.0)
    return {s.labels["device"]: s.value for s in samples if s.name == NOHANDLER}


def test_recorded_vm_every_interface_has_it() -> None:
    assert nohandler(RECORDED) == {"lo": 0.0, "ifb0": 0.0, "ifb1": 0.0, "eth0": 0.0}


def test_gpu_server_values_and_interfaces_without_the_attribute_left_out() -> None:
    # docker0 and cni0 have no statistics/ folder in this tree; pod interfaces are excluded.
    assert nohandler(GPU_SERVER) == {
        "lo": 0.0,
        "eno1": 1532.0,
        "ens1f0np0": 0.0,
        "ens1f1np1": 0.0,
        "ibp12s0": 12.0,
        "bond0": 88.0,
    }


def test_only_reported_interfaces_are_read(scratch: Path) -> None:
    write_tree(
        scratch,
        {
            "proc/net/dev": NET_DEV,
            "sys/class/net/eth0/statistics/rx_nohandler": "7\n",
            "sys/class/net/veth9/statistics/rx_nohandler": "not read\n",
            "sys/class/net/eth1/statistics/rx_nohandler": "9\n",
        },
    )

    assert nohandler(scratch) == {"eth0": 7.0}


def test_malformed_attribute_raises(scratch: Path) -> None:
    write_tree(
        scratch,
        {"proc/net/dev": NET_DEV, "sys/class/net/eth0/statistics/rx_nohandler": "many\n"},
    )

    with pytest.raises(MalformedFileError, match="rx_nohandler"):
        NetdevCollector(tree_paths(scratch), HostOptions()).collect(0.0)
