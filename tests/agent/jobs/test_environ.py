"""Slurm jobs from an initial environment block."""

from __future__ import annotations

import pytest

from agent.jobs.environ import environment, slurm_job
from agent.jobs.model import JobRef


def test_environment_splits_on_nul_and_keeps_the_first_of_a_key() -> None:
    data = b"A=1\0B=x=y\0A=2\0NOEQUALS\0=novalue\0TRUNC"
    assert environment(data) == {b"A": b"1", b"B": b"x=y"}


@pytest.mark.parametrize(
    ("data", "job"),
    [
        (b"PATH=/bin\0SLURM_JOB_ID=42\0SLURM_STEP_ID=0\0", JobRef("42", "slurm", step="0")),
        (b"SLURM_JOBID=42\0SLURM_STEPID=batch\0", JobRef("42", "slurm", step="batch")),
        (b"SLURM_JOB_ID=42\0", JobRef("42", "slurm")),
        (b"SLURM_JOB_ID=42x\0SLURM_JOBID=43\0", JobRef("43", "slurm")),
        (b"SLURM_JOB_ID=42\0SLURM_STEP_ID=a b\0", JobRef("42", "slurm")),
        (b"SLURM_JOB_ID=\0", None),
        (b"SLURM_JOB_ID=12345678901234567890123\0", None),
        (b"PATH=/bin\0", None),
        (b"", None),
        (b"\xff\xfe\0SLURM_JOB_ID=\xff\0", None),
    ],
)
def test_slurm_job(data: bytes, job: JobRef | None) -> None:
    assert slurm_job(data) == job
