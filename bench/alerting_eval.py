"""dcmon's evaluation rounds for ``bench/alerting.py``: the server's evaluator, in a fresh process.

The database was loaded beforehand (``promql_load.load_in_process``: the ingest service's
write path). A spawned process builds the server application on it (``create_app``: the same
store, reader, series index, state store and alerting service a ``dcmon server`` builds) with a
clock of its own, leads the evaluator and calls ``Evaluator.tick`` once per round interval of
simulated time: the first tick sets every group's next slot, each later tick evaluates every
group once, at its slot, as the server's rule thread does. The clock is the round's time, so
staleness, node status and the stored ``ALERTS`` are those of a server evaluating at that time;
the rounds sit at the end of the loaded history, so every window sees the data before it.
Each round is timed: wall (``perf_counter``) and the CPU of the whole process (all threads, the
database writer included). Nothing else runs in the process meanwhile. Optionally one more
round is run under cProfile and its top functions returned.
"""

from __future__ import annotations

import cProfile
import io
import json
import multiprocessing
import multiprocessing.connection
import os
import pstats
import time
from dataclasses import dataclass, field
from pathlib import Path

from agent_overhead import BenchError

from server.app import create_app
from server.rules.state import State
from server.settings import ServerSettings


@dataclass(frozen=True)
class EvalJob:
    data_dir: Path
    rule_files: tuple[str, ...]
    env: dict[str, str]
    first_round_s: float  # simulated time of the priming tick; round k is k intervals later
    interval_s: float
    rounds: int  # measured rounds (one more, not measured, warms up)
    profile: bool = False


@dataclass
class EvalResult:
    wall_s: list[float] = field(default_factory=list)
    cpu_s: list[float] = field(default_factory=list)
    groups: int = 0
    rules: int = 0
    firing: int = 0
    pending: int = 0
    rule_errors: list[str] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    profile: str = ""
    startup_s: float = 0.0


class _Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _evaluations(app_state: object) -> int:
    evaluator = app_state.alerting.evaluator  # type: ignore[attr-defined]
    return sum(run.evaluations for run in evaluator.snapshot())


def _run(job: EvalJob) -> EvalResult:
    for key, value in job.env.items():
        os.environ[key] = value
    os.environ["DCMON_SERVER_RULE_FILES"] = json.dumps(list(job.rule_files))
    os.environ["DCMON_SERVER_RULES_SHIPPED"] = "false"
    clock = _Clock(job.first_round_s)
    began = time.perf_counter()
    app = create_app(ServerSettings(data_dir=job.data_dir), clock=clock)
    services = app.state.services
    result = EvalResult(startup_s=time.perf_counter() - began)
    try:
        evaluator = app.state.alerting.evaluator
        ruleset = evaluator.ruleset
        if ruleset.errors:
            raise BenchError(f"rule files: {ruleset.errors}")
        result.groups = len(ruleset.groups)
        result.rules = sum(len(g.group.rules) for g in ruleset.groups)
        evaluator.lead()
        evaluator.tick(clock.now)  # primes every group's next slot
        profiler = cProfile.Profile() if job.profile else None
        for index in range(1 + job.rounds + (1 if profiler else 0)):
            clock.now = job.first_round_s + (index + 1) * job.interval_s
            profiled = profiler is not None and index == job.rounds + 1
            before = _evaluations(app.state)
            cpu0, wall0 = time.process_time(), time.perf_counter()
            if profiled:
                assert profiler is not None
                profiler.runcall(evaluator.tick, clock.now)
            else:
                evaluator.tick(clock.now)
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            done = _evaluations(app.state) - before
            if done != result.groups:
                raise BenchError(f"round {index}: {done} of {result.groups} groups evaluated")
            if 0 < index <= job.rounds:
                result.wall_s.append(wall)
                result.cpu_s.append(cpu)
        if profiler is not None:
            text = io.StringIO()
            stats = pstats.Stats(profiler, stream=text)
            stats.sort_stats("tottime").print_stats(15)
            stats.sort_stats("cumulative").print_stats(25)
            result.profile = text.getvalue()
        for run in evaluator.snapshot():
            for number, status in enumerate(run.rules):
                if status.health == "err":
                    rule = run.loaded.group.rules[number]
                    name = getattr(rule, "alert", None) or getattr(rule, "record", "?")
                    result.rule_errors.append(f"{name}: {status.last_error}")
            for alerts in run.state.alerts.values():
                for alert in alerts.values():
                    result.firing += alert.state is State.FIRING
                    result.pending += alert.state is State.PENDING
        result.failures = dict(evaluator.failures)
    finally:
        services.store.writer.close()
        services.store.engine.dispose()
    return result


def _worker(job: EvalJob, pipe: multiprocessing.connection.Connection) -> None:
    try:
        pipe.send(("done", _run(job)))
    except BaseException as exc:  # noqa: BLE001 (report the worker's failure to the parent)
        pipe.send(("failed", f"{type(exc).__name__}: {exc}"))


def evaluate(job: EvalJob, timeout: float) -> EvalResult:
    """Run ``job`` in a fresh process; returns its figures.

    Raises:
        BenchError: the process failed, or ran past ``timeout`` seconds.
    """
    context = multiprocessing.get_context("spawn")
    ours, theirs = context.Pipe()
    process = context.Process(target=_worker, args=(job, theirs), daemon=True)
    process.start()
    try:
        if not ours.poll(timeout):
            raise BenchError(f"dcmon's evaluation rounds took over {timeout:g} s")
        try:
            kind, payload = ours.recv()
        except EOFError as exc:
            raise BenchError(f"the evaluation process exited ({process.exitcode})") from exc
        if kind != "done":
            raise BenchError(f"dcmon's evaluation rounds: {payload}")
        assert isinstance(payload, EvalResult)
        return payload
    finally:
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
