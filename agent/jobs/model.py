"""The records job attribution passes between its stages.

Stage: resolver (PID -> ``JobRef``) -> attribution (``JobPresence`` per GPU and tick) ->
accounting (``JobUsage`` per job-GPU pairing) -> batch (``JobGpuUsage`` on the wire).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Scheduler = Literal["slurm", "kubernetes", "container", "systemd", "user", "mapping"]


@dataclass(frozen=True, slots=True)
class JobRef:
    """Which job a process (or a mapping-file entry) belongs to.

    Attributes:
        job_id: the job's name on the wire: a Slurm job id (``"123"``), ``"k8s:<pod-uid>"``,
            ``"container:<12-hex id>"``, ``"systemd:<unit>"``, ``"user:<name>"``, or the text
            of a job-mapping file line.
        scheduler: what the id was learned from.
        user: owner of the process (login name, or the uid as text); empty when unknown.
        step: Slurm step (``"0"``, ``"batch"``, ``"extern"``) or, for Kubernetes, the
            container's 12-hex id; empty when not applicable.
    """

    job_id: str
    scheduler: Scheduler
    user: str = ""
    step: str = ""


@dataclass(frozen=True, slots=True)
class JobPresence:
    """One job on one GPU in one tick.

    Attributes:
        job: the job (user and step merged over its processes on this GPU).
        pids: the job's processes on the GPU, sorted; empty for a GPU that a job-mapping
            file allocates to the job while none of its processes runs there.
        memory_used_bytes: GPU memory the processes hold (0 where NVML cannot tell).
        sm_percent: the job's share of the GPU's SMs over NVML's last sample period (the
            sum over its processes, at most 100), or None when the GPU cannot say.
    """

    job: JobRef
    pids: tuple[int, ...]
    memory_used_bytes: int
    sm_percent: float | None


@dataclass(frozen=True)
class JobUsage:
    """One job on one GPU, cumulative since the agent first saw the pairing.

    Field names equal those of the wire's ``JobGpuUsage``, so the batch builder converts with
    ``JobGpuUsage.model_construct(**dataclasses.asdict(usage))``. ``pids`` is a list because
    that is the wire type (the instance is therefore not hashable).
    """

    job_id: str
    scheduler: Scheduler
    user: str
    step: str
    gpu_index: int
    uuid: str
    since: float
    pids: list[int] = field(default_factory=list)
    memory_used_bytes: int = 0
    sm_percent: float | None = None
    gpu_seconds: float = 0.0
    idle_seconds: float = 0.0
    energy_joules: float = 0.0
