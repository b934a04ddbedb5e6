"""The process files of simulated GPUs' scripted jobs, so the real attribution path names them.

Stage: ``SimulatedBackend``'s processes (PID ``41000 + index``) -> (this seam, in place of
``/proc``) -> ``JobResolver`` -> attribution -> accounting. Only for ``[gpu] backend =
"simulated"`` with ``simulated_jobs`` set: the simulated GPUs list PIDs that do not exist on the
host, so the agent reads their ``stat``, ``status``, ``cgroup`` and (empty) ``environ``
from here, never from ``/proc``. Each process of a job runs in the systemd unit
``<job name>.service`` owned by the user ``simulated``, so the agent reports the job as
``systemd:simulated-....service`` (the wire has no scheduler named simulated; the name says
it).
"""

from __future__ import annotations

from collections.abc import Callable

from agent.collectors.gpu.simulated_jobs import SimulatedJob, job_of_pid
from agent.jobs.procfs import ProcessGone
from agent.jobs.resolver import system_user_name

SIMULATED_UID = 4_000_000_001  # above any real uid range; names the user "simulated"
SIMULATED_USER = "simulated"
_START_TICKS = 1000  # every simulated process started once, at agent start


class SimulatedProcFiles:
    """``ProcessFileReader`` for the scripted jobs' processes; any other PID is gone."""

    def __init__(self, jobs: tuple[SimulatedJob, ...]) -> None:
        self._jobs = jobs

    def read(self, pid: int, name: str, limit_bytes: int) -> bytes:
        job = job_of_pid(self._jobs, pid)
        if job is None:
            raise ProcessGone(f"/proc/{pid}/{name}: not a simulated process")
        if name == "stat":
            fields = ["S", *(["0"] * 18), str(_START_TICKS)]  # field 22: start time
            text = f"{pid} ({job.name}) {' '.join(fields)}\n"
        elif name == "status":
            text = f"Name:\t{job.name}\nUid:\t{SIMULATED_UID}\t{SIMULATED_UID}\n"
        elif name == "cgroup":
            text = f"0::/system.slice/{job.unit}\n"
        elif name == "environ":
            text = ""  # no Slurm variables: the cgroup's unit names the job
        else:
            raise ProcessGone(f"/proc/{pid}/{name}: not simulated")
        return text.encode()[:limit_bytes]


def simulated_user_name(
    fallback: Callable[[int], str | None] = system_user_name,
) -> Callable[[int], str | None]:
    """Returns: uid -> login name that names the simulated jobs' owner ``simulated``."""

    def name(uid: int) -> str | None:
        return SIMULATED_USER if uid == SIMULATED_UID else fallback(uid)

    return name
