"""GPU collection: the ``NvmlBackend`` seam, its real/scripted/simulated backends, the collector.

Importing this package never loads the NVIDIA driver; ``PynvmlBackend.init()`` does.
"""

from __future__ import annotations

from typing import Literal

from agent.collectors.gpu.backend import (
    Clock,
    ClocksEventReason,
    MemoryInfo,
    NvmlBackend,
    NvmlError,
    NvmlFunctionNotFound,
    NvmlGpuLost,
    NvmlNoPermission,
    NvmlNotFound,
    NvmlNotSupported,
    NvmlTimeout,
    NvmlUnavailable,
    Utilization,
)
from agent.collectors.gpu.collector import GpuCollector, GpuInventory
from agent.collectors.gpu.faults import FaultPlan
from agent.collectors.gpu.nvml_backend import PynvmlBackend
from agent.collectors.gpu.simulated import SimulatedBackend
from agent.collectors.gpu.simulated_jobs import SimulatedJob


def open_backend(
    kind: Literal["nvml", "simulated"],
    *,
    simulated_count: int = 8,
    simulated_model: str | None = None,
    simulated_latency: bool = False,
    seed: int = 0,
    faults: FaultPlan | None = None,
    simulated_jobs: tuple[SimulatedJob, ...] = (),
) -> NvmlBackend:
    """Returns: a backend, not yet initialised (the collector calls ``init``).

    Args:
        kind: ``"nvml"`` for the real driver, ``"simulated"`` for synthetic GPUs.
        simulated_count: number of simulated GPUs.
        simulated_model: simulated GPU model (default: NVIDIA H100 80GB HBM3).
        simulated_latency: make each simulated call take its cost measured on a real H100.
        seed: varies the simulated GPUs' workload and identities.
        faults: scripted trouble for the simulated GPUs.
        simulated_jobs: scripted jobs holding simulated GPUs (``simulated_jobs.plan``).
    """
    if kind == "nvml":
        return PynvmlBackend()
    if kind == "simulated":
        return SimulatedBackend(
            simulated_count,
            model=simulated_model,
            seed=seed,
            call_latency=simulated_latency,
            faults=faults,
            jobs=simulated_jobs,
        )
    raise ValueError(f"unknown GPU backend {kind!r}; use 'nvml' or 'simulated'")


__all__ = [
    "Clock",
    "ClocksEventReason",
    "GpuCollector",
    "GpuInventory",
    "MemoryInfo",
    "NvmlBackend",
    "NvmlError",
    "NvmlFunctionNotFound",
    "NvmlGpuLost",
    "NvmlNoPermission",
    "NvmlNotFound",
    "NvmlNotSupported",
    "NvmlTimeout",
    "NvmlUnavailable",
    "PynvmlBackend",
    "SimulatedBackend",
    "Utilization",
    "open_backend",
]
