"""Which jobs are on one GPU this tick, with their memory and SM share.

Stage: ``GpuSnapshot`` + PID -> job resolution + job-mapping ids -> (this) -> accounting.
Pure: no I/O, no clock.

Rules:

- A job's memory is the sum over its processes of NVML's used GPU memory (unknown values, as
  under MIG, count as 0).
- A job's SM share is the sum over its processes of their latest ``smUtil`` sample, at most
  100. A process without a sample had no activity in NVML's sample period and counts 0. With
  no samples at all the GPU's own utilization decides: 0 % means every job is idle; unknown or
  busy (per-process samples unsupported, e.g. MIG) means the shares are unknown (None).
- Processes that resolve to no job are left out.
- A job named for this GPU by the job-mapping directory is present even with no process
  there (scheduler ``mapping``, pids empty, SM share 0): the GPU is allocated to it and idle.
  When a process on the GPU resolves to the same job id, the mapping entry adds nothing: the
  job is present once, as the process describes it (its scheduler, user and step). A mapped
  id that no process names is present beside the process jobs. Accounting keys pairings by
  job id and scheduler, so an allocated job that starts using the GPU ends its ``mapping``
  pairing (its idle time reported) and starts one under its scheduler, and the reverse when
  its processes leave a still-allocated GPU.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from agent.collectors.gpu.snapshot import GpuSnapshot
from agent.jobs.model import JobPresence, JobRef

_MAX_TEXT = 256


@dataclass
class _Group:
    refs: list[JobRef] = field(default_factory=list)
    pids: list[int] = field(default_factory=list)
    memory_bytes: int = 0
    sm_percent: float = 0.0


def presences(
    snapshot: GpuSnapshot,
    resolve: Callable[[int], JobRef | None],
    mapped_job_ids: Sequence[str] = (),
) -> list[JobPresence]:
    """Returns: the jobs present on the GPU, sorted by job id."""
    memory: dict[int, int] = {}
    for process in snapshot.processes:
        used = process.used_memory_bytes if process.used_memory_bytes is not None else 0
        memory[process.pid] = max(memory.get(process.pid, 0), used, 0)
    latest: dict[int, tuple[int, int]] = {}  # pid -> (timestamp_us, sm_percent)
    for sample in snapshot.process_utilization:
        seen = latest.get(sample.pid)
        if seen is None or sample.timestamp_us >= seen[0]:
            latest[sample.pid] = (sample.timestamp_us, sample.sm_percent)
    sm_known = bool(latest) or snapshot.utilization_percent == 0

    groups: dict[str, _Group] = {}
    for pid in sorted(memory):
        job = resolve(pid)
        if job is None:
            continue
        group = groups.setdefault(job.job_id, _Group())
        group.refs.append(job)
        group.pids.append(pid)
        group.memory_bytes += memory[pid]
        group.sm_percent += max(latest.get(pid, (0, 0))[1], 0)

    found = [
        JobPresence(
            job=_merged(group.refs),
            pids=tuple(group.pids),
            memory_used_bytes=group.memory_bytes,
            sm_percent=min(group.sm_percent, 100.0) if sm_known else None,
        )
        for group in groups.values()
    ]
    for job_id in dict.fromkeys(mapped_job_ids):
        if job_id not in groups:
            found.append(JobPresence(JobRef(job_id, "mapping"), (), 0, 0.0))
    return sorted(found, key=lambda presence: presence.job.job_id)


def _merged(refs: list[JobRef]) -> JobRef:
    """One ref for a job's processes: the first one's scheduler, all users and steps."""
    users = sorted({ref.user for ref in refs if ref.user})
    if len(users) > 1 and "root" in users:
        users.remove("root")  # a root helper beside the job's own processes
    steps = sorted({ref.step for ref in refs if ref.step})
    first = refs[0]
    return JobRef(
        first.job_id,
        first.scheduler,
        user=",".join(users)[:_MAX_TEXT],
        step=",".join(steps)[:_MAX_TEXT],
    )
