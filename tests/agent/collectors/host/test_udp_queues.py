"""The udp_queues collector: queued bytes summed over the UDP sockets of each IP version."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.collectors.host._files import MalformedFileError
from agent.collectors.host.udp_queues import UdpQueuesCollector
from tests.catalog_check import assert_conforms

from ._helpers import GPU_SERVER, RECORDED, tree_paths, value, write_tree

HEADER = "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n"  # noqa: E501
SOCKET = "  103: 00000000:1FBD 00000000:0000 07 {queues} 00:00000000 00000000  1000        0 40960 2 0000000000000000 0\n"  # noqa: E501


def test_recorded_vm_has_no_sockets_so_the_sums_are_zero() -> None:
    samples = UdpQueuesCollector(tree_paths(RECORDED)).collect(0.0)

    assert {(s.labels["ip"], s.labels["queue"]) for s in samples} == {
        ("v4", "tx"),
        ("v4", "rx"),
        ("v6", "tx"),
        ("v6", "rx"),
    }
    assert {s.value for s in samples} == {0.0}
    assert_conforms(samples, source="udp_queues")


def test_gpu_server_sums_the_hexadecimal_queues() -> None:
    samples = UdpQueuesCollector(tree_paths(GPU_SERVER)).collect(0.0)

    assert value(samples, "node_udp_queues", ip="v4", queue="rx") == 0x3F000
    assert value(samples, "node_udp_queues", ip="v4", queue="tx") == 0x300
    assert value(samples, "node_udp_queues", ip="v6", queue="rx") == 0x1200
    assert value(samples, "node_udp_queues", ip="v6", queue="tx") == 0


def test_a_missing_table_leaves_its_version_out(scratch: Path) -> None:
    paths = write_tree(
        scratch, {"proc/net/udp": HEADER + SOCKET.format(queues="00000010:00000020")}
    )

    samples = UdpQueuesCollector(paths).collect(0.0)

    assert [(s.labels, s.value) for s in samples] == [
        ({"ip": "v4", "queue": "tx"}, 16.0),
        ({"ip": "v4", "queue": "rx"}, 32.0),
    ]
    assert UdpQueuesCollector(tree_paths(scratch / "none")).collect(0.0) == []


@pytest.mark.parametrize(
    "socket",
    [
        SOCKET.format(queues="0000001000000020"),
        SOCKET.format(queues="0000001z:00000020"),
        "  103: 00000000:1FBD 00000000:0000 07 00000010:00000020\n",
    ],
    ids=["no-colon", "not-hex", "short-line"],
)
def test_malformed_table_raises(scratch: Path, socket: str) -> None:
    paths = write_tree(scratch, {"proc/net/udp6": HEADER + socket})

    with pytest.raises(MalformedFileError, match="udp6"):
        UdpQueuesCollector(paths).collect(0.0)
