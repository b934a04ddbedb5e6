"""The worker process and the seam around it: the stream it writes, refusals, a prompt exit on
SIGTERM, death with its parent, and SIGKILL for a worker that ignores SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.bench.backend import Device
from agent.bench.scripted import ScriptedBackend
from agent.bench.stream import Completed, Exited, Finished, Planned, Refused, Started, decode
from agent.bench.workers import InProcessWorker, SubprocessWorker, WorkerRun, WorkRequest
from tests.agent.bench.support import alive, kill_quietly, scenario, wait_gone

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux processes")
WORKER = [sys.executable, "-m", "agent.bench.worker"]


def _events(run: WorkerRun, timeout_s: float = 30.0) -> list[object]:
    events: list[object] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        event = run.next(0.1)
        if event is not None:
            events.append(event)
        if isinstance(event, Exited):
            return events
    raise AssertionError(f"no exit within {timeout_s} s: {events}")


def test_the_worker_streams_the_plan_each_start_and_result_then_the_run(tmp_path: Path) -> None:
    script = scenario(tmp_path, miscompares={"1": 2})
    done = subprocess.run(
        [*WORKER, "--level", "quick", "--backend", "scripted", "--script", str(script)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    events = [decode(line) for line in done.stdout.splitlines()]
    plan, *tests, last = events
    assert isinstance(plan, Planned) and plan.total == 12 and plan.backend == "scripted"
    assert [d.index for d in plan.devices] == [0, 1]
    assert [type(e) for e in tests] == [Started, Finished] * 12
    assert isinstance(tests[0], Started) and tests[0].test == "matmul_fp32"
    assert isinstance(last, Completed) and not last.run.passed
    burn = last.run.devices[1].results[-1]
    assert (burn.test, burn.status, burn.value) == ("burn_fp32", "fail", 2.0)


@pytest.mark.parametrize(
    ("script", "argv", "message"),
    [
        (True, ["--gpus", "5"], "no device 5 (devices: 0, 1)"),
        (False, [], "needs a scenario file"),
    ],
)
def test_a_request_that_cannot_run_is_refused_with_status_2(
    script: bool, argv: list[str], message: str, tmp_path: Path
) -> None:
    words = ["--level", "quick", "--backend", "scripted"]
    words += ["--script", str(scenario(tmp_path))] if script else []
    done = subprocess.run(
        [*WORKER, *words, *argv], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 2
    (line,) = done.stdout.splitlines()
    refused = decode(line)
    assert isinstance(refused, Refused) and message in refused.message


def test_sigterm_ends_the_worker_promptly_mid_test(tmp_path: Path) -> None:
    script = scenario(tmp_path, seconds_per_test=30.0, sleep=True)
    worker = subprocess.Popen(
        [*WORKER, "--level", "quick", "--backend", "scripted", "--script", str(script)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert worker.stdout is not None
        assert isinstance(decode(worker.stdout.readline()), Planned)
        assert isinstance(decode(worker.stdout.readline()), Started)
        began = time.monotonic()
        worker.terminate()
        assert worker.wait(10) == 128 + signal.SIGTERM
        assert time.monotonic() - began < 5.0
    finally:
        worker.kill()
        worker.wait()
        if worker.stdout is not None:
            worker.stdout.close()


def test_the_worker_dies_with_its_parent(tmp_path: Path) -> None:
    script = scenario(tmp_path, seconds_per_test=30.0, sleep=True)
    starter = (
        "import subprocess, sys, time\n"
        f"worker = subprocess.Popen({[*WORKER, '--level', 'quick', '--backend', 'scripted']!r}"
        f" + ['--script', {str(script)!r}, '--parent-pid', str(__import__('os').getpid())])\n"
        "print(worker.pid, flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", starter], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    pid = int(parent.stdout.readline())
    try:
        assert isinstance(decode(parent.stdout.readline()), Planned)  # prctl has been asked
        parent.kill()
        parent.wait()
        assert wait_gone(pid), "the worker outlived its parent"
    finally:
        kill_quietly(pid, signal.SIGKILL)
        parent.stdout.close()


def test_a_worker_whose_parent_is_already_gone_exits_before_running() -> None:
    gone = "999999999"  # above any pid_max: not this worker's parent
    done = subprocess.run(
        [*WORKER, "--level", "quick", "--backend", "numpy", "--parent-pid", gone],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 3 and done.stdout == ""


def test_the_subprocess_seam_relays_events_and_ends_with_the_exit(tmp_path: Path) -> None:
    worker = SubprocessWorker(scenario=scenario(tmp_path, gpus=1))
    request = WorkRequest("quick", (0,), 0.5, "torch")
    argv = worker.command(request)
    assert argv[1:5] == ["-m", "agent.bench.worker", "--level", "quick"]
    assert argv[argv.index("--gpus") + 1] == "0" and argv[argv.index("--duration") + 1] == "0.5"
    assert argv[argv.index("--backend") + 1] == "scripted"  # the scenario replaces torch
    assert argv[-2:] == ["--parent-pid", str(os.getpid())]
    run = worker.start(request)
    try:
        events = _events(run)
    finally:
        run.close()
    assert isinstance(events[0], Planned) and events[0].total == 6
    assert isinstance(events[-2], Completed) and events[-1] == Exited(0, "")
    assert run.errors == 0 and run.pid is not None and not alive(run.pid)


def test_stop_kills_a_worker_that_ignores_sigterm(tmp_path: Path) -> None:
    stubborn = tmp_path / "stubborn"
    stubborn.write_text("#!/bin/sh\ntrap '' TERM\nexec sleep 30\n", encoding="utf-8")
    stubborn.chmod(0o755)
    run = SubprocessWorker(python=str(stubborn), grace_s=0.3).start(WorkRequest("quick"))
    assert run.pid is not None
    comm = Path(f"/proc/{run.pid}/comm")
    deadline = time.monotonic() + 10.0
    while comm.read_text(encoding="ascii").strip() != "sleep" and time.monotonic() < deadline:
        time.sleep(0.01)  # SIGTERM is ignored from the exec on
    began = time.monotonic()
    run.stop()
    took = time.monotonic() - began
    try:
        events = _events(run, 10.0)
    finally:
        run.close()
    assert 0.3 <= took < 5.0
    assert isinstance(events[-1], Exited) and events[-1].code == -signal.SIGKILL
    assert run.pid is not None and not alive(run.pid)


def test_the_in_process_twin_stops_between_tests() -> None:
    backend = ScriptedBackend(
        device_list=(Device(0, "A", "cuda"), Device(1, "B", "cuda")),
        seconds_per_test=0.05,
        sleep=time.sleep,
    )
    run = InProcessWorker(backend, clock=backend.clock).start(WorkRequest("quick"))
    first = run.next(5.0)
    assert isinstance(first, Planned) and first.total == 12
    run.stop()
    events = _events(run)
    run.close()
    assert events[-1] == Exited(-signal.SIGTERM, "stopped between tests")
    assert not any(isinstance(e, Completed) for e in events)
    assert len(backend.calls) <= 1
