"""The ipmi_power collector: DCMI parsing, detection, freshness, backoff, the real subprocess."""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from agent.collectors.power.ipmi import (
    DcmiOutputError,
    DcmiPowerReading,
    IpmiCommandError,
    IpmiPowerCollector,
    IpmiPowerOptions,
    parse_power_reading,
    run_command,
)
from agent.wire.catalog import default_catalog
from tests.catalog_check import assert_conforms

DATA = Path(__file__).resolve().parents[3] / "data" / "ipmi"
READING = (DATA / "dcmi-power-reading.txt").read_text(encoding="utf-8")
DEACTIVATED = (DATA / "dcmi-power-reading-deactivated.txt").read_text(encoding="utf-8")
MILLISECONDS = (DATA / "dcmi-power-reading-milliseconds.txt").read_text(encoding="utf-8")
NOT_SUPPORTED = (DATA / "dcmi-not-supported.stderr").read_text(encoding="utf-8").strip()
LOGGER = "agent.collectors.power.ipmi"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ScriptedRunner:
    """Answers each run with the next scripted output; an exception in the script is raised."""

    def __init__(self, *answers: str | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[list[str], float]] = []

    def __call__(self, argv: Sequence[str], timeout_seconds: float) -> str:
        self.calls.append((list(argv), timeout_seconds))
        answer = self.answers.pop(0) if len(self.answers) > 1 else self.answers[0]
        if isinstance(answer, Exception):
            raise answer
        return answer


def never_found(_name: str) -> str | None:
    return None


@pytest.fixture
def scratch() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="dcmon-ipmi-") as folder:
        yield Path(folder)


def bmc_dev_root(root: Path, node: str = "ipmi0") -> Path:
    """Returns: a device root holding one BMC device node (a plain file stands in for it)."""
    (root / node).parent.mkdir(parents=True, exist_ok=True)
    (root / node).touch()
    return root


def wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# --- parsing


def test_parse_ipmitool_reading_with_window_statistics() -> None:
    assert parse_power_reading(READING) == DcmiPowerReading(
        watts=2874.0,
        minimum_watts=612.0,
        maximum_watts=3311.0,
        average_watts=2790.0,
        sampling_period_seconds=1.0,
    )


def test_parse_colon_after_padding_and_a_window_in_milliseconds() -> None:
    reading = parse_power_reading(MILLISECONDS)

    assert (reading.watts, reading.average_watts) == (431.0, 440.0)
    assert reading.sampling_period_seconds == 60.0


def test_parse_instantaneous_reading_alone() -> None:
    reading = parse_power_reading("Instantaneous power reading: 250 Watts\n")

    assert reading == DcmiPowerReading(watts=250.0)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        (DEACTIVATED, "deactivated"),
        (READING.replace("2874 Watts", "0 Watts"), "0 W"),
        ("", "no instantaneous"),
        ("Instantaneous power reading: N/A\n", "no instantaneous"),
    ],
    ids=["deactivated", "zero-watts", "empty", "not-a-number"],
)
def test_unusable_outputs_are_refused(text: str, needle: str) -> None:
    with pytest.raises(DcmiOutputError, match=needle):
        parse_power_reading(text)


# --- readings, freshness and backoff (no thread: poll_once is driven by the test)


def test_a_reading_becomes_catalog_samples_while_fresh() -> None:
    clock = FakeClock()
    collector = IpmiPowerCollector(
        runner=ScriptedRunner(READING), which=never_found, monotonic=clock
    )

    assert collector.poll_once() == 30.0
    clock.now += 89.9
    samples = collector.collect(0.0)
    clock.now += 0.1  # three periods old
    stale = collector.collect(0.0)

    assert {s.name: s.value for s in samples} == {
        "ipmi_dcmi_power_consumption_watts": 2874.0,
        "dcmon_ipmi_dcmi_power_minimum_watts": 612.0,
        "dcmon_ipmi_dcmi_power_maximum_watts": 3311.0,
        "dcmon_ipmi_dcmi_power_average_watts": 2790.0,
        "dcmon_ipmi_dcmi_power_sampling_period_seconds": 1.0,
    }
    assert all(s.labels == {} for s in samples)
    assert_conforms(samples, source="ipmi_power")
    assert {spec.name for spec in default_catalog().from_source("ipmi_power")} == {
        s.name for s in samples
    }
    assert stale == []


