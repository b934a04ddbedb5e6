"""The job dashboard: what each job's GPUs do, and what they cost.

Stage: dashboards (build time). Input: none; output: the ``Dashboard`` spec of ``dcmon-job``
(variable ``job_id``, from ``dcmon_job_gpu_info``). Jobs are not labels on GPU series: each
GPU series is joined to the jobs holding the GPU on its UUID (``common.by_job``), so a GPU two
jobs share counts fully for each. Energy and GPU-hours are integrated over the dashboard's
range from the power readings and the info series while the job held the GPU.
"""

from __future__ import annotations

from dashboards.generator import thresholds as t
from dashboards.generator.common import GPU_LINK, RANGE, by_job
from dashboards.generator.spec import (
    BAR_GAUGE,
    MIB_BYTES,
    TABLE,
    TIME_SERIES,
    Dashboard,
    Link,
    Panel,
    Query,
    Row,
    Variable,
)

JOB = 'job_id=~"$job_id"'
WHO = "job_id, scheduler, user"
STEP = "$__interval"
STEP_MS = "$__interval_ms"
JOB_ID = Variable(
    "job_id", "Job", "label_values(dcmon_job_gpu_info, job_id)", multi=True, include_all=True
)
JOB_LINK = Link("job", "Job ${__data.fields.job_id}", {"job_id": "job_id"})
GPU_HOURS = (
    f"sum by ({WHO}) (sum_over_time(dcmon_job_gpu_info{{{JOB}}}[{RANGE}:{STEP}])) "
    f"* {STEP_MS} / 3.6e6"
)


def energy_kwh(by: str) -> str:
    """Returns: each job's GPU energy over the range in kWh: its GPUs' power (W) summed at every
    step while the job held them, times the step (ms), over 3.6e9 mJ per kWh."""
    power = by_job("DCGM_FI_DEV_POWER_USAGE")
    return f"sum by ({by}) (sum_over_time(({power})[{RANGE}:{STEP}])) * {STEP_MS} / 3.6e9"


JOBS = Row(
    "Jobs",
    (
        Panel("Jobs", TABLE, (
            Query(f"count by ({WHO}) (dcmon_job_gpu_info{{{JOB}}})", column="GPUs"),
            Query(f"count by ({WHO}) (count by ({WHO}, instance) (dcmon_job_gpu_info{{{JOB}}}))",
                  column="nodes"),
            Query(f"sum by ({WHO}) ({by_job('(DCGM_FI_DEV_GPU_UTIL == bool 0)')})",
                  column="idle GPUs"),
            Query(f"avg by ({WHO}) ({by_job('DCGM_FI_DEV_GPU_UTIL')})",
                  column="GPU utilisation", unit="percent"),
            Query(f"avg by ({WHO}) ({by_job('DCGM_FI_PROF_SM_ACTIVE')})", column="SM active",
                  unit="percentunit"),
            Query(f"sum by ({WHO}) ({by_job('DCGM_FI_DEV_POWER_USAGE')})", column="power",
                  unit="watt"),
            Query(f"sum by ({WHO}) ({by_job('DCGM_FI_DEV_FB_USED')}) * {MIB_BYTES}",
                  column="GPU memory", unit="bytes"),
            Query(GPU_HOURS, column="GPU-hours in range"),
            Query(energy_kwh(WHO), column="energy in range", unit="kwatth"),
        ), width=24, height=9, decimals=2, link=JOB_LINK,
            columns=(("job_id", "job_id"), ("user", "user"), ("scheduler", "scheduler")),
            description="Now, except the last two columns: over the dashboard's range."),
    ),
)  # fmt: skip

OVER_TIME = Row(
    "Over time",
    (
        Panel("GPU utilisation of each job's GPUs", TIME_SERIES, (
            Query(by_job("DCGM_FI_DEV_GPU_UTIL"), "{{job_id}} {{instance}} GPU {{gpu}}"),
        ), "percent", minimum=0, maximum=100, link=GPU_LINK),
        Panel("SM activity per job", TIME_SERIES, (
            Query(f"avg by (job_id) ({by_job('DCGM_FI_PROF_SM_ACTIVE')})", "{{job_id}}"),
        ), "percentunit", minimum=0, maximum=1,
            description="Mean over the job's GPUs of DCGM's SM-active ratio."),
        Panel("GPUs held and idle", TIME_SERIES, (
            Query(f"count by (job_id) (dcmon_job_gpu_info{{{JOB}}})", "{{job_id}} held"),
            Query(f"sum by (job_id) ({by_job('(DCGM_FI_DEV_GPU_UTIL == bool 0)')})",
                  "{{job_id}} idle"),
        ), decimals=0, description="Idle: at 0 % utilisation (JobGpuIdle fires after 30 "
            "minutes)."),
        Panel("Power per job", TIME_SERIES, (
            Query(f"sum by (job_id) ({by_job('DCGM_FI_DEV_POWER_USAGE')})", "{{job_id}}"),
        ), "watt", stack=True),
        Panel("GPU memory per job", TIME_SERIES, (
            Query(f"sum by (job_id) ({by_job('DCGM_FI_DEV_FB_USED')}) * {MIB_BYTES}",
                  "{{job_id}}"),
        ), "bytes", stack=True),
        Panel("Energy per job in range", BAR_GAUGE, (
            Query(energy_kwh("job_id"), "{{job_id}}"),
        ), "kwatth", decimals=3),
    ),
)  # fmt: skip

ALERTS = Row(
    "Idle GPUs",
    (
        Panel("GPUs held idle (JobGpuIdle, pending or firing)", TABLE, (
            Query(f'time() - ALERTS_FOR_STATE{{alertname="JobGpuIdle", {JOB}}}',
                  column="idle for"),
        ), "s", width=24, height=7, steps=t.above(t.JOB_GPU_IDLE_S, "orange"),
            columns=(("job_id", "job_id"), ("user", "user"), ("instance", "node"),
                     ("gpu", "GPU")),
            description="A job's GPU at 0 % becomes a pending alert; it fires after 30 "
            "minutes idle."),
    ),
)  # fmt: skip

DASHBOARD = Dashboard(
    "job",
    "dcmon / Jobs",
    "Jobs by job_id (Slurm, Kubernetes, containers, systemd units, users): their GPUs, "
    "utilisation, power, energy and idle time.",
    (JOBS, OVER_TIME, ALERTS),
    (JOB_ID,),
)
