"""The job with its real worker process: a scripted failure from a scenario file, a CPU run
whose tree the wire accepts, a cancel that leaves no process behind, and a worker killed with
SIGKILL mid-run (failed, with what finished kept)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from agent.bench.job import run_job
from agent.bench.jobspec import JobEvent, JobOutcome, JobSpec
from agent.bench.workers import SubprocessWorker, WorkerRun, WorkRequest
from agent.collectors.gpu.scripted import ScriptedBackend as ScriptedNvml
from agent.wire.bench import BenchRun
from tests.agent.bench.support import alive, scenario
from tests.fakes.nvml import gpu_uuid, h100

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux processes")


class Recording:
    """A worker that remembers the runs it started (to find their processes)."""

    def __init__(self, inner: SubprocessWorker) -> None:
        self.inner = inner
        self.runs: list[WorkerRun] = []

    def start(self, request: WorkRequest) -> WorkerRun:
        run = self.inner.start(request)
        self.runs.append(run)
        return run


def _nvml() -> ScriptedNvml:
    nvml = ScriptedNvml([h100(0), h100(1)])
    nvml.init()
    return nvml


def _run(
    worker: Any,
    *,
    spec: JobSpec | None = None,
    on_event: Any = None,
    cancel: threading.Event | None = None,
    nvml: Any = None,
) -> JobOutcome:
    return run_job(
        spec or JobSpec("quick"),
        on_event=on_event or (lambda event: None),
        cancel=cancel or threading.Event(),
        worker=worker,
        nvml=nvml,
        sample_interval_s=0.01,
    )


def test_a_scripted_miscompare_in_the_worker_process_fails_the_job(tmp_path: Path) -> None:
    worker = SubprocessWorker(scenario=scenario(tmp_path, miscompares={"0": 4}))
    outcome = _run(worker, nvml=_nvml())
    assert outcome.state == "failed"
    assert "device 0 burn_fp32: fail: 4 elements differed" in outcome.message
    assert outcome.result is not None
    tree = BenchRun.model_validate(outcome.result)
    assert tree.backend == "scripted" and tree.devices[1].device.uuid == gpu_uuid(1)
    assert tree.devices[0].results[0].conditions is not None


def test_a_cpu_run_in_the_worker_process_is_done_and_its_tree_is_valid() -> None:
    events: list[JobEvent] = []
    outcome = run_job(
        JobSpec("quick", duration_s=0.05, backend="numpy"),
        on_event=events.append,
        cancel=threading.Event(),
    )
    assert outcome.state == "done", outcome.message
    assert outcome.result is not None
    tree = BenchRun.model_validate(outcome.result)
    assert tree.backend == "numpy" and tree.devices[0].device.kind == "cpu"
    assert tree.devices[0].results[0].conditions is None
    assert "CPU, not a GPU" in events[0].note and events[-1].done == 6


def test_cancel_stops_the_worker_process_and_leaves_none_behind(tmp_path: Path) -> None:
    worker = Recording(SubprocessWorker(scenario=scenario(tmp_path, seconds_per_test=0.3,
                                                          sleep=True)))  # fmt: skip
    cancel = threading.Event()
    cancelled_at: list[float] = []

    def stop(event: JobEvent) -> None:
        if event.kind == "finished" and not cancel.is_set():
            cancelled_at.append(time.monotonic())
            cancel.set()

    outcome = _run(worker, on_event=stop, cancel=cancel, nvml=_nvml())
    took = time.monotonic() - cancelled_at[0]
    assert outcome.state == "cancelled" and outcome.message == "cancelled after 1 of 12 tests"
    pid = worker.runs[0].pid
    assert pid is not None and not alive(pid)
    assert took < 3.0  # SIGTERM was enough: no wait for the SIGKILL grace
    assert outcome.result is not None and outcome.result["complete"] is False
    BenchRun.model_validate(outcome.result)


def test_a_worker_killed_mid_run_fails_the_job_and_keeps_what_finished(tmp_path: Path) -> None:
    worker = Recording(SubprocessWorker(scenario=scenario(tmp_path, seconds_per_test=0.2,
                                                          sleep=True)))  # fmt: skip

    def kill(event: JobEvent) -> None:
        if event.kind == "finished" and event.done == 2:
            pid = worker.runs[0].pid
            assert pid is not None
            os.kill(pid, signal.SIGKILL)

    outcome = _run(worker, on_event=kill, nvml=_nvml())
    assert outcome.state == "failed"
    assert outcome.message.startswith(
        "the benchmark worker died (killed by SIGKILL) after 2 of 12 tests"
    ), outcome.message
    assert outcome.result is not None
    tree = BenchRun.model_validate(outcome.result)
    assert not tree.passed and outcome.result["complete"] is False
    assert [r.test for r in tree.devices[0].results] == ["matmul_fp32", "matmul_bf16"]
    assert tree.devices[1].results == [] and "worker died" in tree.note
    assert tree.checks["0"] == [] and tree.devices[0].device.sku == "h100_sxm"


def test_a_worker_that_cannot_start_fails_the_job_with_why(tmp_path: Path) -> None:
    missing = SubprocessWorker(python=str(tmp_path / "no-python"))
    outcome = _run(missing)
    assert outcome.state == "failed" and outcome.result is None
    assert outcome.message.startswith("the benchmark worker did not start: ")
    assert "no-python" in outcome.message
