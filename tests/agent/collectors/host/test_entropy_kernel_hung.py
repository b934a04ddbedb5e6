"""The entropy and kernel_hung collectors: one or two integers from /proc/sys/kernel."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.collectors.host._files import MalformedFileError
from agent.collectors.host.entropy import EntropyCollector
from agent.collectors.host.kernel_hung import KernelHungCollector
from tests.catalog_check import assert_conforms

from ._helpers import GPU_SERVER, RECORDED, tree_paths, value, write_tree


def test_entropy_on_a_6_18_kernel_is_full() -> None:
    samples = EntropyCollector(tree_paths(RECORDED)).collect(0.0)

    assert value(samples, "node_entropy_available_bits") == 256
    assert value(samples, "node_entropy_pool_size_bits") == 256
    assert_conforms(samples, source="entropy")


def test_entropy_on_a_5_15_kernel() -> None:
    samples = EntropyCollector(tree_paths(GPU_SERVER)).collect(0.0)

    assert value(samples, "node_entropy_available_bits") == 3754
    assert value(samples, "node_entropy_pool_size_bits") == 4096


def test_entropy_pool_size_is_read_once(scratch: Path) -> None:
    paths = write_tree(
        scratch,
        {
            "proc/sys/kernel/random/entropy_avail": "3000\n",
            "proc/sys/kernel/random/poolsize": "4096\n",
        },
    )
    collector = EntropyCollector(paths)
    collector.collect(0.0)
    (scratch / "proc/sys/kernel/random/entropy_avail").write_text("3100\n")
    (scratch / "proc/sys/kernel/random/poolsize").unlink()

    samples = collector.collect(1.0)

    assert value(samples, "node_entropy_available_bits") == 3100
    assert value(samples, "node_entropy_pool_size_bits") == 4096


def test_entropy_missing_or_malformed_raises(scratch: Path) -> None:
    paths = write_tree(scratch, {"proc/sys/kernel/random/entropy_avail": "256\n"})
    with pytest.raises(FileNotFoundError):
        EntropyCollector(paths).collect(0.0)

    (scratch / "proc/sys/kernel/random/poolsize").write_text("lots\n")
    with pytest.raises(MalformedFileError, match="poolsize"):
        EntropyCollector(paths).collect(0.0)


def test_kernel_hung_counter() -> None:
    samples = KernelHungCollector(tree_paths(RECORDED)).collect(0.0)

    assert samples == [("node_kernel_hung_tasks_total", {}, 0.0)]
    assert_conforms(samples, source="kernel_hung")


def test_kernel_hung_absent_before_6_13_and_malformed(scratch: Path) -> None:
    assert KernelHungCollector(tree_paths(GPU_SERVER)).collect(0.0) == []

    paths = write_tree(scratch, {"proc/sys/kernel/hung_task_detect_count": "3\n"})
    assert value(KernelHungCollector(paths).collect(0.0), "node_kernel_hung_tasks_total") == 3

    (scratch / "proc/sys/kernel/hung_task_detect_count").write_text("-\n")
    with pytest.raises(MalformedFileError, match="hung_task_detect_count"):
        KernelHungCollector(paths).collect(0.0)
