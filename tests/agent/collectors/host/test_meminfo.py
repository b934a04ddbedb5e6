"""The meminfo collector: node_exporter's names for /proc/meminfo, filtered by the catalog."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.collectors.host._files import MalformedFileError
from agent.collectors.host.meminfo import MeminfoCollector, metric_name
from agent.wire.catalog import default_catalog
from tests.catalog_check import assert_conforms

from ._helpers import GPU_SERVER, RECORDED, names, tree_paths, value, write_tree


def test_recorded_vm_bytes_and_names() -> None:
    samples = MeminfoCollector(tree_paths(RECORDED)).collect(0.0)

    assert value(samples, "node_memory_MemTotal_bytes") == 24683656 * 1024
    assert value(samples, "node_memory_Active_anon_bytes") == 1520 * 1024
    assert value(samples, "node_memory_VmallocTotal_bytes") == 34359738367 * 1024
    assert value(samples, "node_memory_HugePages_Total") == 0
    assert value(samples, "node_memory_Hugepagesize_bytes") == 2048 * 1024
    assert_conforms(samples, source="meminfo")


def test_catalog_lists_every_field_of_the_recorded_kernel() -> None:
    lines = (RECORDED / "proc" / "meminfo").read_text().splitlines()

    samples = MeminfoCollector(tree_paths(RECORDED)).collect(0.0)

    assert len(samples) == len(lines) == 54


def test_gpu_server_hugepages_are_counts_and_corrupted_memory_is_bytes() -> None:
    samples = MeminfoCollector(tree_paths(GPU_SERVER)).collect(0.0)

    assert value(samples, "node_memory_HugePages_Total") == 1024
    assert value(samples, "node_memory_HugePages_Rsvd") == 16
    assert value(samples, "node_memory_HardwareCorrupted_bytes") == 4096
    assert value(samples, "node_memory_Inactive_file_bytes") == 278888889 * 1024
    assert value(samples, "node_memory_SwapFree_bytes") == 8388604 * 1024
    assert_conforms(samples, source="meminfo")


def test_fields_missing_from_the_catalog_are_skipped_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    collector = MeminfoCollector(tree_paths(GPU_SERVER))
    caplog.set_level(logging.DEBUG, logger="agent.collectors.host.meminfo")

    first = collector.collect(0.0)
    second = collector.collect(1.0)

    assert "node_memory_FutureField_bytes" not in names(first)
    assert "node_memory_FutureCount" not in names(first)
    assert names(first) == names(second)
    skipped = [r.getMessage() for r in caplog.records if "not in the catalog" in r.getMessage()]
    assert len(skipped) == 2
    assert "'FutureField'" in skipped[0]


def test_every_catalog_meminfo_entry_is_a_node_memory_gauge() -> None:
    specs = default_catalog().from_source("meminfo")

    assert len(specs) > 60
    for spec in specs:
        assert spec.name.startswith("node_memory_")
        assert spec.type == "gauge"
        assert spec.labels == ()
        assert spec.unit == ("count" if spec.name.startswith("node_memory_HugePages_") else "bytes")


@pytest.mark.parametrize(
    "text",
    ["MemTotal 123 kB\n", "MemTotal:   12 MB\n", "MemTotal:   many kB\n", "MemFree:  1 2 kB\n"],
)
def test_malformed_meminfo_raises(scratch: Path, text: str) -> None:
    with pytest.raises(MalformedFileError, match="meminfo"):
        MeminfoCollector(write_tree(scratch, {"proc/meminfo": text})).collect(0.0)


def test_blank_lines_of_old_kernels_are_tolerated(scratch: Path) -> None:
    paths = write_tree(scratch, {"proc/meminfo": "MemTotal:  10 kB\n\nMemFree:  4 kB\n"})

    samples = MeminfoCollector(paths).collect(0.0)

    assert value(samples, "node_memory_MemFree_bytes") == 4096


@settings(database=None, max_examples=200)
@given(
    base=st.from_regex(r"[A-Za-z][A-Za-z0-9_]{0,20}", fullmatch=True),
    inner=st.from_regex(r"[a-z]{1,8}", fullmatch=True),
    kb=st.booleans(),
)
def test_metric_name_follows_node_exporter(base: str, inner: str, kb: bool) -> None:
    plain = metric_name(base, kb)
    nested = metric_name(f"{base}({inner})", kb)

    suffix = "_bytes" if kb else ""
    assert plain == f"node_memory_{base}{suffix}"
    assert nested == f"node_memory_{base}_{inner}{suffix}"
