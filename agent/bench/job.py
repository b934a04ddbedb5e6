"""The benchmark and health job: the one entry point of ``dcmon bench`` and of remote runs.

Stage: ``JobSpec`` -> NVML pre-checks -> worker (the harness, in a subprocess) -> judged tree.
``run_job(spec, on_event=..., cancel=...)`` blocks until the job ends:

1. NVML: each requested GPU's identity (UUID, PCI bus id, name) and health snapshot
   (``checks``); a GPU with compute processes refuses the job (``busy``) unless ``force``.
2. The worker runs the harness (``workers``; compute never runs in this process) and streams
   its plan, each test's start and each result, relayed to ``on_event`` as ``JobEvent``s.
   Meanwhile NVML is sampled (``conditions``: each result gets the clocks, power, temperature
   and throttle reasons seen while it ran) and the XID source is polled (``xids``).
3. When the worker ends: the post-snapshots, then the verdicts (``verdicts``): figures against
   the SKU table, pre/post findings, throttle reasons and XIDs.

Arguments of ``run_job``:

- ``on_event``: called on the calling thread for each event; an exception it raises is logged
  and the job goes on.
- ``cancel``: set it to stop the job: the worker gets SIGTERM, then SIGKILL after a grace.
- ``worker``: where the harness runs (default ``SubprocessWorker()``).
- ``nvml``: ``AUTO`` (default) opens a session for the ``auto`` and ``torch`` backends when
  NVML starts, and shuts it down after; ``None``: no checks, conditions or identity; a backend
  object is used as it is (initialised by the caller, not shut down here).
- ``xids``: ``AUTO`` (default) is NVML's event source when this job opened its own NVML
  session, else none; ``None``: none; a source is polled, not closed.
- ``table``: the SKU table (default: the shipped one); ``sample_interval_s``: NVML sampling.

For remote runs, ``JobSpec.from_order`` reads a server's ``BenchOrder`` and
``JobEvent.progress`` gives the ``BenchProgress`` to report.

``JobOutcome.state`` is ``done`` (completed and passed), ``failed`` (completed and did not
pass, or the worker died: ``result`` has what finished, ``message`` says why), ``refused``
(nothing ran: a bad request, no such device, no backend, or busy GPUs with ``busy`` set) or
``cancelled`` (``result``: what finished, marked incomplete; a run that completed before the
cancel took effect keeps its own state). ``result`` is the judged tree,
valid as ``agent.wire.bench.BenchRun``. Device indices are NVML's (the worker numbers CUDA
devices by PCI bus id). The worker is waited for on the calling thread, as its death signal
(``worker.py``) needs.
"""

from __future__ import annotations

import dataclasses
import logging
import signal
import threading
import time
from collections.abc import Callable
from typing import Literal

from agent.bench.checks import Finding, Health, Identity, findings, identity, snapshot
from agent.bench.conditions import INTERVAL_S, Sampler, throttle_findings
from agent.bench.harness import LEVELS
from agent.bench.jobspec import AUTO, Auto, JobEvent, JobOutcome, JobSpec, JobState
from agent.bench.result import BenchResult, DeviceReport, RunResult
from agent.bench.stream import Completed, Exited, Finished, Planned, Refused, Started
from agent.bench.verdicts import judge
from agent.bench.workers import SubprocessWorker, Worker, WorkerRun, WorkRequest
from agent.bench.xids import XidWatch
from agent.collectors.gpu.backend import NvmlBackend, NvmlError
from agent.events.collector import XidSource
from agent.wire.bench import MAX_TEXT
from agent.wire.skus import SkuTable, default_table

_log = logging.getLogger(__name__)

XID_POLL_S = 0.5
_NVML_BACKENDS = ("auto", "torch")


def run_job(
    spec: JobSpec,
    *,
    on_event: Callable[[JobEvent], None],
    cancel: threading.Event,
    worker: Worker | None = None,
    nvml: NvmlBackend | Literal[Auto.AUTO] | None = AUTO,
    xids: XidSource | Literal[Auto.AUTO] | None = AUTO,
    table: SkuTable | None = None,
    sample_interval_s: float = INTERVAL_S,
) -> JobOutcome:
    """Run one benchmark job to its end (see the module for the arguments and states)."""
    problem = _bad_spec(spec)
    if problem:
        return JobOutcome("refused", problem)
    session = _open_nvml(spec.backend) if nvml is AUTO else nvml
    source: XidSource | None = None
    own_source = xids is AUTO and nvml is AUTO and session is not None
    if own_source:
        source = _open_xids()
    elif xids is not AUTO:
        source = xids
    try:
        job = _Job(spec, on_event, cancel, session, source, sample_interval_s)
        return job.run(worker if worker is not None else SubprocessWorker(), table)
    finally:
        if own_source and source is not None:
            source.close()
        if nvml is AUTO and session is not None:
            session.shutdown()


