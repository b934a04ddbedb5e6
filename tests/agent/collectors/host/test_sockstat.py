"""The sockstat collector: socket counts and buffer memory of IPv4 and IPv6."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from agent.collectors.host._files import MalformedFileError
from agent.collectors.host.sockstat import SockstatCollector
from agent.wire.catalog import default_catalog
from tests.catalog_check import assert_conforms

from ._helpers import GPU_SERVER, RECORDED, names, tree_paths, value, write_tree


def test_recorded_vm_values() -> None:
    samples = SockstatCollector(tree_paths(RECORDED), page_size_bytes=4096).collect(0.0)

    assert value(samples, "node_sockstat_sockets_used") == 17
    assert value(samples, "node_sockstat_TCP_inuse") == 5
    assert value(samples, "node_sockstat_TCP_tw") == 40
    assert value(samples, "node_sockstat_TCP_alloc") == 5
    assert value(samples, "node_sockstat_TCP_mem") == 137
    assert value(samples, "node_sockstat_TCP_mem_bytes") == 137 * 4096
    assert value(samples, "node_sockstat_UDP_mem_bytes") == 0
    assert value(samples, "node_sockstat_FRAG6_memory") == 0
    assert names(samples) == {spec.name for spec in default_catalog().from_source("sockstat")}
    assert_conforms(samples, source="sockstat")


def test_gpu_server_values_with_64k_pages() -> None:
    samples = SockstatCollector(tree_paths(GPU_SERVER), page_size_bytes=65536).collect(0.0)

    assert value(samples, "node_sockstat_sockets_used") == 4211
    assert value(samples, "node_sockstat_TCP_tw") == 1290
    assert value(samples, "node_sockstat_TCP_orphan") == 3
    assert value(samples, "node_sockstat_TCP_mem_bytes") == 52341 * 65536
    assert value(samples, "node_sockstat_UDP_mem_bytes") == 129 * 65536
    assert value(samples, "node_sockstat_TCP6_inuse") == 164
    assert value(samples, "node_sockstat_FRAG6_inuse") == 2
    assert value(samples, "node_sockstat_FRAG6_memory") == 4352
    assert len(samples) == 20


def test_page_size_defaults_to_this_machines(scratch: Path) -> None:
    paths = write_tree(scratch, {"proc/net/sockstat": "TCP: inuse 1 mem 3\n"})

    samples = SockstatCollector(paths).collect(0.0)

    assert value(samples, "node_sockstat_TCP_mem_bytes") == 3 * os.sysconf("SC_PAGE_SIZE")


def test_ipv6_off_leaves_only_ipv4(scratch: Path) -> None:
    text = (RECORDED / "proc/net/sockstat").read_text()
    paths = write_tree(scratch, {"proc/net/sockstat": text})

    samples = SockstatCollector(paths, page_size_bytes=4096).collect(0.0)

    assert "node_sockstat_TCP6_inuse" not in names(samples)
    assert len(samples) == 14


def test_sockets_used_comes_from_the_ipv4_file_only(scratch: Path) -> None:
    paths = write_tree(
        scratch,
        {"proc/net/sockstat": "sockets: used 9\n", "proc/net/sockstat6": "sockets: used 5\n"},
    )

    samples = SockstatCollector(paths).collect(0.0)

    assert samples == [("node_sockstat_sockets_used", {}, 9.0)]


def test_neither_file_yields_nothing(scratch: Path) -> None:
    assert SockstatCollector(tree_paths(scratch)).collect(0.0) == []


def test_unknown_keys_and_protocols_are_skipped_and_logged_once(
    scratch: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="agent.collectors.host.sockstat")
    paths = write_tree(
        scratch,
        {"proc/net/sockstat": "TCP: inuse 4 pressure 1\nMPTCP: inuse 2\nsockets: used 9 peak 10\n"},
    )
    collector = SockstatCollector(paths, page_size_bytes=4096)

    samples = collector.collect(0.0)
    collector.collect(1.0)

    assert {(s.name, s.value) for s in samples} == {
        ("node_sockstat_TCP_inuse", 4.0),
        ("node_sockstat_sockets_used", 9.0),
    }
    assert [r.getMessage() for r in caplog.records] == [
        "sockstat metric 'node_sockstat_MPTCP_inuse' is not in the catalog; skipped"
    ]


@pytest.mark.parametrize(
    "text",
    ["TCP: inuse\n", "TCP: inuse 1 orphan\n", "TCP: inuse x\n", "TCP inuse 1\n", "TCP:\n"],
    ids=["no-value", "odd-pairs", "non-integer", "no-colon", "no-pairs"],
)
def test_malformed_sockstat_raises(scratch: Path, text: str) -> None:
    paths = write_tree(scratch, {"proc/net/sockstat6": text})

    with pytest.raises(MalformedFileError, match="sockstat6"):
        SockstatCollector(paths).collect(0.0)
