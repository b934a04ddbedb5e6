"""The statvfs runner: deadline, stuck marking, recovery, errors handed back to the caller."""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator

import pytest

from agent.collectors.host._statvfs import StatvfsRunner, StatvfsTimeoutError

from ._helpers import fake_statvfs_result


@pytest.fixture
def release() -> Iterator[threading.Event]:
    event = threading.Event()
    yield event
    event.set()


def test_result_comes_back_through_the_worker() -> None:
    runner = StatvfsRunner(lambda path: fake_statvfs_result(blocks=len(path)))
    try:
        assert runner.call("/abc", 1.0).f_blocks == 4
        assert runner.call("/abcdef", 1.0).f_blocks == 7
    finally:
        runner.close()


@pytest.mark.parametrize("error", [PermissionError(13, "denied"), ValueError("embedded null byte")])
def test_errors_are_raised_in_the_caller(error: Exception) -> None:
    def statvfs(path: str) -> os.statvfs_result:
        raise error

    runner = StatvfsRunner(statvfs)
    try:
        with pytest.raises(type(error)):
            runner.call("/x", 1.0)
        assert runner.stuck_paths() == frozenset()
    finally:
        runner.close()


def test_overrun_marks_the_path_stuck_until_the_call_returns(release: threading.Event) -> None:
    def statvfs(path: str) -> os.statvfs_result:
        if path == "/nfs":
            release.wait(30)
        return fake_statvfs_result()

    runner = StatvfsRunner(statvfs)
    try:
        started = time.monotonic()
        with pytest.raises(StatvfsTimeoutError, match="timed out"):
            runner.call("/nfs", 0.1)
        assert 0.1 <= time.monotonic() - started < 1.0
        assert runner.stuck_paths() == {"/nfs"}

        with pytest.raises(StatvfsTimeoutError, match="still stuck"):
            runner.call("/nfs", 1.0)
        assert runner.call("/local", 1.0).f_blocks == 1000  # a fresh worker serves the others

        release.set()
        deadline = time.monotonic() + 5.0
        while runner.stuck_paths() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert runner.stuck_paths() == frozenset()
        assert runner.call("/nfs", 1.0).f_blocks == 1000
    finally:
        runner.close()


def test_threads_are_bounded_by_stuck_paths_plus_one(release: threading.Event) -> None:
    def statvfs(path: str) -> os.statvfs_result:
        if path.startswith("/hung"):
            release.wait(30)
        return fake_statvfs_result()

    def workers() -> int:
        return sum(1 for t in threading.enumerate() if t.name == "dcmon-statvfs")

    deadline = time.monotonic() + 5.0
    while workers() and time.monotonic() < deadline:  # earlier tests' workers wind down
        time.sleep(0.01)
    before = workers()
    runner = StatvfsRunner(statvfs)
    try:
        for _ in range(5):
            for path in ("/hung-a", "/hung-b", "/ok"):
                with contextlib.suppress(StatvfsTimeoutError):
                    runner.call(path, 0.05)
        assert workers() - before == 3  # two stuck calls and one live worker
    finally:
        release.set()
        runner.close()
