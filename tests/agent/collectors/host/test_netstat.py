"""The netstat collector: node_exporter's default fields from netstat, snmp and snmp6."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from agent.collectors.host._files import MalformedFileError
from agent.collectors.host.netstat import DEFAULT_FIELDS, NetstatCollector
from agent.wire.catalog import default_catalog
from tests.catalog_check import assert_conforms

from ._helpers import GPU_SERVER, RECORDED, names, tree_paths, value, write_tree

GAUGES = {"node_netstat_Ip_Forwarding", "node_netstat_Tcp_CurrEstab"}


def file_keys(root: Path) -> set[str]:
    """Returns: every ``Proto_Field`` of a tree's three files, parsed independently."""
    keys: set[str] = set()
    for name in ("netstat", "snmp"):
        lines = (root / "proc" / "net" / name).read_text().splitlines()
        for header in lines[::2]:
            protocol, *fields = header.split()
            keys |= {f"{protocol[:-1]}_{field}" for field in fields}
    for line in (root / "proc" / "net" / "snmp6").read_text().splitlines():
        field = line.split()[0]
        six = field.index("6") + 1
        keys.add(f"{field[:six]}_{field[six:]}")
    return keys


def test_recorded_vm_reports_every_selected_field_with_its_value() -> None:
    samples = NetstatCollector(tree_paths(RECORDED)).collect(0.0)

    selected = {key for key in file_keys(RECORDED) if re.search(DEFAULT_FIELDS, key)}
    assert names(samples) == {f"node_netstat_{key}" for key in selected}
    assert len(samples) == 42
    assert value(samples, "node_netstat_TcpExt_TCPOFOQueue") == 0
    assert value(samples, "node_netstat_TcpExt_TCPTimeouts") == 2
    assert value(samples, "node_netstat_IpExt_InOctets") == 341340253
    assert value(samples, "node_netstat_IpExt_OutOctets") == 5686743
    assert value(samples, "node_netstat_Ip_Forwarding") == 2
    assert value(samples, "node_netstat_Tcp_ActiveOpens") == 209
    assert value(samples, "node_netstat_Tcp_InSegs") == 21965
    assert value(samples, "node_netstat_Tcp_RetransSegs") == 33
    assert value(samples, "node_netstat_Tcp_OutRsts") == 38
    assert value(samples, "node_netstat_Udp_OutDatagrams") == 44
    assert value(samples, "node_netstat_Ip6_OutOctets") == 880
    assert value(samples, "node_netstat_Icmp6_OutMsgs") == 9
    assert value(samples, "node_netstat_Icmp6_InErrors") == 1
    assert_conforms(samples, source="netstat")


def test_unselected_fields_stay_out() -> None:
    emitted = names(NetstatCollector(tree_paths(RECORDED)).collect(0.0))

    for left_out in (
        "Tcp_MaxConn",
        "Tcp_RtoMin",
        "Ip_InReceives",
        "TcpExt_TW",
        "Udp6_InCsumErrors",
    ):
        assert f"node_netstat_{left_out}" not in emitted


def test_gpu_server_values_and_an_unlisted_selected_field_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="agent.collectors.host.netstat")
    collector = NetstatCollector(tree_paths(GPU_SERVER))

    samples = collector.collect(0.0)
    again = collector.collect(1.0)

    assert value(samples, "node_netstat_TcpExt_ListenOverflows") == 3071
    assert value(samples, "node_netstat_TcpExt_ListenDrops") == 3075
    assert value(samples, "node_netstat_TcpExt_TCPRcvQDrop") == 17
    assert value(samples, "node_netstat_TcpExt_TCPOFOQueue") == 4418129
    assert value(samples, "node_netstat_IpExt_OutOctets") == 887766554433221
    assert value(samples, "node_netstat_Ip_Forwarding") == 1
    assert value(samples, "node_netstat_Tcp_RetransSegs") == 4567890
    assert value(samples, "node_netstat_Udp_RcvbufErrors") == 1501
    assert value(samples, "node_netstat_UdpLite_InErrors") == 0
    assert value(samples, "node_netstat_Udp6_RcvbufErrors") == 2
    assert value(samples, "node_netstat_Ip6_InOctets") == 81234567
    assert samples == again
    assert [r.getMessage() for r in caplog.records] == [
        "netstat field 'TcpExt_ListenFutureField' is not in the catalog; skipped"
    ]


