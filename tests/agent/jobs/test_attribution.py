"""Grouping one GPU's processes into jobs: memory, SM share, mapping-file jobs."""

from __future__ import annotations

from dataclasses import replace

from agent.collectors.gpu.backend import ProcessUtilization
from agent.jobs.attribution import presences
from agent.jobs.model import JobPresence, JobRef
from tests.agent.jobs.conftest import snapshot

_JOBS = {
    10: JobRef("1", "slurm", user="trainer", step="0"),
    11: JobRef("1", "slurm", user="trainer", step="1"),
    12: JobRef("1", "slurm", user="root", step="extern"),
    20: JobRef("user:analyst", "user", user="analyst"),
}


def test_processes_group_into_jobs() -> None:
    gpu = snapshot(
        1.0,
        processes={10: 2_000, 11: None, 12: 500, 20: 7_000, 30: 100},
        sm={10: 70, 11: 50, 20: 5},
    )
    assert presences(gpu, _JOBS.get) == [
        JobPresence(
            JobRef("1", "slurm", user="trainer", step="0,1,extern"),
            pids=(10, 11, 12),
            memory_used_bytes=2_500,  # unknown memory counts 0; pid 30 has no job
            sm_percent=100.0,  # 70 + 50, capped
        ),
        JobPresence(JobRef("user:analyst", "user", user="analyst"), (20,), 7_000, sm_percent=5.0),
    ]


def test_latest_sample_per_process_counts() -> None:
    gpu = snapshot(1.0, processes={20: 1})
    gpu = replace(
        gpu,
        process_utilization=(
            ProcessUtilization(20, 40, 0, 2_000),
            ProcessUtilization(20, 10, 0, 1_000),
        ),
    )
    (job,) = presences(gpu, _JOBS.get)
    assert job.sm_percent == 40.0


def test_sm_share_unknown_without_samples_on_a_busy_or_mig_gpu() -> None:
    busy = snapshot(1.0, processes={20: 1}, utilization=80.0)
    mig = snapshot(1.0, processes={20: 1}, utilization=None)
    idle = snapshot(1.0, processes={20: 1}, utilization=0.0)
    assert presences(busy, _JOBS.get)[0].sm_percent is None
    assert presences(mig, _JOBS.get)[0].sm_percent is None
    assert presences(idle, _JOBS.get)[0].sm_percent == 0.0


def test_process_without_a_sample_is_idle_when_others_have_samples() -> None:
    gpu = snapshot(1.0, processes={10: 1, 20: 1}, sm={10: 30})
    shares = {job.job.job_id: job.sm_percent for job in presences(gpu, _JOBS.get)}
    assert shares == {"1": 30.0, "user:analyst": 0.0}


def test_mapping_jobs_pair_even_without_processes() -> None:
    gpu = snapshot(1.0, processes={10: 1}, sm={10: 30}, utilization=None)
    found = presences(gpu, _JOBS.get, ["1", "900", "900"])
    assert found == [
        JobPresence(JobRef("1", "slurm", user="trainer", step="0"), (10,), 1, 30.0),
        JobPresence(JobRef("900", "mapping"), (), 0, 0.0),
    ]
    assert presences(snapshot(1.0), _JOBS.get, ["900"]) == [
        JobPresence(JobRef("900", "mapping"), (), 0, 0.0)
    ]
