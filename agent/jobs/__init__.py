"""Job telemetry: attribute every GPU process to a job and account its GPU use.

Stage: ``GpuSnapshot`` (from the GPU collector) -> ``JobsCollector`` -> info samples and
``JobUsage`` records (-> the batch's ``jobs``). Modules, in data-flow order:

- ``procfs``: the ``/proc/<pid>/<file>`` seam and its in-memory twin;
- ``cgroup``, ``environ``: jobs named by a cgroup path or by the Slurm environment;
- ``resolver``: PID -> ``JobRef``, cached per process lifetime;
- ``mapping``: GPU -> job ids from an HPC job-mapping directory;
- ``attribution``: the jobs on one GPU this tick, with memory and SM share;
- ``accounting``: cumulative GPU-seconds, idle seconds and energy per pairing;
- ``collector``: the ``jobs`` collector tying them together.

Importing this package reads nothing.
"""

from __future__ import annotations

from agent.jobs.collector import INFO_METRIC, JobsCollector
from agent.jobs.model import JobPresence, JobRef, JobUsage, Scheduler
from agent.jobs.procfs import MemoryProcFiles, ProcFiles

__all__ = [
    "INFO_METRIC",
    "JobPresence",
    "JobRef",
    "JobUsage",
    "JobsCollector",
    "MemoryProcFiles",
    "ProcFiles",
    "Scheduler",
]
