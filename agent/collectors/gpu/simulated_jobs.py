"""Scripted jobs on simulated GPUs, so the demo's live hints have a job to find. Pure data.

Stage: stands in for a scheduler behind ``SimulatedBackend`` (``[gpu] simulated_jobs``). A
simulated job holds some of the node's simulated GPUs for the agent's whole life, as one
process per GPU (PID ``41000 + index``, as every simulated workload), and it is either:

- ``idle``: it keeps a model in GPU memory and computes nothing (0 % utilization, idle power
  and clocks, the GpuIdle clock-event reason): the allocated-but-idle GPU that ``reclaim_idle``
  is for;
- ``working``: its GPUs run their usual seeded cycle of training, inference and short idle
  phases, with the model kept in memory between them: a job between phases, which the engine
  must leave alone.

Every such job is named ``simulated-...`` (and attributed as the systemd unit
``simulated-<name>.service`` owned by the user ``simulated``; see ``agent/jobs/simulated.py``),
so it never passes for a real one. The module imports nothing of the agent's job code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PROCESS_PID = 41_000  # the simulated workload of GPU i runs as PID 41000 + i
HELD_FB_FRACTION = 0.3  # of the usable framebuffer: the model a job keeps loaded

Activity = Literal["idle", "working"]
PlanName = Literal["none", "demo"]


@dataclass(frozen=True)
class SimulatedJob:
    name: str  # "simulated-..."
    gpus: tuple[int, ...]
    activity: Activity

    @property
    def unit(self) -> str:
        """Returns: the systemd unit its processes run in (how the agent attributes them)."""
        return f"{self.name}.service"


# The demo's jobs: an idle notebook on GPUs 0-1, a training job on GPUs 2-3.
DEMO_JOBS = (
    SimulatedJob("simulated-idle-notebook", (0, 1), "idle"),
    SimulatedJob("simulated-training", (2, 3), "working"),
)


def plan(name: PlanName, gpu_count: int) -> tuple[SimulatedJob, ...]:
    """Returns: the named plan's jobs on a node of ``gpu_count`` GPUs (GPUs it lacks dropped,
    jobs left with none dropped)."""
    if name == "none":
        return ()
    jobs = []
    for job in DEMO_JOBS:
        gpus = tuple(i for i in job.gpus if i < gpu_count)
        if gpus:
            jobs.append(SimulatedJob(job.name, gpus, job.activity))
    return tuple(jobs)


def job_of_gpu(jobs: tuple[SimulatedJob, ...], index: int) -> SimulatedJob | None:
    return next((job for job in jobs if index in job.gpus), None)


def job_of_pid(jobs: tuple[SimulatedJob, ...], pid: int) -> SimulatedJob | None:
    return job_of_gpu(jobs, pid - PROCESS_PID) if pid >= PROCESS_PID else None
