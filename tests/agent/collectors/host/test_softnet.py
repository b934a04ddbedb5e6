"""The softnet collector: per-CPU receive counters, across the kernels' column layouts."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.collectors.host._files import MalformedFileError
from agent.collectors.host.softnet import SoftnetCollector
from agent.wire.catalog import default_catalog
from tests.catalog_check import assert_conforms

from ._helpers import GPU_SERVER, RECORDED, label_values, names, tree_paths, value, write_tree

ALL = {spec.name for spec in default_catalog().from_source("softnet")}
# One CPU's line of a 4.18 kernel (11 columns), 2.6.39 (10) and 2.6.32 (9).
_COLUMNS = [
    "0000a1b2",
    "00000003",
    "00000004",
    *["00000000"] * 5,
    "00000005",
    "00000006",
    "00000007",
]
OLD_LINES = {width: " ".join(_COLUMNS[:width]) for width in (11, 10, 9)}


def test_recorded_vm_two_cpus_fifteen_columns() -> None:
    samples = SoftnetCollector(tree_paths(RECORDED)).collect(0.0)

    assert names(samples) == ALL
    assert label_values(samples, "node_softnet_processed_total", "cpu") == {"0", "1"}
    assert value(samples, "node_softnet_processed_total", cpu="0") == 0x1B2A
    assert value(samples, "node_softnet_processed_total", cpu="1") == 0x3AD1
    assert value(samples, "node_softnet_times_squeezed_total", cpu="1") == 1
    assert value(samples, "node_softnet_backlog_len", cpu="1") == 0
    assert len(samples) == 2 * 7
    assert_conforms(samples, source="softnet")


def test_gpu_server_cpu_label_is_the_kernels_cpu_column_with_one_cpu_offline() -> None:
    samples = SoftnetCollector(tree_paths(GPU_SERVER)).collect(0.0)

    cpus = label_values(samples, "node_softnet_dropped_total", "cpu")
    assert cpus == {str(cpu) for cpu in range(17) if cpu != 5}
    assert value(samples, "node_softnet_processed_total", cpu="6") == 0x10006000
    assert value(samples, "node_softnet_dropped_total", cpu="3") == 42
    assert value(samples, "node_softnet_times_squeezed_total", cpu="16") == 0x110
    assert value(samples, "node_softnet_received_rps_total", cpu="2") == 0xAA
    assert value(samples, "node_softnet_flow_limit_count_total", cpu="9") == 7
    assert value(samples, "node_softnet_backlog_len", cpu="16") == 3
    assert value(samples, "node_softnet_cpu_collision_total", cpu="0") == 0
    assert len(samples) == 16 * 7


@pytest.mark.parametrize(
    ("width", "present"),
    [
        (11, ALL - {"node_softnet_backlog_len"}),
        (
            10,
            ALL - {"node_softnet_backlog_len", "node_softnet_flow_limit_count_total"},
        ),
        (
            9,
            ALL
            - {
                "node_softnet_backlog_len",
                "node_softnet_flow_limit_count_total",
                "node_softnet_received_rps_total",
            },
        ),
    ],
)
def test_older_kernels_report_their_columns_by_line_position(
    scratch: Path, width: int, present: set[str]
) -> None:
    line = OLD_LINES[width]
    paths = write_tree(scratch, {"proc/net/softnet_stat": f"{line}\n{line}\n"})

    samples = SoftnetCollector(paths).collect(0.0)

    assert names(samples) == present
    assert label_values(samples, "node_softnet_processed_total", "cpu") == {"0", "1"}
    assert value(samples, "node_softnet_processed_total", cpu="1") == 0xA1B2
    assert value(samples, "node_softnet_dropped_total", cpu="1") == 3
    assert value(samples, "node_softnet_cpu_collision_total", cpu="0") == 5
    assert_conforms(samples, source="softnet")


@pytest.mark.parametrize(
    "text",
    ["00000001 00000002\n", f"{OLD_LINES[9][:-1]}g\n", f"{OLD_LINES[11]} 0000000x 00000001\n"],
    ids=["short", "not-hex", "bad-cpu-column"],
)
def test_malformed_softnet_raises(scratch: Path, text: str) -> None:
    paths = write_tree(scratch, {"proc/net/softnet_stat": text})

    with pytest.raises(MalformedFileError, match="softnet_stat"):
        SoftnetCollector(paths).collect(0.0)


def test_missing_softnet_stat_is_an_error(scratch: Path) -> None:
    with pytest.raises(FileNotFoundError):
        SoftnetCollector(tree_paths(scratch)).collect(0.0)
