"""The benchmark job is built on the first order, not at start-up."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from agent.bench.deferred import DeferredJob, order_job
from agent.bench.order_job import OrderJob
from agent.bench.remote import JobResult
from agent.config import load_settings
from agent.wire.bench import BenchOrder, BenchProgress

ROOT = Path(__file__).resolve().parents[3]


def test_the_job_is_made_on_the_first_order_and_then_kept() -> None:
    made: list[int] = []
    seen: list[str] = []

    def job(order: BenchOrder, progress: object, cancel: threading.Event) -> JobResult:
        seen.append(order.id)
        return JobResult("done")

    def make() -> object:
        made.append(1)
        return job

    deferred = DeferredJob(make)  # type: ignore[arg-type]
    assert not deferred.built and made == []
    order = BenchOrder(id="b1")
    progress: list[BenchProgress] = []
    for _ in range(2):
        assert deferred(order, progress.append, threading.Event()).state == "done"
    assert made == [1] and seen == ["b1", "b1"] and deferred.built


def test_the_settings_decide_the_job(tmp_path: Path) -> None:
    settings = load_settings(None, {"state_dir": tmp_path, "gpu": {"backend": "simulated"}})
    assert isinstance(order_job(settings), OrderJob)


def test_starting_the_agent_imports_no_benchmark_machinery() -> None:
    code = (
        "import sys, agent.main\n"
        "heavy = sorted(m for m in ('agent.bench.order_job', 'agent.bench.job', "
        "'agent.bench.workers', 'agent.wire.skus') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert done.stdout.strip() == ""
