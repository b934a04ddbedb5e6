"""The Slurm job of a process from its initial environment (``/proc/<pid>/environ``).

Stage: ``/proc/<pid>/environ`` bytes -> (this) -> ``JobResolver``. A fallback only: the file
holds the environment the process started with (a later ``setenv`` is not seen), and only
root, or the owner, may read it. Cgroup paths are preferred whenever they name a job.
"""

from __future__ import annotations

import re

from agent.jobs.model import JobRef

_JOB_KEYS = (b"SLURM_JOB_ID", b"SLURM_JOBID")
_STEP_KEYS = (b"SLURM_STEP_ID", b"SLURM_STEPID")
_JOB_ID = re.compile(rb"\d{1,20}")
_STEP = re.compile(rb"[A-Za-z0-9_.]{1,32}")


def environment(data: bytes) -> dict[bytes, bytes]:
    """Returns: the ``KEY=value`` entries of a NUL-separated environment block.

    Entries without ``=`` (and a last entry cut off by a read limit, if it lacks one) are
    skipped; for a repeated key the first entry wins, as in ``getenv``.
    """
    entries: dict[bytes, bytes] = {}
    for entry in data.split(b"\0"):
        key, sep, value = entry.partition(b"=")
        if sep and key and key not in entries:
            entries[key] = value
    return entries


def slurm_job(data: bytes) -> JobRef | None:
    """Returns: the job named by ``SLURM_JOB_ID`` (or ``SLURM_JOBID``), or None.

    The step comes from ``SLURM_STEP_ID`` / ``SLURM_STEPID`` when set. Values that are not a
    job id (non-digits, overlong) are ignored.
    """
    env = environment(data)
    job = _first_valid(env, _JOB_KEYS, _JOB_ID)
    if job is None:
        return None
    step = _first_valid(env, _STEP_KEYS, _STEP) or ""
    return JobRef(job, "slurm", step=step)


def _first_valid(
    env: dict[bytes, bytes], keys: tuple[bytes, ...], pattern: re.Pattern[bytes]
) -> str | None:
    for key in keys:
        value = env.get(key)
        if value is not None and pattern.fullmatch(value):
            return value.decode("ascii")
    return None
