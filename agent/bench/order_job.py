"""A server's benchmark order as a job: ``agent.bench.remote.Job`` over ``agent.bench.job``.

Stage: remote runner -> (this) -> ``run_job``. The order's level, GPUs, burn duration and
``force`` become a ``JobSpec`` on the node's configured backend (``[bench] backend``); job
events become the progress the runner reports; the outcome keeps its state, message, ``busy``
flag and judged tree. A node with ``[bench] remote = false`` refuses every order, saying why.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from agent.bench.job import JobEvent, JobSpec, run_job
from agent.bench.remote import JobResult
from agent.wire.bench import BenchOrder, BenchProgress

OFF = "this node does not run benchmark requests from the server ([bench] remote = false)"


@dataclass(frozen=True)
class OrderJob:
    backend: str = "auto"
    remote: bool = True

    def __call__(
        self,
        order: BenchOrder,
        progress: Callable[[BenchProgress], None],
        cancel: threading.Event,
    ) -> JobResult:
        if not self.remote:
            return JobResult("refused", OFF)
        spec = JobSpec(order.level, order.gpus, order.duration_s, order.force, self.backend)

        def relay(event: JobEvent) -> None:
            progress(
                BenchProgress(
                    done=event.done, total=event.total, test=event.test, device=event.device
                )
            )

        outcome = run_job(spec, on_event=relay, cancel=cancel)
        return JobResult(outcome.state, outcome.message, outcome.busy, outcome.result)
