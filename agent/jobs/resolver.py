"""PID -> job: which job a GPU process belongs to, cached per process lifetime.

Stage: PIDs from ``GpuSnapshot.processes`` -> (this) -> attribution. Input: the process files
behind the ``ProcessFileReader`` seam and a uid -> login name lookup. Output: a ``JobRef`` per
PID, or None for a process that could not be attributed.

Order of attribution for one process:

1. cgroup path: Slurm (v2, then v1), Kubernetes pod, container (``cgroup.scheduler_job``);
2. ``SLURM_JOB_ID`` from the initial environment (``environ.slurm_job``);
3. the systemd service or scope outside ``user.slice`` (``systemd:<unit>``);
4. the process owner (``user:<name>``, or ``user:<uid>`` when the uid has no name).

Every ref carries the owner as ``user`` when it is known.

Cache: results, including "no job", are kept per (PID, start time). The start time
(``/proc/<pid>/stat`` field 22, clock ticks since boot) is re-read on every call, which makes
PID reuse safe: a new process under an old PID has a different start time and is resolved
afresh. ``prune`` drops PIDs no longer on any GPU. A process that exits while it is being
read is not cached and yields None; an unreadable file (``environ`` of another user's
process) is skipped, logged once, and resolution goes on with the next rule.
"""

from __future__ import annotations

import logging
import pwd
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from agent.jobs import cgroup, environ
from agent.jobs._once import LogOnce
from agent.jobs.model import JobRef
from agent.jobs.procfs import ProcessFileReader, ProcessGone, ProcessUnreadable

_log = logging.getLogger(__name__)

# Read limits: cgroup and status files are a few hundred bytes; an environment block can be
# up to the kernel's argument limit, and the Slurm variables are normally near its start.
_SMALL_FILE_BYTES = 65536
_ENVIRON_BYTES = 1 << 20
_STARTTIME_FIELD = 22


def system_user_name(uid: int) -> str | None:
    """Returns: the login name of ``uid`` from the system's user database, or None."""
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


@dataclass(frozen=True, slots=True)
class _Entry:
    start_ticks: int
    job: JobRef | None


class JobResolver:
    """Resolves PIDs to jobs through process files, caching per process lifetime.

    Args:
        files: reads ``/proc/<pid>/<name>`` (real or in-memory).
        user_name: uid -> login name, or None when the uid has none.
    """

    def __init__(
        self,
        files: ProcessFileReader,
        user_name: Callable[[int], str | None] = system_user_name,
    ) -> None:
        self._files = files
        self._user_name = user_name
        self._cache: dict[int, _Entry] = {}
        self._names: dict[int, str] = {}
        self._log_once = LogOnce(_log)
        self._note_once = LogOnce(_log, logging.INFO)  # expected now and then, not a fault

    def resolve(self, pid: int) -> JobRef | None:
        """Returns: the job of ``pid``, or None when it is gone or cannot be attributed."""
        try:
            start = self._start_ticks(pid)
            cached = self._cache.get(pid)
            if cached is not None and cached.start_ticks == start:
                return cached.job
            job = self._resolve(pid)
            if self._start_ticks(pid) != start:
                return None  # the PID was reused while its files were being read
        except ProcessGone:
            self._cache.pop(pid, None)
            self._note_once("gone", "GPU process %d exited before it could be attributed", pid)
            return None
        except ProcessUnreadable as exc:
            self._cache.pop(pid, None)
            self._log_once("stat", "cannot attribute GPU process %d: %s", pid, exc)
            return None
        if job is None:
            self._note_once("unattributed", "GPU process %d belongs to no job or user", pid)
        self._cache[pid] = _Entry(start, job)
        return job

    def prune(self, live: Iterable[int]) -> None:
        """Forget every PID not in ``live`` (the PIDs on any GPU this tick)."""
        keep = set(live)
        for pid in [pid for pid in self._cache if pid not in keep]:
            del self._cache[pid]

    def cached_pids(self) -> frozenset[int]:
        """Returns: the PIDs currently cached (for tests and debugging)."""
        return frozenset(self._cache)

    # One uncached resolution

    def _resolve(self, pid: int) -> JobRef | None:
        cgroup_text = self._read_text(pid, "cgroup")
        uid = self._uid(pid)
        found = cgroup.scheduler_job(cgroup_text) if cgroup_text else None
        job: JobRef | None = None
        if found is not None:
            job, path_uid = found
            uid = uid if uid is not None else path_uid
        if job is None:
            data = self._read(pid, "environ", _ENVIRON_BYTES)
            job = environ.slurm_job(data) if data is not None else None
        if job is None and cgroup_text:
            unit = cgroup.systemd_unit(cgroup_text)
            job = JobRef(f"systemd:{unit}", "systemd") if unit else None
        user = "" if uid is None else self._name(uid)
        if job is None:
            return JobRef(f"user:{user}", "user", user=user) if user else None
        return JobRef(job.job_id, job.scheduler, user=user, step=job.step)

    def _start_ticks(self, pid: int) -> int:
        """Raises: ProcessGone, ProcessUnreadable (also for a stat line that does not parse)."""
        text = self._files.read(pid, "stat", _SMALL_FILE_BYTES).decode("ascii", "replace")
        # The command name (field 2) may hold spaces and parentheses: count after the last ')'.
        fields = text.rpartition(")")[2].split()
        index = _STARTTIME_FIELD - 3
        if len(fields) <= index or not fields[index].isdigit():
            raise ProcessUnreadable(f"/proc/{pid}/stat: no start time in {text[:60]!r}")
        return int(fields[index])

    def _uid(self, pid: int) -> int | None:
        data = self._read(pid, "status", _SMALL_FILE_BYTES)
        if data is None:
            return None
        for line in data.decode("utf-8", "replace").splitlines():
            if line.startswith("Uid:"):
                values = line[4:].split()
                if values and values[0].isdigit():
                    return int(values[0])
        self._log_once("status", "/proc/%d/status has no Uid line", pid)
        return None

    def _name(self, uid: int) -> str:
        name = self._names.get(uid)
        if name is None:
            name = self._user_name(uid) or str(uid)
            self._names[uid] = name
        return name

    def _read_text(self, pid: int, name: str) -> str | None:
        data = self._read(pid, name, _SMALL_FILE_BYTES)
        return None if data is None else data.decode("utf-8", "replace")

    def _read(self, pid: int, name: str, limit_bytes: int) -> bytes | None:
        """Returns: the file, or None when it may not be read (logged once per file name).

        Raises:
            ProcessGone: the process exited.
        """
        try:
            return self._files.read(pid, name, limit_bytes)
        except ProcessUnreadable as exc:
            self._log_once(
                f"read:{name}", "cannot read %s of GPU processes, skipping it: %s", name, exc
            )
            return None
