"""The arp collector: neighbour entries per interface, pod interfaces left out by default."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.collectors.host._files import MalformedFileError
from agent.collectors.host.arp import ArpCollector
from agent.collectors.host.options import HostOptions
from tests.catalog_check import assert_conforms

from ._helpers import GPU_SERVER, RECORDED, tree_paths, write_tree

HEADER = "IP address       HW type     Flags       HW address            Mask     Device\n"


def counts(tree: Path, options: HostOptions | None = None) -> dict[str, float]:
    samples = ArpCollector(tree_paths(tree), options or HostOptions()).collect(0.0)
    assert_conforms(samples, source="arp")
    return {s.labels["device"]: s.value for s in samples}


def test_recorded_vm_has_its_gateway() -> None:
    assert counts(RECORDED) == {"eth0": 1.0}


def test_gpu_server_counts_incomplete_and_ipoib_entries_and_excludes_pods() -> None:
    assert counts(GPU_SERVER) == {
        "eno1": 3.0,
        "bond0": 3.0,
        "ibp12s0": 2.0,
        "docker0": 1.0,
        "cni0": 1.0,
    }


def test_empty_exclusion_reports_pod_interfaces() -> None:
    found = counts(GPU_SERVER, HostOptions(network_devices_exclude=""))

    assert found["cali9f8e7d6c5b4"] == 1.0


def test_no_ipv4_or_no_entries_yields_nothing(scratch: Path) -> None:
    assert counts(scratch) == {}
    write_tree(scratch, {"proc/net/arp": HEADER})
    assert counts(scratch) == {}


@pytest.mark.parametrize(
    "entry",
    ["10.0.0.1  0x1  0x2  3c:fd:fe:a1:b2:01  *\n", "10.0.0.1 0x1 0x2 3c:fd:fe:a1:b2:01 * eno1 x\n"],
    ids=["five-columns", "seven-columns"],
)
def test_malformed_entry_raises(scratch: Path, entry: str) -> None:
    paths = write_tree(scratch, {"proc/net/arp": HEADER + entry})

    with pytest.raises(MalformedFileError, match="arp"):
        ArpCollector(paths, HostOptions()).collect(0.0)
