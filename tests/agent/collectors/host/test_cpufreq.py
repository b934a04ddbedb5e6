"""The cpufreq collector: kHz to hertz per online CPU, governors, and the worker thread that keeps
a slow kernel from holding the tick."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host import cpufreq
from agent.collectors.host._files import MalformedFileError
from agent.collectors.host.cpufreq import CpufreqCollector, parse_cpu_list, read_cpufreq
from tests.catalog_check import assert_conforms

from ._helpers import GPU_SERVER, RECORDED, label_values, names, tree_paths, value, write_tree

CPU = "sys/devices/system/cpu"


@pytest.fixture
def collectors() -> Iterator[list[CpufreqCollector]]:
    """Collectors a test builds; their worker threads are stopped at teardown."""
    made: list[CpufreqCollector] = []
    yield made
    for collector in made:
        collector.close()


def collector_for(
    made: list[CpufreqCollector], paths: HostPaths, **kwargs: float
) -> CpufreqCollector:
    collector = CpufreqCollector(paths, wait_seconds=kwargs.pop("wait_seconds", 5.0), **kwargs)
    made.append(collector)
    return collector


def test_gpu_server_intel_pstate_frequencies_limits_and_governors(
    collectors: list[CpufreqCollector],
) -> None:
    samples = collector_for(collectors, tree_paths(GPU_SERVER)).collect(0.0)

    assert value(samples, "node_cpu_scaling_frequency_hertz", cpu="0") == 3_800_012_000
    assert value(samples, "node_cpu_scaling_frequency_hertz", cpu="3") == 800_000_000
    assert value(samples, "node_cpu_frequency_min_hertz", cpu="1") == 800_000_000
    assert value(samples, "node_cpu_frequency_max_hertz", cpu="1") == 3_800_000_000
    # cpu2's policy is capped below the hardware's maximum
    assert value(samples, "node_cpu_scaling_frequency_max_hertz", cpu="2") == 2_000_000_000
    assert value(samples, "node_cpu_scaling_frequency_min_hertz", cpu="2") == 800_000_000
    # intel_pstate has no cpuinfo_cur_freq; cpuinfo_avg_freq needs Linux 6.15
    assert "node_cpu_frequency_hertz" not in names(samples)
    assert "node_cpu_frequency_avg_hertz" not in names(samples)
    governors = {
        (s.labels["cpu"], s.labels["governor"]): s.value
        for s in samples
        if s.name == "node_cpu_scaling_governor"
    }
    assert governors[("0", "performance")] == 1 and governors[("0", "powersave")] == 0
    assert governors[("3", "performance")] == 0 and governors[("3", "powersave")] == 1
    assert len(governors) == 8
    assert label_values(samples, "node_cpu_scaling_frequency_hertz", "cpu") == {"0", "1", "2", "3"}
    assert_conforms(samples, source="cpufreq")


def test_no_cpufreq_driver_yields_nothing(collectors: list[CpufreqCollector]) -> None:
    assert collector_for(collectors, tree_paths(RECORDED)).collect(0.0) == []


def acpi_cpu(number: int, current_khz: str = "2450000") -> dict[str, str]:
    folder = f"{CPU}/cpu{number}/cpufreq"
    return {
        f"{folder}/cpuinfo_cur_freq": f"{current_khz}\n",
        f"{folder}/cpuinfo_avg_freq": "2391000\n",
        f"{folder}/cpuinfo_min_freq": "1500000\n",
        f"{folder}/cpuinfo_max_freq": "2450000\n",
        f"{folder}/scaling_cur_freq": "2450000\n",
        f"{folder}/scaling_min_freq": "1500000\n",
        f"{folder}/scaling_max_freq": "2450000\n",
        f"{folder}/scaling_governor": "schedutil\n",
        f"{folder}/scaling_available_governors": "conservative ondemand userspace powersave "
        "performance schedutil \n",
    }


def test_acpi_cpufreq_reports_the_hardware_frequency_and_skips_offline_cpus(scratch: Path) -> None:
    files = {**acpi_cpu(0), **acpi_cpu(1), **acpi_cpu(2), **acpi_cpu(3), **acpi_cpu(10)}
    files[f"{CPU}/offline"] = "1-2\n"
    files[f"{CPU}/cpu1/online"] = "0\n"
    samples = read_cpufreq(write_tree(scratch, files).sys / "devices" / "system" / "cpu")

    assert label_values(samples, "node_cpu_frequency_hertz", "cpu") == {"0", "3", "10"}
    assert value(samples, "node_cpu_frequency_hertz", cpu="10") == 2_450_000_000
    assert value(samples, "node_cpu_frequency_avg_hertz", cpu="0") == 2_391_000_000
    active = [s for s in samples if s.name == "node_cpu_scaling_governor" and s.value == 1]
    assert {s.labels["governor"] for s in active} == {"schedutil"}
    assert len([s for s in samples if s.name == "node_cpu_scaling_governor"]) == 3 * 6
    assert [s.labels["cpu"] for s in samples if s.name == "node_cpu_frequency_hertz"] == [
        "0",
        "3",
        "10",
    ]  # numeric order, not cpu10 before cpu3


def test_a_root_only_file_is_left_out_and_a_governor_without_a_list_still_counts(
    scratch: Path,
) -> None:
    files = acpi_cpu(0)
    del files[f"{CPU}/cpu0/cpufreq/cpuinfo_cur_freq"]  # unreadable: what an agent not root sees
    del files[f"{CPU}/cpu0/cpufreq/scaling_available_governors"]
    samples = read_cpufreq(write_tree(scratch, files).sys / "devices" / "system" / "cpu")

    assert "node_cpu_frequency_hertz" not in names(samples)
    assert value(samples, "node_cpu_scaling_frequency_hertz", cpu="0") == 2_450_000_000
    assert [s for s in samples if s.name == "node_cpu_scaling_governor"] == [
        Sample("node_cpu_scaling_governor", {"cpu": "0", "governor": "schedutil"}, 1.0)
    ]


def test_a_frequency_that_is_not_a_number_fails_the_collection(
    scratch: Path, collectors: list[CpufreqCollector]
) -> None:
    paths = write_tree(scratch, acpi_cpu(0, current_khz="<unknown>"))

    with pytest.raises(MalformedFileError, match="cpuinfo_cur_freq"):
        collector_for(collectors, paths).collect(0.0)


@pytest.mark.parametrize(
    ("text", "cpus"),
    [("", set()), ("\n", set()), ("3", {3}), ("0-2,7,9-10\n", {0, 1, 2, 7, 9, 10})],
)
def test_parse_cpu_list(text: str, cpus: set[int]) -> None:
    assert parse_cpu_list("offline", text) == cpus


@pytest.mark.parametrize("text", ["a-b", "4-2", "1,,x"])
def test_parse_cpu_list_refuses_garbage(text: str) -> None:
    with pytest.raises(MalformedFileError):
        parse_cpu_list("offline", text)


def test_a_slow_kernel_does_not_hold_the_tick_and_its_pass_comes_next_tick(
    monkeypatch: pytest.MonkeyPatch, collectors: list[CpufreqCollector]
) -> None:
    release = threading.Event()
    first = [Sample("node_cpu_scaling_frequency_hertz", {"cpu": "0"}, 1e9)]

    def slow(root: Path) -> list[Sample]:
        assert release.wait(10), "the test never released the pass"
        return first

    monkeypatch.setattr(cpufreq, "read_cpufreq", slow)
    collector = collector_for(collectors, tree_paths(GPU_SERVER), wait_seconds=0.01)

    assert collector.collect(0.0) == []  # the first pass is still under way
    assert collector.collect(10.0) == []  # still running: no second pass is started
    release.set()
    collector._running.result(timeout=10)  # type: ignore[union-attr]

    assert collector.collect(20.0) == first


def test_a_pass_older_than_its_limit_is_not_handed_out(
    monkeypatch: pytest.MonkeyPatch, collectors: list[CpufreqCollector]
) -> None:
    clock = [1000.0]
    hang = threading.Event()
    calls: list[int] = []

    def once_then_hang(root: Path) -> list[Sample]:
        calls.append(1)
        if len(calls) > 1:
            hang.wait(10)
        return [Sample("node_cpu_scaling_frequency_hertz", {"cpu": "0"}, 1e9)]

    monkeypatch.setattr(cpufreq, "read_cpufreq", once_then_hang)
    collector = CpufreqCollector(
        tree_paths(GPU_SERVER), wait_seconds=1.0, max_age_seconds=60, monotonic=lambda: clock[0]
    )
    collectors.append(collector)
    assert len(collector.collect(0.0)) == 1
    collector._wait_seconds = 0.01  # the second pass hangs in the kernel
    clock[0] += 30
    assert len(collector.collect(30.0)) == 1  # the first pass, 30 s old
    clock[0] += 40
    assert collector.collect(70.0) == []  # 70 s old: left out
    hang.set()


def test_a_pass_that_raises_fails_its_tick_and_the_next_tick_reads_again(
    monkeypatch: pytest.MonkeyPatch, collectors: list[CpufreqCollector]
) -> None:
    calls: list[int] = []

    def flaky(root: Path) -> list[Sample]:
        calls.append(1)
        if len(calls) == 1:
            raise PermissionError(13, "Permission denied", str(root))
        return [Sample("node_cpu_scaling_frequency_hertz", {"cpu": "0"}, 1e9)]

    monkeypatch.setattr(cpufreq, "read_cpufreq", flaky)
    collector = collector_for(collectors, tree_paths(GPU_SERVER))

    with pytest.raises(PermissionError):
        collector.collect(0.0)
    assert len(collector.collect(10.0)) == 1
    assert len(calls) == 2