def _bad_spec(spec: JobSpec) -> str:
    if spec.level not in LEVELS:
        return f"unknown level {spec.level!r} (choose from {', '.join(LEVELS)})"
    if spec.duration_s is not None and not 0 < spec.duration_s < float("inf"):
        return "the burn duration must be positive"
    if spec.gpus is not None and any(i < 0 for i in spec.gpus):
        return "device indices are not negative"
    return ""


def _open_nvml(backend: str) -> NvmlBackend | None:
    if backend not in _NVML_BACKENDS:
        return None
    from agent.collectors.gpu.nvml_backend import PynvmlBackend  # noqa: PLC0415 (GPU hosts)

    session = PynvmlBackend()
    try:
        session.init()
    except NvmlError as exc:
        _log.info("no NVML (%s): no health checks, conditions or GPU identity", exc)
        return None
    return session


def _open_xids() -> XidSource:
    from agent.events.nvml_source import NvmlEventSource  # noqa: PLC0415 (GPU hosts)

    source = NvmlEventSource(quiet_when_absent=True)
    source.start()
    source.wait_ready(2.0)
    return source


class _Job:
    """One job's state while it runs (``run_job``'s body, split for reading)."""

    def __init__(
        self,
        spec: JobSpec,
        on_event: Callable[[JobEvent], None],
        cancel: threading.Event,
        nvml: NvmlBackend | None,
        xids: XidSource | None,
        sample_interval_s: float,
    ) -> None:
        self.spec, self.on_event, self.cancel = spec, on_event, cancel
        self.nvml, self.xids, self.interval_s = nvml, xids, sample_interval_s
        self.identity: dict[int, Identity] = {}
        self.before: dict[int, Health] = {}
        self.plan: Planned | None = None
        self.started_at, self.start = time.time(), time.monotonic()
        self.results: dict[tuple[int, str], BenchResult] = {}
        self.completed: RunResult | None = None
        self.refused = ""
        self.exited = Exited(0)
        self.sampler: Sampler | None = None
        self.watch: XidWatch | None = None

    def run(self, worker: Worker, table: SkuTable | None) -> JobOutcome:
        refusal = self._precheck()
        if refusal is not None:
            return refusal
        if self.xids is not None:
            buses = {i: self.identity[i].pci_bus_id for i in self.before}
            self.watch = XidWatch(self.xids, buses)
            self.watch.drain()
        request = WorkRequest(
            self.spec.level,
            None if self.spec.gpus is None else tuple(self.spec.gpus),
            self.spec.duration_s,
            self.spec.backend,
        )
        try:
            run = worker.start(request)
        except OSError as exc:
            return JobOutcome("failed", _clip(f"the benchmark worker did not start: {exc}"))
        try:
            self._follow(run)
        finally:
            run.close()
            if self.sampler is not None:
                self.sampler.stop()
        if self.watch is not None:
            self.watch.poll()
        return self._outcome(table or default_table())

    def _precheck(self) -> JobOutcome | None:
        nvml = self.nvml
        if nvml is None:
            return None
        try:
            count = nvml.device_count()
        except NvmlError as exc:
            _log.warning("NVML cannot count the GPUs (%s): no health checks", exc)
            self.nvml = None
            return None
        if count == 0:  # NVML without GPUs: the worker measures the CPU
            self.nvml = None
            return None
        wanted = list(range(count)) if self.spec.gpus is None else self.spec.gpus
        missing = [i for i in wanted if i >= count]
        if missing:
            have = ", ".join(str(i) for i in range(count))
            return JobOutcome("refused", f"no device {missing[0]} (devices: {have})")
        for index in dict.fromkeys(wanted):
            self.identity[index] = identity(nvml, index)
            self.before[index] = snapshot(nvml, index)
        busy = [str(i) for i, health in self.before.items() if health.compute_processes]
        if busy and not self.spec.force:
            message = (
                f"GPU {', '.join(busy)} run compute processes: their figures would be wrong "
                "and their jobs slowed; stop them or force the run"
            )
            return JobOutcome("refused", message, busy=True)
        return None

    def _follow(self, run: WorkerRun) -> None:
        """Relay the worker's events until it exits; stop it when cancelled."""
        stopping, next_poll = False, 0.0
        while True:
            if self.cancel.is_set() and not stopping:
                stopping = True
                run.stop()
            event = run.next(0.1)
            if self.watch is not None and time.monotonic() >= next_poll:
                self.watch.poll()
                next_poll = time.monotonic() + XID_POLL_S
            if isinstance(event, Exited):
                self.exited = event
                return
            if isinstance(event, Planned):
                self._planned(event)
            elif isinstance(event, Started):
                if self.sampler is not None:
                    self.sampler.begin(event.device)
                self._emit(JobEvent("started", len(self.results), self._total(), event.test,
                                    event.device))  # fmt: skip
            elif isinstance(event, Finished):
                self._finished(event.result)
            elif isinstance(event, Completed):
                self.completed = event.run
            elif isinstance(event, Refused):
                self.refused = event.message

    def _planned(self, plan: Planned) -> None:
        self.plan = plan
        self.started_at, self.start = time.time(), time.monotonic()
        gpus = [d.index for d in plan.devices if d.kind == "cuda" and d.index in self.before]
        # NVML's facts are about the GPUs the worker measures (none when it measures the CPU)
        self.before = {i: self.before[i] for i in gpus}
        self.identity = {i: self.identity[i] for i in gpus}
        if not gpus:
            self.watch = None
        elif self.nvml is not None:
            self.sampler = Sampler(self.nvml, gpus, interval_s=self.interval_s)
            self.sampler.start()
        self._emit(JobEvent("planned", 0, plan.total, note=plan.note))

    def _finished(self, result: BenchResult) -> None:
        if self.sampler is not None:
            result = dataclasses.replace(result, conditions=self.sampler.end(result.device))
        self.results[(result.device, result.test)] = result
        self._emit(JobEvent("finished", len(self.results), self._total(), result.test,
                            result.device, result))  # fmt: skip

    def _total(self) -> int:
        return 0 if self.plan is None else self.plan.total

    def _emit(self, event: JobEvent) -> None:
        try:
            self.on_event(event)
        except Exception:  # noqa: BLE001 (a listener's failure must not orphan the worker)
            _log.exception("a bench job listener failed")

    def _outcome(self, table: SkuTable) -> JobOutcome:
        if self.refused:
            return JobOutcome("refused", self.refused)
        broken = "" if self.completed is not None else self._why_incomplete()
        run = self._run_result(broken)
        if run is None:
            state: JobState = "cancelled" if self.cancel.is_set() else "failed"
            return JobOutcome(state, broken)
        judged = judge(run, table, self._findings(table), self.identity)
        tree = judged.to_dict()
        if broken:
            state = "cancelled" if self.cancel.is_set() else "failed"
            return JobOutcome(state, broken, result=tree, judged=judged)
        if judged.passed:
            message = f"passed: {len(self.results)} tests on {len(run.devices)} device(s)"
            return JobOutcome("done", message, result=tree, judged=judged)
        reasons = judged.reasons()
        more = f"; and {len(reasons) - 5} more" if len(reasons) > 5 else ""
        message = _clip("failed: " + "; ".join(reasons[:5]) + more)
        return JobOutcome("failed", message, result=tree, judged=judged)

    def _why_incomplete(self) -> str:
        done, total = len(self.results), self._total()
        if self.cancel.is_set():
            return f"cancelled after {done} of {total} tests"
        code = self.exited.code
        how = f"killed by {_signal_name(-code)}" if code < 0 else f"exit status {code}"
        message = f"the benchmark worker died ({how}) after {done} of {total} tests"
        if code == 0:
            message = f"the benchmark worker ended without its result after {done} of {total}"
        last = self.exited.detail.strip().splitlines()[-3:]
        return _clip(f"{message}: {' | '.join(last)}" if last else message)

    def _run_result(self, broken: str) -> RunResult | None:
        """Returns: the worker's run with each result's conditions, or the partial run of
        what finished (``broken`` says why), or None when no plan arrived."""
        if self.completed is not None:
            mine = self.results
            reports = tuple(
                DeviceReport(r.device, tuple(mine.get((x.device, x.test), x) for x in r.results))
                for r in self.completed.devices
            )
            return dataclasses.replace(self.completed, devices=reports)
        plan = self.plan
        if plan is None:
            return None
        reports = tuple(
            DeviceReport(d, tuple(r for r in self.results.values() if r.device == d.index))
            for d in plan.devices
        )
        note = _clip(f"{plan.note}; {broken}" if plan.note else broken)
        duration = time.monotonic() - self.start
        return RunResult(self.spec.level, plan.backend, self.started_at, duration, reports, note,
                         complete=False)  # fmt: skip

    def _findings(self, table: SkuTable) -> dict[int, tuple[Finding, ...]]:
        found: dict[int, list[Finding]] = {}
        nvml = self.nvml
        for index, health in self.before.items():
            after = snapshot(nvml, index) if nvml is not None else None
            sku = table.find_sku(name=self.identity[index].name)
            found[index] = findings(health, after, sku)
            if self.sampler is not None:
                found[index] += throttle_findings(*self.sampler.seen(index))
        if self.watch is not None:
            for index, items in self.watch.findings().items():
                if index in found:
                    found[index] += items
        return {index: tuple(items) for index, items in found.items()}


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _clip(text: str) -> str:
    return text if len(text) <= MAX_TEXT else text[: MAX_TEXT - 3] + "..."