def test_repeated_failures_back_off_with_one_warning_and_recovery_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    failure = IpmiCommandError(f"ipmitool exited with status 1: {NOT_SUPPORTED}")
    runner = ScriptedRunner(failure, failure, failure, failure, failure, READING)
    collector = IpmiPowerCollector(runner=runner, which=never_found)

    with caplog.at_level(logging.INFO, logger=LOGGER):
        delays = [collector.poll_once() for _ in range(6)]

    assert delays == [30.0, 30.0, 3600.0, 3600.0, 3600.0, 30.0]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "failed 3 times in a row" in warnings[0]
    assert "Invalid command" in warnings[0]
    assert any("answers again" in r.getMessage() for r in caplog.records)
    assert collector.collect(0.0)[0].value == 2874.0


def test_a_good_reading_resets_the_failure_count() -> None:
    failure = DcmiOutputError("power measurement is deactivated on the BMC")
    runner = ScriptedRunner(failure, failure, READING, failure, failure, failure)
    collector = IpmiPowerCollector(runner=runner, which=never_found)

    assert [collector.poll_once() for _ in range(6)] == [30, 30, 30, 30, 30, 3600]


def test_a_failure_keeps_the_last_good_reading_until_it_is_stale() -> None:
    clock = FakeClock()
    runner = ScriptedRunner(READING, IpmiCommandError("ipmitool did not finish within 10 s"))
    collector = IpmiPowerCollector(runner=runner, which=never_found, monotonic=clock)

    collector.poll_once()
    clock.now += 30
    collector.poll_once()

    assert collector.collect(0.0)[0].value == 2874.0
    clock.now += 60
    assert collector.collect(0.0) == []


# --- detection and the thread


def test_without_ipmitool_nothing_runs_and_one_line_says_why(
    scratch: Path, caplog: pytest.LogCaptureFixture
) -> None:
    runner = ScriptedRunner(READING)
    collector = IpmiPowerCollector(bmc_dev_root(scratch), runner=runner, which=never_found)

    with caplog.at_level(logging.DEBUG, logger=LOGGER):
        results = [collector.collect(float(tick)) for tick in range(3)]
    collector.close()

    assert results == [[], [], []]
    assert runner.calls == []
    assert [r.getMessage() for r in caplog.records if "no ipmitool" in r.getMessage()] != []
    assert len(caplog.records) == 1


def test_without_a_bmc_device_node_nothing_runs(scratch: Path) -> None:
    runner = ScriptedRunner(READING)
    collector = IpmiPowerCollector(scratch, runner=runner, which=lambda _n: "/usr/bin/ipmitool")

    assert collector.collect(0.0) == []
    collector.close()
    assert runner.calls == []


def test_detection_is_retried_each_period_for_modules_loaded_later(scratch: Path) -> None:
    clock = FakeClock()
    runner = ScriptedRunner(READING)
    collector = IpmiPowerCollector(
        scratch, runner=runner, which=lambda _n: "/usr/sbin/ipmitool", monotonic=clock
    )
    try:
        assert collector.collect(0.0) == []
        bmc_dev_root(scratch, "ipmi/0")
        clock.now += 29.0
        assert collector.collect(0.0) == []  # not looked for again within the period
        assert runner.calls == []
        clock.now += 1.0
        collector.collect(0.0)
        wait_for(lambda: collector.collect(0.0) != [])
    finally:
        collector.close()
    assert runner.calls[0] == (["/usr/sbin/ipmitool", "dcmi", "power", "reading"], 10.0)


@pytest.mark.parametrize("node", ["ipmi0", "ipmi/0", "ipmidev/0"])
def test_each_device_node_name_is_detected_and_close_stops_the_thread(
    scratch: Path, node: str
) -> None:
    runner = ScriptedRunner(READING)
    collector = IpmiPowerCollector(
        bmc_dev_root(scratch, node), runner=runner, which=lambda _n: "/usr/bin/ipmitool"
    )
    try:
        collector.collect(0.0)
        wait_for(lambda: collector.collect(0.0) != [])
    finally:
        collector.close()

    assert not any(t.name == "dcmon-ipmi-power" for t in threading.enumerate())
    assert len(runner.calls) == 1  # the next run is a period away


