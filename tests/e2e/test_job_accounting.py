"""Acceptance: a Slurm job's GPU-hours and energy, from NVML to ``GET /api/v1/jobs/{id}``.

The agent side is the real pipeline (GPU collector with process tracking -> job attribution
over a recorded Slurm cgroup-v2 /proc tree -> batch builder -> wire codec) on a scripted node
whose energy counters grow at known power; the server side is the real app on SQLite. Time is
faked on both sides so the ground truth is exact arithmetic:

- job 3385 runs on GPU 0 (400 W) and GPU 1 (250 W) for 50 ticks of 10 s, alone on them;
- GPU-hours = 2 GPUs x 500 s / 3600; energy = (400 + 250) W x 500 s = 325 kJ.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from agent.batch import BatchBuilder, CollectorResult
from agent.collectors.base import HostPaths
from agent.collectors.gpu import GpuCollector
from agent.collectors.gpu.backend import GpuProcess, ProcessUtilization, Utilization
from agent.collectors.gpu.scripted import ScriptedBackend
from agent.jobs import JobsCollector
from tests.factories import identity
from tests.fakes.nvml import h100
from tests.server.conftest import START, FakeClock, push

SLURM_TREE = Path(__file__).parent.parent / "data" / "jobs" / "slurm-v2"
JOB_PID = 41102  # job 3385, step batch, in the recorded tree
INTERVAL = 10.0
JOB_TICKS = range(1, 51)  # the job holds both GPUs on ticks 1..50
TICKS = 60
POWER_W = (400.0, 250.0)


class Clocks:
    """The node's wall and monotonic clocks, moved one tick at a time."""

    def __init__(self) -> None:
        self.tick = 0

    def wall(self) -> float:
        return START + self.tick * INTERVAL

    def monotonic(self) -> float:
        return 5_000.0 + self.tick * INTERVAL


def scripted_node(clocks: Clocks) -> ScriptedBackend:
    def device(index: int) -> object:
        watts = POWER_W[index]

        def running(_: int) -> list[GpuProcess]:
            if clocks.tick in JOB_TICKS:
                return [GpuProcess(JOB_PID, 30 << 30)]
            return []

        def per_process(_: int) -> list[ProcessUtilization]:
            if clocks.tick in JOB_TICKS:
                return [ProcessUtilization(JOB_PID, 90, 40, int(clocks.wall() * 1e6))]
            return []

        return h100(
            index,
            power_usage_mw=int(watts * 1000),
            # Energy since driver load: the counter grows at exactly the board power.
            total_energy_mj=lambda _: int(1_000_000 + watts * 1000 * clocks.tick * INTERVAL),
            utilization=lambda _: Utilization(90 if clocks.tick in JOB_TICKS else 0, 40),
            running_processes=running,
            process_utilization=per_process,
        )

    return ScriptedBackend([device(0), device(1)])  # type: ignore[list-item]


def test_a_slurm_jobs_gpu_hours_and_energy_match_the_ground_truth(
    client: TestClient, clock: FakeClock
) -> None:
    clocks = Clocks()
    gpu = GpuCollector(
        scripted_node(clocks),
        "node-a1",
        monotonic=clocks.monotonic,
        wall_clock=clocks.wall,
        track_processes=True,
    )
    jobs = JobsCollector.on_host(HostPaths(proc=SLURM_TREE / "proc"), gpu.snapshots, "node-a1")
    builder = BatchBuilder(identity(), INTERVAL)
    try:
        for tick in range(TICKS + 1):
            clocks.tick = tick
            now = clocks.wall()
            results = [
                CollectorResult("gpu", gpu.collect(now), True, 0.0),
                CollectorResult("jobs", jobs.collect(now), True, 0.0),
            ]
            batch = builder.build(tick, now, results, None, jobs=jobs.usage())
            clock.now = now + 0.2
            response = push(client, batch)
            assert response.status_code == 200, response.text
    finally:
        gpu.close()

    job = client.get("/api/v1/jobs/3385", params={"scheduler": "slurm"}).json()
    job_seconds = len(JOB_TICKS) * INTERVAL
    assert job["gpu_hours"] == pytest.approx(2 * job_seconds / 3600, rel=0.02)
    assert job["energy_joules"] == pytest.approx(sum(POWER_W) * job_seconds, rel=0.02)
    assert job["state"] == "finished"
    assert job["avg_sm_percent"] == pytest.approx(90, rel=0.02)
    assert job["peak_memory_bytes"] == 30 << 30
    assert sorted(g["gpu_index"] for g in job["per_gpu"]) == [0, 1]
    assert job["allocated_idle_gpu_hours"] == pytest.approx(0, abs=1e-9)

    info = [s for s in jobs.collect(clocks.wall()) if s.name == "dcmon_job_gpu_info"]
    assert info == []  # the job has ended: no info series left
