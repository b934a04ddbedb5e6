"""The conntrack collector: table fill, limit and the per-CPU statistics summed."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.collectors.host._files import MalformedFileError
from agent.collectors.host.conntrack import ConntrackCollector
from agent.wire.catalog import default_catalog
from tests.catalog_check import assert_conforms

from ._helpers import GPU_SERVER, RECORDED, names, tree_paths, value, write_tree

# A 2.6.x-era header: "searched" and "delete_list" where newer kernels write other columns.
OLD_HEADER = (
    "entries  searched found new invalid ignore delete delete_list insert insert_failed drop "
    "early_drop icmp_error  expect_new expect_create expect_delete search_restart\n"
)


def stat_line(*values: int) -> str:
    return " ".join(f"{v:08x}" for v in values) + "\n"


def test_recorded_vm_loaded_but_idle() -> None:
    samples = ConntrackCollector(tree_paths(RECORDED)).collect(0.0)

    assert names(samples) == {spec.name for spec in default_catalog().from_source("conntrack")}
    assert value(samples, "node_nf_conntrack_entries") == 0
    assert value(samples, "node_nf_conntrack_entries_limit") == 262144
    assert value(samples, "node_nf_conntrack_stat_found") == 0
    assert_conforms(samples, source="conntrack")


def test_gpu_server_statistics_are_summed_over_cpus() -> None:
    samples = ConntrackCollector(tree_paths(GPU_SERVER)).collect(0.0)

    assert value(samples, "node_nf_conntrack_entries") == 183742
    assert value(samples, "node_nf_conntrack_entries_limit") == 262144
    assert value(samples, "node_nf_conntrack_stat_found") == 0x10 + 0x20 + 0x30 + 0x40
    assert value(samples, "node_nf_conntrack_stat_invalid") == 0x100 * 4 + 0 + 1 + 2 + 3
    assert value(samples, "node_nf_conntrack_stat_ignore") == 0x1000 * (1 + 2 + 3 + 4)
    assert value(samples, "node_nf_conntrack_stat_insert") == 0x20 * 4 + 6
    assert value(samples, "node_nf_conntrack_stat_insert_failed") == 1
    assert value(samples, "node_nf_conntrack_stat_drop") == 2
    assert value(samples, "node_nf_conntrack_stat_early_drop") == 5
    assert value(samples, "node_nf_conntrack_stat_search_restart") == 0x300 * 4 + 6


def test_columns_are_found_by_name_in_an_old_header(scratch: Path) -> None:
    row = stat_line(9, 100, 1, 2, 3, 4, 5, 6, 7, 8, 10, 11, 12, 13, 14, 15, 16)
    paths = write_tree(scratch, {"proc/net/stat/nf_conntrack": OLD_HEADER + row + row})

    samples = ConntrackCollector(paths).collect(0.0)

    assert value(samples, "node_nf_conntrack_stat_found") == 2
    assert value(samples, "node_nf_conntrack_stat_insert") == 14
    assert value(samples, "node_nf_conntrack_stat_early_drop") == 22
    assert value(samples, "node_nf_conntrack_stat_search_restart") == 32
    assert "node_nf_conntrack_entries" not in names(samples)


def test_module_not_loaded_yields_nothing(scratch: Path) -> None:
    assert ConntrackCollector(tree_paths(scratch)).collect(0.0) == []


def test_header_without_cpu_lines_reports_no_statistics(scratch: Path) -> None:
    paths = write_tree(
        scratch,
        {
            "proc/net/stat/nf_conntrack": OLD_HEADER,
            "proc/sys/net/netfilter/nf_conntrack_max": "8\n",
        },
    )

    samples = ConntrackCollector(paths).collect(0.0)

    assert [(s.name, s.value) for s in samples] == [("node_nf_conntrack_entries_limit", 8.0)]


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("proc/sys/net/netfilter/nf_conntrack_count", "many\n"),
        ("proc/net/stat/nf_conntrack", ""),
        ("proc/net/stat/nf_conntrack", "found insert\n00000001 00000002\n"),
        ("proc/net/stat/nf_conntrack", OLD_HEADER + "00000001 00000002\n"),
        ("proc/net/stat/nf_conntrack", OLD_HEADER + stat_line(*range(16)) + "0000000g" + " 0" * 16),
    ],
    ids=["count-not-integer", "stat-empty", "stat-bad-header", "stat-short-row", "stat-not-hex"],
)
def test_malformed_files_raise(scratch: Path, path: str, text: str) -> None:
    paths = write_tree(scratch, {path: text})

    with pytest.raises(MalformedFileError, match="nf_conntrack"):
        ConntrackCollector(paths).collect(0.0)
