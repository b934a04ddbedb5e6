"""The remote runner: orders from push answers, reports (progress, waiting, final) to the server."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from agent.backoff import Backoff
from agent.bench.remote import BenchRunner, JobResult
from agent.transport.bench import Delivery, MemoryReporter
from agent.wire.bench import BenchOrder, BenchProgress, BenchReport, BenchRun

RESULT = {
    "level": "quick",
    "backend": "numpy",
    "started_at": 1.0,
    "duration_s": 0.5,
    "passed": True,
    "devices": [
        {
            "device": {"index": 0, "name": "CPU", "kind": "cpu"},
            "results": [
                {
                    "test": "matmul_fp32",
                    "device": 0,
                    "status": "ok",
                    "value": 0.2,
                    "unit": "TFLOP/s",
                }
            ],
        }
    ],
}


def wait_for(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


class FakeJob:
    """Plays ``outcomes`` one per call; ``hold`` keeps a run going until released or
    cancelled."""

    def __init__(self, *outcomes: JobResult | Exception, hold: bool = False) -> None:
        self.outcomes = list(outcomes)
        self.calls: list[str] = []
        self.release = threading.Event()
        self.started = threading.Event()
        self.hold = hold

    def __call__(
        self,
        order: BenchOrder,
        progress: Callable[[BenchProgress], None],
        cancel: threading.Event,
    ) -> JobResult:
        self.calls.append(order.id)
        progress(BenchProgress(done=0, total=2, test="matmul_fp32", device=0))
        self.started.set()
        if self.hold:
            while not (self.release.is_set() or cancel.is_set()):
                time.sleep(0.01)
            if cancel.is_set():
                return JobResult("cancelled", "cancelled")
        outcome = self.outcomes.pop(0) if self.outcomes else JobResult("done", result=RESULT)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome


@pytest.fixture
def started() -> Iterator[Callable[..., BenchRunner]]:
    runners: list[BenchRunner] = []

    def start(reporter: MemoryReporter, job: FakeJob, outbox: Path, **kw: object) -> BenchRunner:
        runner = BenchRunner(
            reporter,
            job,
            outbox,
            busy_retry_seconds=kw.pop("busy_retry_seconds", 0.05),  # type: ignore[arg-type]
            progress_interval_seconds=0.0,
            backoff=Backoff(0.01, 0.05),
            **kw,  # type: ignore[arg-type]
        )
        runner.start()
        runners.append(runner)
        return runner

    yield start
    for runner in runners:
        runner.stop(5.0)


def order(request_id: str = "r1", **kw: object) -> BenchOrder:
    return BenchOrder(id=request_id, level="quick", expires_at=time.time() + 3600, **kw)  # type: ignore[arg-type]


def test_an_order_runs_once_and_reports_progress_then_the_result(
    tmp_path: Path, started: Callable[..., BenchRunner]
) -> None:
    reporter, job = MemoryReporter(), FakeJob(hold=True)
    runner = started(reporter, job, tmp_path)
    runner.offer(order())
    # Held until its progress is out: a job that ends at once may go straight to its final
    # report (finals are sent first), which is right but not what this test looks at.
    wait_for(lambda: "running" in reporter.states("r1"))
    job.release.set()
    wait_for(lambda: "done" in reporter.states("r1"))
    for _ in range(5):  # the server repeats the order until it has the final report
        runner.offer(order())
    time.sleep(0.1)
    assert job.calls == ["r1"]
    states = reporter.states("r1")
    assert states[0] == "running" and states[-1] == "done"
    final = reporter.reports[-1][1]
    assert final.result is not None and final.result.devices[0].results[0].value == 0.2
    assert not list(tmp_path.iterdir())  # delivered: nothing left in the outbox


def test_busy_gpus_wait_and_run_once_free(
    tmp_path: Path, started: Callable[..., BenchRunner]
) -> None:
    busy = JobResult("refused", "GPU 0 runs compute processes", busy=True)
    reporter, job = MemoryReporter(), FakeJob(busy, busy)
    runner = started(reporter, job, tmp_path)
    runner.offer(order())
    wait_for(lambda: "done" in reporter.states("r1"))
    assert job.calls == ["r1", "r1", "r1"]
    waiting = [r for i, r in reporter.reports if r.state == "waiting"]
    assert waiting and "compute processes" in waiting[0].message


def test_busy_until_the_order_expires_is_refused(
    tmp_path: Path, started: Callable[..., BenchRunner]
) -> None:
    busy = JobResult("refused", "GPU 1 runs compute processes", busy=True)
    reporter, job = MemoryReporter(), FakeJob(*([busy] * 100))
    runner = started(reporter, job, tmp_path, busy_retry_seconds=0.2)
    runner.offer(BenchOrder(id="r1", expires_at=time.time() + 0.5))
    wait_for(lambda: "refused" in reporter.states("r1"))
    final = reporter.reports[-1][1]
    assert "stayed busy" in final.message and "GPU 1" in final.message
    assert 1 <= len(job.calls) <= 4


def test_an_expired_order_is_refused_without_running(
    tmp_path: Path, started: Callable[..., BenchRunner]
) -> None:
    reporter, job = MemoryReporter(), FakeJob()
    runner = started(reporter, job, tmp_path)
    runner.offer(BenchOrder(id="r1", expires_at=time.time() - 1))
    wait_for(lambda: bool(reporter.states("r1")))
    assert reporter.states("r1") == ["refused"] and job.calls == []


def test_cancel_stops_the_running_job(tmp_path: Path, started: Callable[..., BenchRunner]) -> None:
    reporter, job = MemoryReporter(), FakeJob(hold=True)
    runner = started(reporter, job, tmp_path)
    runner.offer(order())
    assert job.started.wait(5)
    runner.offer(order(cancel=True))
    wait_for(lambda: "cancelled" in reporter.states("r1"))
    assert runner.current is None


def test_cancel_of_an_order_not_running_here_is_answered_at_once(
    tmp_path: Path, started: Callable[..., BenchRunner]
) -> None:
    reporter, job = MemoryReporter(), FakeJob()
    runner = started(reporter, job, tmp_path)
    runner.offer(order("r9", cancel=True))
    wait_for(lambda: bool(reporter.states("r9")))
    assert reporter.states("r9") == ["cancelled"] and job.calls == []


def test_a_final_report_survives_the_server_being_away_and_a_restart(
    tmp_path: Path, started: Callable[..., BenchRunner]
) -> None:
    away = MemoryReporter(answer=lambda i, r: Delivery("retry", "connection refused"))
    runner = started(away, FakeJob(), tmp_path)
    runner.offer(order())
    wait_for((tmp_path / "r1.json").exists)
    time.sleep(0.2)  # several failed attempts
    assert runner.stats().report_failures_total >= 2
    runner.stop()
    assert (tmp_path / "r1.json").exists()  # kept for the next start

    back, job = MemoryReporter(), FakeJob()
    again = started(back, job, tmp_path)
    again.offer(order())  # the server still sends it until it has the report
    wait_for(lambda: "done" in back.states("r1"))
    assert job.calls == []  # not run twice
    wait_for(lambda: not (tmp_path / "r1.json").exists())


def test_a_run_cut_short_by_a_stop_is_reported_failed_at_the_next_start(
    tmp_path: Path, started: Callable[..., BenchRunner]
) -> None:
    (tmp_path / "r5.running").write_text(order("r5").model_dump_json())
    reporter = MemoryReporter()
    started(reporter, FakeJob(), tmp_path)
    wait_for(lambda: bool(reporter.states("r5")))
    final = reporter.reports[-1][1]
    assert final.state == "failed" and "stopped during the run" in final.message


def test_the_server_dropping_the_request_stops_the_run(
    tmp_path: Path, started: Callable[..., BenchRunner]
) -> None:
    def answer(request_id: str, report: BenchReport) -> Delivery:
        return (
            Delivery("gone", "409 not_open: expired")
            if report.state == "running"
            else Delivery("stored")
        )

    reporter, job = MemoryReporter(answer=answer), FakeJob(hold=True)
    runner = started(reporter, job, tmp_path)
    runner.offer(order())
    wait_for(lambda: runner.current is None and job.started.is_set())
    # The final report goes out on the delivery thread, after the run has ended.
    wait_for(lambda: bool(reporter.states("r1")))
    assert reporter.states("r1") == ["cancelled"]


def test_a_job_that_raises_fails_its_request_and_the_next_one_runs(
    tmp_path: Path, started: Callable[..., BenchRunner]
) -> None:
    reporter, job = MemoryReporter(), FakeJob(RuntimeError("worker would not start"))
    runner = started(reporter, job, tmp_path)
    runner.offer(order("r1"))
    wait_for(lambda: "failed" in reporter.states("r1"))
    assert "worker would not start" in reporter.reports[-1][1].message
    runner.offer(order("r2"))
    wait_for(lambda: "done" in reporter.states("r2"))
    assert runner.stats().restarts_total == 1


def test_a_result_off_the_wire_schema_becomes_a_failed_report(
    tmp_path: Path, started: Callable[..., BenchRunner]
) -> None:
    reporter = MemoryReporter()
    runner = started(reporter, FakeJob(JobResult("done", result={"level": 3})), tmp_path)
    runner.offer(order())
    wait_for(lambda: "failed" in reporter.states("r1"))
    assert "wire schema" in reporter.reports[-1][1].message


def test_an_order_id_that_is_not_a_plain_token_is_ignored(
    tmp_path: Path, started: Callable[..., BenchRunner]
) -> None:
    reporter, job = MemoryReporter(), FakeJob()
    runner = started(reporter, job, tmp_path / "outbox")
    runner.offer(order("../escape"))
    time.sleep(0.1)
    assert job.calls == [] and not (tmp_path / "escape.json").exists()


def test_an_order_runs_the_real_job_in_a_worker_process() -> None:
    from agent.bench.order_job import OrderJob  # noqa: PLC0415 (numpy, only here)

    heard: list[BenchProgress] = []
    outcome = OrderJob(backend="numpy")(order(), heard.append, threading.Event())
    assert outcome.state == "done", outcome.message
    assert outcome.result is not None
    run = BenchRun.model_validate(outcome.result)
    assert run.backend == "numpy" and run.devices[0].device.kind == "cpu"
    assert heard and heard[-1].done == heard[-1].total > 0


def test_a_node_that_runs_no_remote_benchmarks_refuses_saying_why() -> None:
    from agent.bench.order_job import OrderJob  # noqa: PLC0415

    outcome = OrderJob(remote=False)(order(), lambda p: None, threading.Event())
    assert outcome.state == "refused" and "remote = false" in outcome.message


def test_simulated_gpus_are_benchmarked_on_their_sku_model_and_say_so(tmp_path: Path) -> None:
    from agent.bench.order_job import OrderJob, SimulatedGpus  # noqa: PLC0415
    from agent.collectors.gpu import SimulatedBackend  # noqa: PLC0415

    sim = SimulatedGpus(
        lambda: SimulatedBackend(3, seed=4),
        tmp_path / "scenario.json",
        4,
        {1: {"memory_copy": 0.8}},
    )
    outcome = OrderJob(simulated=sim)(order(), lambda p: None, threading.Event())
    assert outcome.result is not None, outcome.message
    run = BenchRun.model_validate(outcome.result)
    assert run.backend == "simulated" and "nothing was measured" in run.note
    reference = SimulatedBackend(3, seed=4)
    reference.init()
    assert [d.device.uuid for d in run.devices] == [reference.uuid(i) for i in range(3)]
    assert {d.device.sku for d in run.devices} == {"h100_sxm"}
    copies = {
        d.device.index: f.value for d in run.devices for f in d.results if f.test == "memory_copy"
    }
    assert copies[1] is not None and copies[0] is not None and copies[2] is not None
    assert copies[1] < 0.85 * min(copies[0], copies[2])
    verdicts = {(j.device, j.test): j.status for j in run.judgement}
    assert verdicts[(0, "memory_copy")] == "pass" and verdicts[(1, "memory_copy")] == "warn"
