"""The stat collector: system-wide counters of /proc/stat."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.collectors.host._files import MalformedFileError
from agent.collectors.host.procstat import StatCollector
from tests.catalog_check import assert_conforms

from ._helpers import GPU_SERVER, RECORDED, names, tree_paths, value, write_tree

ALL = {
    "node_context_switches_total",
    "node_intr_total",
    "node_forks_total",
    "node_boot_time_seconds",
    "node_procs_running",
    "node_procs_blocked",
}


def test_recorded_vm_values() -> None:
    samples = StatCollector(tree_paths(RECORDED)).collect(0.0)

    assert value(samples, "node_context_switches_total") == 292659
    assert value(samples, "node_forks_total") == 6556
    assert value(samples, "node_boot_time_seconds") == 1795402963
    assert value(samples, "node_procs_running") == 1
    assert value(samples, "node_procs_blocked") == 0
    assert names(samples) == ALL
    assert_conforms(samples, source="stat")


def test_gpu_server_intr_total_is_the_first_number_of_the_long_line() -> None:
    samples = StatCollector(tree_paths(GPU_SERVER)).collect(0.0)

    assert value(samples, "node_intr_total") == 98765432109
    assert value(samples, "node_context_switches_total") == 123456789012
    assert value(samples, "node_procs_running") == 37
    assert value(samples, "node_procs_blocked") == 2
    assert_conforms(samples, source="stat")


def test_a_line_missing_on_an_old_kernel_is_left_out(scratch: Path) -> None:
    paths = write_tree(scratch, {"proc/stat": "cpu  1 2 3 4\nintr 10 1 2\nctxt 20\nbtime 30\n"})

    samples = StatCollector(paths).collect(0.0)

    assert names(samples) == {
        "node_intr_total",
        "node_context_switches_total",
        "node_boot_time_seconds",
    }


@pytest.mark.parametrize("text", ["ctxt lots\n", "cpu  1 2 3\nsoftirq 1 2\n"])
def test_malformed_stat_raises(scratch: Path, text: str) -> None:
    with pytest.raises(MalformedFileError):
        StatCollector(write_tree(scratch, {"proc/stat": text})).collect(0.0)