def test_catalog_lists_exactly_the_default_selection_untyped() -> None:
    specs = default_catalog().from_source("netstat")

    keys = {spec.name.removeprefix("node_netstat_") for spec in specs}
    recorded = {key for key in file_keys(RECORDED) if re.search(DEFAULT_FIELDS, key)}
    assert keys == recorded
    for spec in specs:
        assert spec.type == "untyped"
        assert spec.monotonic is (spec.name not in GAUGES), spec.name


def test_without_snmp6_the_ipv4_fields_remain(scratch: Path) -> None:
    net = RECORDED / "proc" / "net"
    paths = write_tree(
        scratch,
        {f"proc/net/{name}": (net / name).read_text() for name in ("netstat", "snmp")},
    )

    samples = NetstatCollector(paths).collect(0.0)

    assert len(samples) == 42 - 12
    assert not {name for name in names(samples) if "6_" in name}


def test_changed_headers_are_followed(scratch: Path) -> None:
    first = "Tcp: ActiveOpens InSegs\nTcp: 5 6\n"
    paths = write_tree(scratch, {"proc/net/netstat": "", "proc/net/snmp": first})
    collector = NetstatCollector(paths)
    assert value(collector.collect(0.0), "node_netstat_Tcp_InSegs") == 6

    (scratch / "proc/net/snmp").write_text("Tcp: MaxConn InSegs ActiveOpens\nTcp: -1 60 50\n")
    samples = collector.collect(1.0)

    assert value(samples, "node_netstat_Tcp_InSegs") == 60
    assert value(samples, "node_netstat_Tcp_ActiveOpens") == 50


def test_snmp6_reshaped_under_the_same_line_count_is_reparsed(scratch: Path) -> None:
    paths = write_tree(
        scratch,
        {
            "proc/net/netstat": "",
            "proc/net/snmp": "",
            "proc/net/snmp6": "Ip6InOctets  10\nUdp6NoPorts  3\n",
        },
    )
    collector = NetstatCollector(paths)
    assert value(collector.collect(0.0), "node_netstat_Ip6_InOctets") == 10

    (scratch / "proc/net/snmp6").write_text("Udp6NoPorts  4\nIp6InOctets  11\n")
    samples = collector.collect(1.0)

    assert value(samples, "node_netstat_Ip6_InOctets") == 11
    assert value(samples, "node_netstat_Udp6_NoPorts") == 4


@pytest.mark.parametrize(
    ("file", "text"),
    [
        ("snmp", "Tcp: ActiveOpens InSegs\n"),
        ("snmp", "Tcp: ActiveOpens InSegs\nTcp: 5\n"),
        ("snmp", "Tcp: ActiveOpens InSegs\nUdp: 5 6\n"),
        ("snmp", "Tcp: ActiveOpens InSegs\nTcp: 5 many\n"),
        ("snmp", "Tcp ActiveOpens InSegs\nTcp 5 6\n"),
        ("netstat", "MPTcpExt: A B\nMPTcpExt: 1\n"),
        ("snmp6", "Ip6InOctets\n"),
        ("snmp6", "Ip6InOctets  12x\n"),
    ],
    ids=[
        "no-values-line",
        "short-values",
        "other-protocol",
        "non-integer",
        "no-colon",
        "unselected-short",
        "snmp6-no-value",
        "snmp6-non-integer",
    ],
)
def test_malformed_files_raise(scratch: Path, file: str, text: str) -> None:
    files = {"proc/net/netstat": "", "proc/net/snmp": "", "proc/net/snmp6": ""}
    files[f"proc/net/{file}"] = text
    paths = write_tree(scratch, files)

    with pytest.raises(MalformedFileError, match=file):
        NetstatCollector(paths).collect(0.0)


def test_missing_netstat_is_an_error(scratch: Path) -> None:
    paths = write_tree(scratch, {"proc/net/snmp": ""})

    with pytest.raises(FileNotFoundError):
        NetstatCollector(paths).collect(0.0)
