"""The agent's own collector: its process under the Prometheus client libraries' names, read from
a made-up ``/proc`` (exact values) and from this test's own process (what the kernel says)."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.collectors.agent_self import (
    LIMITS_REFRESH_SECONDS,
    UNLIMITED,
    AgentSelfCollector,
    ProcessReader,
)
from agent.collectors.base import Sample
from agent.collectors.host._files import MalformedFileError
from agent.shipper import ShipperStats
from agent.spool.base import SpoolStats
from server.exposition.render import format_value
from tests.catalog_check import catalog_problems

NOW = 1_800_000_000.0
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = resource.getpagesize()
PROCESS_SET = {
    "process_cpu_seconds_total",
    "process_resident_memory_bytes",
    "process_virtual_memory_bytes",
    "process_virtual_memory_max_bytes",
    "process_start_time_seconds",
    "process_open_fds",
    "process_max_fds",
}
LIMITS = """\
Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max open files            {files:<20} 1048576              files
Max locked memory         8388608              8388608              bytes
Max address space         {space:<20} unlimited            bytes
Max file locks            unlimited            unlimited            locks
"""


def stat_line(utime: int, stime: int, start: int, vsize: int, rss: int) -> str:
    """Returns: a ``/proc/<pid>/stat`` line whose command name has spaces and parentheses."""
    fields = ["S", "1", "4242", "4242", "0", "-1", "4194560", "9000", "0", "12", "0"]
    fields += [str(utime), str(stime), "0", "0", "20", "0", "3", "0", str(start)]
    fields += [str(vsize), str(rss), "18446744073709551615", "1", "1", "0", "0"]
    return "4243 (dcmon agent) (x)) " + " ".join(fields) + "\n"


def fake_proc(
    root: Path, files: str = "65536", space: str = "unlimited", open_fds: int = 5
) -> Path:
    proc_self = root / "proc" / "self"
    (proc_self / "fd").mkdir(parents=True)
    for fd in range(open_fds):
        (proc_self / "fd" / str(fd)).touch()
    (proc_self / "stat").write_text(stat_line(250, 50, 1_234_500, 1_500_000_000, 20_000))
    (proc_self / "limits").write_text(LIMITS.format(files=files, space=space))
    (root / "proc" / "stat").write_text("cpu  1 2 3 4\nbtime 1799990000\nprocesses 10\n")
    return proc_self


def values(samples: list[Sample]) -> dict[str, float]:
    return {sample.name: sample.value for sample in samples}


def agent_collector(proc_self: Path) -> AgentSelfCollector:
    return AgentSelfCollector(
        lambda: SpoolStats(0, 0, 0.0, 0, 0, budget_bytes=1 << 30),
        lambda: ShipperStats(0, 0, 0, 0),
        lambda: 0.25,
        proc_self,
    )


def test_the_process_set_from_stat_limits_fd_and_btime(tmp_path: Path) -> None:
    got = values(ProcessReader(fake_proc(tmp_path)).collect(NOW))

    assert got == {
        "process_cpu_seconds_total": (250 + 50) / TICKS,
        "process_resident_memory_bytes": 20_000 * PAGE,
        "process_virtual_memory_bytes": 1_500_000_000,
        "process_virtual_memory_max_bytes": UNLIMITED,
        "process_start_time_seconds": 1_799_990_000 + 1_234_500 / TICKS,
        "process_open_fds": 5,
        "process_max_fds": 65536,
    }


def test_unlimited_address_space_is_printed_as_the_go_client_prints_it() -> None:
    # Debian's node_exporter: process_virtual_memory_max_bytes 1.8446744073709552e+19
    assert format_value(UNLIMITED) == "1.8446744073709552e+19"


def test_a_limited_address_space_is_its_soft_limit(tmp_path: Path) -> None:
    got = values(ProcessReader(fake_proc(tmp_path, space="68719476736")).collect(NOW))

    assert got["process_virtual_memory_max_bytes"] == 68_719_476_736


def test_limits_are_read_again_only_after_a_minute_or_a_clock_step_back(tmp_path: Path) -> None:
    proc_self = fake_proc(tmp_path)
    reader = ProcessReader(proc_self)
    assert values(reader.collect(NOW))["process_max_fds"] == 65536
    (proc_self / "limits").write_text(LIMITS.format(files="1024", space="unlimited"))

    assert values(reader.collect(NOW + LIMITS_REFRESH_SECONDS - 1))["process_max_fds"] == 65536
    assert values(reader.collect(NOW + LIMITS_REFRESH_SECONDS))["process_max_fds"] == 1024
    (proc_self / "limits").write_text(LIMITS.format(files="4096", space="unlimited"))
    assert values(reader.collect(NOW + 5))["process_max_fds"] == 4096  # the clock went back


def test_open_fds_and_cpu_follow_every_tick(tmp_path: Path) -> None:
    proc_self = fake_proc(tmp_path)
    reader = ProcessReader(proc_self)
    reader.collect(NOW)
    (proc_self / "fd" / "7").touch()
    (proc_self / "stat").write_text(stat_line(300, 60, 1_234_500, 1_500_000_000, 20_000))

    got = values(reader.collect(NOW + 1))

    assert got["process_open_fds"] == 6
    assert got["process_cpu_seconds_total"] == 360 / TICKS


def test_without_proc_the_process_set_is_left_out_and_the_rest_is_reported(
    tmp_path: Path,
) -> None:
    samples = agent_collector(tmp_path / "no-proc" / "self").collect(NOW)

    names = {s.name for s in samples}
    assert not names & PROCESS_SET
    assert {"dcmon_agent_info", "dcmon_agent_spool_batches"} <= names
    assert catalog_problems(samples, source="agent") == []


def test_a_missing_btime_file_leaves_only_the_start_time_out(tmp_path: Path) -> None:
    proc_self = fake_proc(tmp_path)
    (tmp_path / "proc" / "stat").unlink()

    got = values(ProcessReader(proc_self).collect(NOW))

    assert set(got) == PROCESS_SET - {"process_start_time_seconds"}


@pytest.mark.parametrize(
    ("file_name", "text"),
    [
        ("stat", "4243 dcmon agent S 1\n"),
        ("stat", "4243 (dcmon) S 1 2 3\n"),
        ("stat", stat_line(250, 50, 1, 2, 3).replace(" 250 ", " x ")),
        ("limits", LIMITS.format(files="many", space="unlimited")),
        ("limits", "Max open files\n"),
    ],
)
def test_a_file_that_does_not_parse_raises(tmp_path: Path, file_name: str, text: str) -> None:
    proc_self = fake_proc(tmp_path)
    (proc_self / file_name).write_text(text)

    with pytest.raises(MalformedFileError, match=file_name):
        ProcessReader(proc_self).collect(NOW)


def test_a_bad_limits_file_fails_one_tick_per_refresh_not_every_tick(tmp_path: Path) -> None:
    proc_self = fake_proc(tmp_path, files="many")
    reader = ProcessReader(proc_self)
    with pytest.raises(MalformedFileError):
        reader.collect(NOW)

    got = values(reader.collect(NOW + 10))

    assert "process_max_fds" not in got
    assert got["process_open_fds"] == 5


def test_a_proc_stat_without_btime_raises(tmp_path: Path) -> None:
    proc_self = fake_proc(tmp_path)
    (tmp_path / "proc" / "stat").write_text("cpu  1 2 3 4\n")

    with pytest.raises(MalformedFileError, match="btime"):
        ProcessReader(proc_self).collect(NOW)


def test_this_process_as_the_kernel_and_libc_see_it() -> None:
    collector = agent_collector(Path("/proc/self"))
    samples = collector.collect(time.time())
    got = values(samples)

    assert catalog_problems(samples, source="agent") == []
    assert set(got) >= PROCESS_SET
    assert not {name for name in got if name.startswith("dcmon_agent_process_")}
    soft_files, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert got["process_max_fds"] == soft_files
    soft_space, _ = resource.getrlimit(resource.RLIMIT_AS)
    expected_space = UNLIMITED if soft_space == resource.RLIM_INFINITY else soft_space
    assert got["process_virtual_memory_max_bytes"] == expected_space
    times = os.times()
    assert 0 < got["process_cpu_seconds_total"] <= times.user + times.system + 1 / TICKS
    assert 0 < got["process_resident_memory_bytes"] < got["process_virtual_memory_bytes"]
    assert 3 <= got["process_open_fds"] <= soft_files


def test_a_child_started_now_has_its_start_time_now(tmp_path: Path) -> None:
    before = time.time()
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        got = values(ProcessReader(Path(f"/proc/{child.pid}")).collect(time.time()))
    finally:
        child.kill()
        child.wait()

    # btime is whole seconds, so the start time is within a second of the truth
    assert before - 1.5 < got["process_start_time_seconds"] < time.time() + 1.5
