"""The vmstat collector: node_exporter's default field set, untyped."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from agent.collectors.host._files import MalformedFileError
from agent.collectors.host.vmstat import DEFAULT_FIELDS, VmstatCollector
from agent.wire.catalog import default_catalog
from tests.catalog_check import assert_conforms

from ._helpers import GPU_SERVER, RECORDED, names, tree_paths, value, write_tree

DEFAULT_SET = {
    "node_vmstat_pgpgin",
    "node_vmstat_pgpgout",
    "node_vmstat_pswpin",
    "node_vmstat_pswpout",
    "node_vmstat_pgfault",
    "node_vmstat_pgmajfault",
    "node_vmstat_oom_kill",
}


def test_recorded_vm_reports_exactly_the_default_set() -> None:
    samples = VmstatCollector(tree_paths(RECORDED)).collect(0.0)

    assert names(samples) == DEFAULT_SET
    assert value(samples, "node_vmstat_pgpgin") == 1011917
    assert value(samples, "node_vmstat_pgmajfault") == 1209
    assert_conforms(samples, source="vmstat")


def test_gpu_server_values_and_unlisted_matching_field_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="agent.collectors.host.vmstat")
    collector = VmstatCollector(tree_paths(GPU_SERVER))

    samples = collector.collect(0.0)
    collector.collect(1.0)

    assert value(samples, "node_vmstat_oom_kill") == 3
    assert value(samples, "node_vmstat_pgfault") == 99887766554
    assert value(samples, "node_vmstat_pswpout") == 42
    assert "node_vmstat_numa_hint_faults" not in names(samples)
    logged = [r.getMessage() for r in caplog.records]
    assert logged == ["vmstat field 'pgfault_retry' is not in the catalog; skipped"]


def test_catalog_entries_are_untyped_monotonic_and_inside_the_default_set() -> None:
    specs = default_catalog().from_source("vmstat")

    assert {spec.name for spec in specs} == DEFAULT_SET
    for spec in specs:
        assert spec.type == "untyped"
        assert spec.monotonic
        assert re.search(DEFAULT_FIELDS, spec.name.removeprefix("node_vmstat_"))


@pytest.mark.parametrize("text", ["pgfault many\n", "nr_free_pages\n"])
def test_malformed_vmstat_raises(scratch: Path, text: str) -> None:
    with pytest.raises(MalformedFileError, match="vmstat"):
        VmstatCollector(write_tree(scratch, {"proc/vmstat": text})).collect(0.0)
