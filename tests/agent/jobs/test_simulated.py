"""Scripted jobs on simulated GPUs: the demo's idle job holds GPUs 0-1 at 0 % with its model in
memory, the working one keeps GPUs 2-3 through their cycle, the real attribution path names
both as simulated systemd units, and nothing changes for GPUs no job holds or for real GPUs."""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

import pytest

from agent.collectors.gpu.simulated import SimulatedBackend
from agent.collectors.gpu.simulated_jobs import plan
from agent.collectors.registry import build_collectors
from agent.config import ConfigError, load_settings
from agent.jobs.procfs import ProcessGone
from agent.jobs.resolver import JobResolver
from agent.jobs.simulated import SimulatedProcFiles, simulated_user_name

T0 = 1_800_000_000.0
IDLE = "systemd:simulated-idle-notebook.service"
TRAINING = "systemd:simulated-training.service"


def backend(jobs: bool, clock: list[float]) -> SimulatedBackend:
    scripted = plan("demo", 8) if jobs else ()
    sim = SimulatedBackend(8, seed=3, clock=lambda: clock[0], boot_time_s=T0 - 60, jobs=scripted)
    sim.init()
    return sim


def test_the_demo_plan_fits_the_node() -> None:
    assert [(j.name, j.gpus, j.activity) for j in plan("demo", 8)] == [
        ("simulated-idle-notebook", (0, 1), "idle"),
        ("simulated-training", (2, 3), "working"),
    ]
    assert [(j.name, j.gpus) for j in plan("demo", 3)] == [
        ("simulated-idle-notebook", (0, 1)),
        ("simulated-training", (2,)),
    ]
    assert plan("none", 8) == ()


def test_held_gpus_always_run_their_job_and_the_idle_one_computes_nothing() -> None:
    clock = [T0]
    sim = backend(True, clock)
    utils: dict[int, list[int]] = {i: [] for i in range(5)}
    for minute in range(0, 180, 3):
        clock[0] = T0 + 60 * minute
        for index in range(5):
            utils[index].append(sim.utilization(index).gpu_percent)
            processes = sim.running_processes(index)
            if index < 4:
                assert [p.pid for p in processes] == [41_000 + index]
                assert sim.memory_info(index).used_bytes > 0
    assert set(utils[0]) == set(utils[1]) == {0}
    assert max(utils[2]) > 50
    assert max(utils[4]) > 0  # an unheld GPU keeps its own cycle


@pytest.mark.parametrize("seed", range(12))
def test_the_working_job_pauses_but_never_long_enough_to_pass_for_idle(seed: int) -> None:
    """Its GPUs pause (0 %), but never both for 60 s at once: the shortest idle bar the server
    accepts, so no hint engine setting makes the demo's training job a reclaim candidate."""
    clock = [T0]
    sim = SimulatedBackend(4, seed=seed, clock=lambda: clock[0], boot_time_s=T0 - 60,
                           jobs=plan("demo", 4))  # fmt: skip
    sim.init()
    paused = idle_run = longest = 0
    for second in range(0, 4 * 3600, 5):
        clock[0] = T0 + second
        utils = [sim.utilization(index).gpu_percent for index in (2, 3)]
        paused += min(utils) == 0
        idle_run = idle_run + 5 if max(utils) < 10 else 0
        longest = max(longest, idle_run)
    assert paused > 0, "the working job never pauses"
    assert longest < 60, f"both its GPUs idle for {longest} s at once"


def test_gpus_no_job_holds_read_as_without_jobs() -> None:
    with_jobs, without = [T0 + 1234.0], [T0 + 1234.0]
    a, b = backend(True, with_jobs), backend(False, without)
    for index in range(4, 8):
        assert a.utilization(index) == b.utilization(index)
        assert a.power_usage_mw(index) == b.power_usage_mw(index)
        assert a.running_processes(index) == b.running_processes(index) == []


def test_the_resolver_names_the_simulated_processes_and_no_others() -> None:
    files = SimulatedProcFiles(plan("demo", 8))
    resolver = JobResolver(files, simulated_user_name(lambda uid: None))
    idle = resolver.resolve(41_001)
    assert idle is not None
    assert (idle.job_id, idle.scheduler, idle.user) == (IDLE, "systemd", "simulated")
    training = resolver.resolve(41_002)
    assert training is not None and training.job_id == TRAINING
    assert resolver.resolve(41_005) is None  # GPU 5 runs no scripted job
    with pytest.raises(ProcessGone):
        files.read(1, "cgroup", 4096)  # the host's own processes are never read


def test_the_agent_reports_the_scripted_jobs(tmp_path: Path) -> None:
    settings = load_settings(
        None,
        {
            "state_dir": tmp_path,
            "gpu": {"backend": "simulated", "simulated_count": 8, "simulated_jobs": "demo"},
        },
    )
    with ExitStack() as stack:
        built = build_collectors(settings, "sim-node", stack)
        assert built.gpu is not None and built.jobs is not None
        for tick in (T0, T0 + 10):
            samples = built.gpu.collect(tick)
            built.jobs.collect(tick)
        usage = built.jobs.usage()
    pairs = sorted((u.job_id, u.gpu_index, u.user) for u in usage)
    assert pairs == [
        (IDLE, 0, "simulated"),
        (IDLE, 1, "simulated"),
        (TRAINING, 2, "simulated"),
        (TRAINING, 3, "simulated"),
    ]
    idle = {u.gpu_index: u for u in usage if u.job_id == IDLE}
    assert idle[0].sm_percent == 0.0 and idle[0].memory_used_bytes > 0
    util = {s.labels["gpu"]: s.value for s in samples if s.name == "DCGM_FI_DEV_GPU_UTIL"}
    assert util["0"] == util["1"] == 0.0


def test_without_the_setting_simulated_gpus_carry_no_job(tmp_path: Path) -> None:
    settings = load_settings(None, {"state_dir": tmp_path, "gpu": {"backend": "simulated"}})
    with ExitStack() as stack:
        built = build_collectors(settings, "sim-node", stack)
        assert built.gpu is not None and built.jobs is not None
        built.gpu.collect(T0)
        built.jobs.collect(T0)
        assert built.jobs.usage() == []


def test_scripted_jobs_are_refused_on_real_gpus(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="simulated_jobs"):
        load_settings(None, {"state_dir": tmp_path, "gpu": {"simulated_jobs": "demo"}})
