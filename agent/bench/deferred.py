"""The benchmark job of a node, assembled on its first order.

Stage: ``BenchRunner`` -> (this) -> ``OrderJob``. Every agent runs a ``BenchRunner`` (the
server may ask any node to benchmark), but few are ever asked: the job's machinery (worker
subprocesses, checks, the SKU table, the simulated GPUs' scenario) is imported and built only
when the first order arrives, not by every agent at start-up (~1.4 MiB resident).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from agent.bench.remote import Job, JobResult
from agent.wire.bench import BenchOrder, BenchProgress

if TYPE_CHECKING:
    from agent.config import AgentSettings


class DeferredJob:
    """A ``Job`` that builds the real one with ``make`` on its first call."""

    def __init__(self, make: Callable[[], Job]) -> None:
        self._make = make
        self._job: Job | None = None
        self._lock = threading.Lock()

    @property
    def built(self) -> bool:
        return self._job is not None

    def __call__(
        self,
        order: BenchOrder,
        progress: Callable[[BenchProgress], None],
        cancel: threading.Event,
    ) -> JobResult:
        with self._lock:
            if self._job is None:
                self._job = self._make()
            job = self._job
        return job(order, progress, cancel)


def order_job(settings: AgentSettings) -> Job:
    """Returns: the node's benchmark job as its settings describe it (``DeferredJob``'s
    ``make``)."""
    # Imported here, on the first order, for the reason in the module docstring.
    from agent.bench.order_job import OrderJob, SimulatedGpus  # noqa: PLC0415
    from agent.bench.simulated import DEMO_DEGRADED  # noqa: PLC0415
    from agent.collectors.gpu import NvmlBackend, open_backend  # noqa: PLC0415
    from agent.collectors.registry import fault_plan  # noqa: PLC0415

    gpu = settings.gpu
    simulated: SimulatedGpus | None = None
    if gpu.backend == "simulated":

        def nvml() -> NvmlBackend:
            return open_backend(
                "simulated",
                simulated_count=gpu.simulated_count,
                seed=gpu.simulated_seed,
                faults=fault_plan(settings),
            )

        degraded = DEMO_DEGRADED if gpu.simulated_faults == "demo" else {}
        path = settings.state_dir / "bench-simulated.json"
        simulated = SimulatedGpus(nvml, path, gpu.simulated_seed, degraded)
    return OrderJob(settings.bench.backend, settings.bench.remote, simulated)
