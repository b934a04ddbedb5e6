"""A server's benchmark order as a job: ``agent.bench.remote.Job`` over ``agent.bench.job``.

Stage: remote runner -> (this) -> ``run_job``. The order's level, GPUs, burn duration and
``force`` become a ``JobSpec`` on the node's configured backend (``[bench] backend``); job
events become the progress the runner reports; the outcome keeps its state, message, ``busy``
flag and judged tree. A node with ``[bench] remote = false`` refuses every order, saying why.

A node whose GPUs are simulated (the demo) has nothing to measure them with: its orders run
the scripted backend on figures modelled on each GPU's SKU (``agent.bench.simulated``, named
``simulated`` in the result), with the health checks and conditions read from a simulated
NVML built as the telemetry's is, so identities and faults match the node's series.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from agent.bench.job import run_job
from agent.bench.jobspec import JobEvent, JobSpec
from agent.bench.remote import JobResult
from agent.bench.simulated import scenario, write_scenario
from agent.bench.workers import SubprocessWorker
from agent.collectors.gpu.backend import NvmlBackend, NvmlError
from agent.wire.bench import BenchOrder, BenchProgress
from agent.wire.skus import default_table

OFF = "this node does not run benchmark requests from the server ([bench] remote = false)"


@dataclass(frozen=True)
class SimulatedGpus:
    """How to benchmark a node's simulated GPUs."""

    nvml: Callable[[], NvmlBackend]  # a fresh simulated NVML, not yet initialised
    scenario_path: Path
    seed: int = 0
    degraded: Mapping[int, Mapping[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class OrderJob:
    backend: str = "auto"
    remote: bool = True
    simulated: SimulatedGpus | None = None

    def __call__(
        self,
        order: BenchOrder,
        progress: Callable[[BenchProgress], None],
        cancel: threading.Event,
    ) -> JobResult:
        if not self.remote:
            return JobResult("refused", OFF)
        spec = dataclasses.replace(JobSpec.from_order(order), backend=self.backend)

        def relay(event: JobEvent) -> None:
            progress(event.progress())

        if self.simulated is None:
            outcome = run_job(spec, on_event=relay, cancel=cancel)
            return JobResult(outcome.state, outcome.message, outcome.busy, outcome.result)
        sim = self.simulated
        nvml = sim.nvml()
        try:
            nvml.init()
            plan = scenario(nvml, default_table(), seed=sim.seed, degraded=sim.degraded)
            write_scenario(sim.scenario_path, plan)
            outcome = run_job(
                dataclasses.replace(spec, backend="scripted"),
                on_event=relay,
                cancel=cancel,
                worker=SubprocessWorker(scenario=sim.scenario_path),
                nvml=nvml,
                xids=None,
            )
        except NvmlError as exc:
            return JobResult("refused", f"the simulated GPUs did not start: {exc}")
        finally:
            nvml.shutdown()
        return JobResult(outcome.state, outcome.message, outcome.busy, outcome.result)
