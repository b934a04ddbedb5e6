"""The ``jobs`` collector end to end: snapshots + recorded process trees + a mapping directory."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from agent.collectors.base import HostPaths
from agent.collectors.gpu.snapshot import GpuSnapshot
from agent.jobs import INFO_METRIC, JobsCollector, ProcFiles
from agent.wire.catalog import default_catalog
from agent.wire.schema import JobGpuUsage
from tests.agent.jobs.conftest import proc_root, snapshot, user_name
from tests.catalog_check import assert_conforms

WALL0 = 1_800_000_000.0


class Gpus:
    """What the GPU collector would publish; tests replace ``current`` between ticks."""

    def __init__(self) -> None:
        self.current: list[GpuSnapshot] = []

    def __call__(self) -> Sequence[GpuSnapshot]:
        return self.current


@pytest.fixture
def node(tmp_path: Path) -> Path:
    """A proc root holding the processes of several recorded trees."""
    for tree in ("slurm-v2", "kubernetes-systemd", "user"):
        shutil.copytree(proc_root(tree), tmp_path / "proc", dirs_exist_ok=True)
    (tmp_path / "mapping").mkdir()
    (tmp_path / "mapping" / "0").write_text("3385\n")
    (tmp_path / "mapping" / "2").write_text("5555\n")
    return tmp_path


def _collector(node: Path, gpus: Gpus, clock: list[float]) -> JobsCollector:
    return JobsCollector(
        gpus,
        "gpu-node-07",
        ProcFiles(node / "proc"),
        mapping_dir=node / "mapping",
        user_name=user_name,
        monotonic=lambda: clock[0],
    )


def _tick(gpus: Gpus, t: float, *, gone: int | None = None) -> list[GpuSnapshot]:
    """GPU 0: a Slurm job; GPU 1: a pod and a user (and maybe a PID already gone); GPU 2: idle.

    Energy is read every tick here; the counter grows by 250 J per second on each GPU.
    """
    energy_mj, at = 1_000_000 + 250_000 * int(t), t
    extra: dict[int, int | None] = {gone: None} if gone is not None else {}
    gpus.current = [
        snapshot(
            t,
            index=0,
            processes={41237: 40 << 30, 41102: 2 << 30},
            sm={41237: 85},
            energy_mj=energy_mj,
            energy_monotonic=at,
        ),
        snapshot(
            t,
            index=1,
            processes={88412: 10 << 30, 14002: 1 << 30, **extra},
            sm={88412: 30, 14002: 10},
            energy_mj=energy_mj,
            energy_monotonic=at,
        ),
        snapshot(t, index=2, utilization=0.0, energy_mj=energy_mj, energy_monotonic=at),
    ]
    return gpus.current


def test_info_series_per_active_pairing(node: Path) -> None:
    gpus, clock = Gpus(), [0.0]
    collector = _collector(node, gpus, clock)
    _tick(gpus, 0.0)
    samples = collector.collect(WALL0)
    assert_conforms(samples, source="jobs")
    assert default_catalog()[INFO_METRIC].source == collector.name
    got = {
        (s.labels["gpu"], s.labels["job_id"], s.labels["scheduler"], s.labels["user"])
        for s in samples
    }
    assert got == {
        ("0", "3385", "slurm", "trainer"),
        ("1", "k8s:0b7632a2-a56e-4278-987a-22de18008dbe", "kubernetes", "root"),
        ("1", "user:notebook", "user", "notebook"),
        ("2", "5555", "mapping", ""),
    }
    assert all(s.value == 1.0 and s.labels["Hostname"] == "gpu-node-07" for s in samples)
    assert {s.labels["UUID"] for s in samples if s.labels["gpu"] == "2"} == {gpus.current[2].uuid}


def test_usage_over_ticks_and_on_the_wire(node: Path) -> None:
    gpus, clock = Gpus(), [0.0]
    collector = _collector(node, gpus, clock)
    for t in range(5):
        clock[0] = float(t)
        _tick(gpus, float(t), gone=99999 if t == 3 else None)  # a PID with no /proc entry
        collector.collect(WALL0 + t)
    usage = {(u.gpu_index, u.job_id): u for u in collector.usage()}
    slurm = usage[(0, "3385")]
    assert (slurm.step, slurm.pids, slurm.memory_used_bytes) == (
        "0,batch",
        [41102, 41237],
        42 << 30,
    )
    assert slurm.sm_percent == 85.0
    assert slurm.gpu_seconds == pytest.approx(4.0)
    assert slurm.energy_joules == pytest.approx(4 * 250.0)
    pod = usage[(1, "k8s:0b7632a2-a56e-4278-987a-22de18008dbe")]
    user = usage[(1, "user:notebook")]
    assert pod.gpu_seconds == user.gpu_seconds == pytest.approx(2.0)
    assert pod.energy_joules == pytest.approx(3 * user.energy_joules)
    idle = usage[(2, "5555")]
    assert (idle.pids, idle.sm_percent, idle.scheduler) == ([], 0.0, "mapping")
    assert idle.idle_seconds == idle.gpu_seconds == pytest.approx(4.0)
    assert idle.energy_joules == pytest.approx(1000.0)
    # Field names and types are the wire's: strict validation accepts every record.
    for record in collector.usage():
        JobGpuUsage.model_validate(dataclasses.asdict(record))
        JobGpuUsage.model_construct(**dataclasses.asdict(record)).model_dump_json()


def test_a_job_leaving_its_gpu(node: Path) -> None:
    gpus, clock = Gpus(), [0.0]
    collector = _collector(node, gpus, clock)
    (node / "mapping" / "2").unlink()
    _tick(gpus, 0.0)
    collector.collect(WALL0)
    _tick(gpus, 1.0)
    collector.collect(WALL0 + 1)
    # The notebook process exits; the energy reading of this tick settles its last second.
    gpus.current[1] = dataclasses.replace(
        gpus.current[1],
        monotonic=2.0,
        processes=gpus.current[1].processes[:1],
        energy_mj=1_000_000 + 250_000 * 2,
        energy_monotonic=2.0,
    )
    samples = collector.collect(WALL0 + 2)
    assert "user:notebook" not in {s.labels["job_id"] for s in samples}
    ended = [u for u in collector.usage() if u.job_id == "user:notebook"]
    assert len(ended) == 1 and ended[0].since == WALL0
    collector.collect(WALL0 + 3)
    assert "user:notebook" not in {u.job_id for u in collector.usage()}


def test_without_a_mapping_dir_and_with_no_gpus(node: Path) -> None:
    collector = JobsCollector.on_host(HostPaths(proc=node / "proc"), lambda: [], "gpu-node-07")
    assert collector.collect(WALL0) == []
    assert collector.usage() == []
