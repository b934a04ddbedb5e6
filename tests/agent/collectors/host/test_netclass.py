"""The netclass collector: link state per interface from /sys/class/net."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.collectors.host._files import MalformedFileError
from agent.collectors.host.netclass import NetclassCollector
from agent.collectors.host.options import HostOptions
from tests.catalog_check import assert_conforms

from ._helpers import GPU_SERVER, RECORDED, label_values, names, tree_paths, value, write_tree


def test_recorded_vm_link_state() -> None:
    samples = NetclassCollector(tree_paths(RECORDED), HostOptions()).collect(0.0)

    assert value(samples, "node_network_up", device="eth0") == 1
    assert value(samples, "node_network_up", device="lo") == 0  # operstate "unknown"
    assert value(samples, "node_network_up", device="ifb0") == 0
    assert value(samples, "node_network_mtu_bytes", device="eth0") == 1400
    assert value(samples, "node_network_carrier", device="lo") == 1
    # eth0 reports speed -1 (virtio: unknown); ifb0 and lo refuse it: no speed at all.
    assert "node_network_speed_bytes" not in names(samples)
    assert label_values(samples, "node_network_carrier", "device") == {"eth0", "lo"}
    assert_conforms(samples, source="netclass")


def test_gpu_server_speeds_in_bytes_per_second_and_pod_interfaces_excluded() -> None:
    samples = NetclassCollector(tree_paths(GPU_SERVER), HostOptions()).collect(0.0)

    assert label_values(samples, "node_network_up", "device") == {
        "lo",
        "eno1",
        "ens1f0np0",
        "ens1f1np1",
        "ibp12s0",
        "bond0",
        "docker0",
        "cni0",
    }
    assert value(samples, "node_network_speed_bytes", device="eno1") == 125_000_000
    assert value(samples, "node_network_speed_bytes", device="ens1f0np0") == 25_000_000_000
    assert value(samples, "node_network_speed_bytes", device="ibp12s0") == 50_000_000_000
    assert label_values(samples, "node_network_speed_bytes", "device") == {
        "eno1",
        "ens1f0np0",
        "ibp12s0",
        "bond0",
    }
    assert value(samples, "node_network_mtu_bytes", device="ibp12s0") == 4092
    assert value(samples, "node_network_up", device="ens1f1np1") == 0
    assert value(samples, "node_network_carrier", device="docker0") == 0
    assert "ens1f1np1" not in label_values(samples, "node_network_carrier", "device")
    assert_conforms(samples, source="netclass")


def test_no_sys_class_net_yields_nothing(scratch: Path) -> None:
    assert NetclassCollector(write_tree(scratch, {}), HostOptions()).collect(0.0) == []


def test_interface_that_vanished_mid_read_yields_nothing(scratch: Path) -> None:
    paths = write_tree(scratch, {"sys/class/net/eth0/mtu": "1500\n"})
    (scratch / "sys/class/net/veth0gone").mkdir()

    samples = NetclassCollector(paths, HostOptions(network_devices_exclude="")).collect(0.0)

    assert [(s.name, s.labels["device"]) for s in samples] == [("node_network_mtu_bytes", "eth0")]


def test_garbage_in_an_attribute_raises(scratch: Path) -> None:
    paths = write_tree(scratch, {"sys/class/net/eth0/mtu": "jumbo\n"})

    with pytest.raises(MalformedFileError, match="mtu"):
        NetclassCollector(paths, HostOptions()).collect(0.0)