def test_the_tick_never_waits_for_a_slow_bmc(scratch: Path) -> None:
    started, release = threading.Event(), threading.Event()

    def slow_runner(argv: Sequence[str], timeout_seconds: float) -> str:
        started.set()
        release.wait(10.0)
        return READING

    collector = IpmiPowerCollector(
        bmc_dev_root(scratch), runner=slow_runner, which=lambda _n: "/usr/bin/ipmitool"
    )
    try:
        assert collector.collect(0.0) == []
        assert started.wait(10.0)
        assert collector.collect(1.0) == []  # returns while the command is still running
        assert not release.is_set()
        release.set()
        wait_for(lambda: collector.collect(2.0) != [])
    finally:
        release.set()
        collector.close()


# --- the real subprocess


def fake_ipmitool(folder: Path, script: str) -> Path:
    """Writes an executable ``ipmitool`` shell script into ``folder``; returns its path."""
    folder.mkdir(parents=True, exist_ok=True)
    tool = folder / "ipmitool"
    tool.write_text("#!/bin/sh\n" + script, encoding="utf-8")
    tool.chmod(0o755)
    return tool


def test_end_to_end_through_a_real_ipmitool_process(scratch: Path) -> None:
    fake_ipmitool(
        scratch / "bin",
        f'[ "$*" = "dcmi power reading" ] || exit 2\ncat \'{DATA / "dcmi-power-reading.txt"}\'\n',
    )
    collector = IpmiPowerCollector(
        bmc_dev_root(scratch / "dev"),
        which=lambda name: shutil.which(name, path=str(scratch / "bin")),
    )
    try:
        collector.collect(0.0)
        wait_for(lambda: collector.collect(0.0) != [])
        samples = collector.collect(0.0)
    finally:
        collector.close()

    assert samples[0].name == "ipmi_dcmi_power_consumption_watts"
    assert samples[0].value == 2874.0


def test_real_runner_maps_a_failing_exit_to_its_stderr(scratch: Path) -> None:
    tool = fake_ipmitool(scratch, f"echo '{NOT_SUPPORTED}' >&2\nexit 1\n")

    with pytest.raises(IpmiCommandError, match=r"status 1: DCMI request failed"):
        run_command([str(tool), "dcmi", "power", "reading"], 5.0)


def test_real_runner_kills_the_whole_process_group_at_the_deadline(scratch: Path) -> None:
    pid_file = scratch / "child.pid"
    tool = fake_ipmitool(scratch, f"sleep 30 &\necho $! > '{pid_file}'\nwait\n")

    begun = time.monotonic()
    with pytest.raises(IpmiCommandError, match=r"did not finish within 0\.5 s"):
        run_command([str(tool)], 0.5)

    assert time.monotonic() - begun < 10.0
    child = int(pid_file.read_text(encoding="utf-8"))
    wait_for(lambda: not _running(child))


def test_real_runner_maps_a_missing_program(scratch: Path) -> None:
    with pytest.raises(IpmiCommandError, match="ipmitool"):
        run_command([str(scratch / "ipmitool")], 1.0)


def _running(pid: int) -> bool:
    """Returns: whether ``pid`` is alive (a zombie waiting to be reaped is not)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8") as stat:
            return stat.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False


# --- options


@pytest.mark.parametrize(
    "kwargs",
    [
        {"period_seconds": 0.0},
        {"timeout_seconds": 0.0},
        {"timeout_seconds": 60.0},
        {"failures_before_backoff": 0},
        {"backoff_seconds": 10.0},
    ],
    ids=["zero-period", "zero-timeout", "timeout-over-period", "no-failures", "short-backoff"],
)
def test_invalid_options_are_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        IpmiPowerOptions(**kwargs)  # type: ignore[arg-type]


def test_defaults() -> None:
    options = IpmiPowerOptions()

    assert (options.period_seconds, options.timeout_seconds) == (30.0, 10.0)
    assert (options.failures_before_backoff, options.backoff_seconds) == (3, 3600.0)
