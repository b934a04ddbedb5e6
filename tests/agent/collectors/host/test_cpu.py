"""The cpu collector against recorded trees: per-CPU mode seconds and guest seconds."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.collectors.host._files import MalformedFileError
from agent.collectors.host.cpu import CpuCollector
from tests.catalog_check import assert_conforms

from ._helpers import GPU_SERVER, RECORDED, label_values, tree_paths, value, write_tree

MODES = {"user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"}


def test_recorded_vm_reports_every_mode_of_both_cpus_in_seconds() -> None:
    samples = CpuCollector(tree_paths(RECORDED)).collect(0.0)

    # cpu1 5712 0 1393 73351 258 0 63 6 0 0 (USER_HZ ticks)
    assert value(samples, "node_cpu_seconds_total", cpu="1", mode="user") == pytest.approx(57.12)
    assert value(samples, "node_cpu_seconds_total", cpu="1", mode="iowait") == pytest.approx(2.58)
    assert value(samples, "node_cpu_seconds_total", cpu="0", mode="steal") == pytest.approx(0.08)
    assert label_values(samples, "node_cpu_seconds_total", "cpu") == {"0", "1"}
    assert label_values(samples, "node_cpu_seconds_total", "mode") == MODES
    assert len(samples) == 2 * 8 + 2 * 2
    assert_conforms(samples, source="cpu")


def test_gpu_server_guest_time_is_reported_apart_and_not_added_to_user() -> None:
    samples = CpuCollector(tree_paths(GPU_SERVER)).collect(0.0)

    # cpu1 870100 300 225040 18958021 10053 0 3011 0 375000 5
    assert value(samples, "node_cpu_seconds_total", cpu="1", mode="iowait") == 100.53
    assert value(samples, "node_cpu_seconds_total", cpu="1", mode="idle") == 189580.21
    assert value(samples, "node_cpu_seconds_total", cpu="1", mode="user") == 8701.0
    assert value(samples, "node_cpu_guest_seconds_total", cpu="1", mode="user") == 3750.0
    assert value(samples, "node_cpu_guest_seconds_total", cpu="1", mode="nice") == 0.05
    assert label_values(samples, "node_cpu_seconds_total", "cpu") == {"0", "1", "2", "3"}
    assert_conforms(samples, source="cpu")


def test_old_kernel_without_steal_and_guest_columns_reports_what_it_has(scratch: Path) -> None:
    paths = write_tree(scratch, {"proc/stat": "cpu  1 2 3 4 5 6 7\ncpu0 1 2 3 4 5 6 7\nctxt 9\n"})

    samples = CpuCollector(paths).collect(0.0)

    assert label_values(samples, "node_cpu_seconds_total", "mode") == MODES - {"steal"}
    assert value(samples, "node_cpu_seconds_total", cpu="0", mode="softirq") == 0.07
    assert not [s for s in samples if s.name == "node_cpu_guest_seconds_total"]


@pytest.mark.parametrize(
    "text",
    [
        "cpu  1 2 3 4\ncpu0 1 2 x 4 5 6 7 8 9 10\n",
        "cpu  1 2 3 4\ncpuX 1 2 3 4\n",
        "cpu  1 2 3 4\ncpu0 1 2\n",
        "intr 5\nctxt 7\n",
    ],
    ids=["non-integer", "bad-cpu-label", "too-few-columns", "no-cpu-lines"],
)
def test_malformed_stat_raises(scratch: Path, text: str) -> None:
    paths = write_tree(scratch, {"proc/stat": text})

    with pytest.raises(MalformedFileError, match="stat"):
        CpuCollector(paths).collect(0.0)


def test_missing_proc_stat_is_an_error_not_silence(scratch: Path) -> None:
    with pytest.raises(FileNotFoundError):
        CpuCollector(write_tree(scratch, {})).collect(0.0)


def test_small_dips_are_held_and_a_hotplug_restarts_the_counters(scratch: Path) -> None:
    collector = CpuCollector(write_tree(scratch, {"proc/stat": "cpu0 100 0 50 10000 700 0 0 0\n"}))
    collector.collect(0.0)

    # iowait and idle step back a little (NO_HZ estimates): the last values are held.
    write_tree(scratch, {"proc/stat": "cpu0 110 0 55 9950 690 0 0 0\n"})
    dipped = collector.collect(1.0)
    assert value(dipped, "node_cpu_seconds_total", cpu="0", mode="iowait") == 7.0
    assert value(dipped, "node_cpu_seconds_total", cpu="0", mode="idle") == 100.0
    assert value(dipped, "node_cpu_seconds_total", cpu="0", mode="user") == 1.1

    # Idle 5 s lower than reported: the CPU was offlined and came back; take the new values.
    write_tree(scratch, {"proc/stat": "cpu0 3 0 2 9500 1 0 0 0\n"})
    restarted = collector.collect(2.0)
    assert value(restarted, "node_cpu_seconds_total", cpu="0", mode="idle") == 95.0
    assert value(restarted, "node_cpu_seconds_total", cpu="0", mode="iowait") == 0.01
