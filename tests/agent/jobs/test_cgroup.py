"""Jobs named by cgroup paths: each layout, and paths that name none."""

from __future__ import annotations

import pytest

from agent.jobs.cgroup import cgroup_paths, scheduler_job, systemd_unit
from agent.jobs.model import JobRef

_ID = "3f4e2a9c1b7d8e6f0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f6071"


@pytest.mark.parametrize(
    ("text", "job", "uid"),
    [
        (
            "0::/system.slice/slurmstepd.scope/job_9/step_0/user/task_0\n",
            JobRef("9", "slurm", step="0"),
            None,
        ),
        (
            "0::/system.slice/node7_slurmstepd.scope/job_9/step_extern/slurm\n",
            JobRef("9", "slurm", step="extern"),
            None,
        ),
        ("0::/system.slice/slurmstepd.scope/job_9\n", JobRef("9", "slurm"), None),
        ("4:memory:/slurm/uid_1000/job_55/step_3/task_1\n", JobRef("55", "slurm", step="3"), 1000),
        ("4:memory:/slurm_node7/uid_0/job_55/step_batch\n", JobRef("55", "slurm", step="batch"), 0),
        (
            "0::/kubepods.slice/kubepods-pod0b7632a2_a56e_4278_987a_22de18008dbe.slice/"
            f"cri-containerd-{_ID}.scope\n",
            JobRef("k8s:0b7632a2-a56e-4278-987a-22de18008dbe", "kubernetes", step=_ID[:12]),
            None,
        ),
        (
            "0::/kubepods/besteffort/pod0b7632a2-a56e-4278-987a-22de18008dbe/crio-"
            + _ID
            + ".scope\n",
            JobRef("k8s:0b7632a2-a56e-4278-987a-22de18008dbe", "kubernetes", step=_ID[:12]),
            None,
        ),
        (
            "0::/kubepods.slice/kubepods-besteffort.slice/"
            "kubepods-besteffort-pod0b7632a2_a56e_4278_987a_22de18008dbe.slice\n",
            JobRef("k8s:0b7632a2-a56e-4278-987a-22de18008dbe", "kubernetes"),
            None,
        ),
        (
            f"0::/system.slice/docker-{_ID}.scope\n",
            JobRef(f"container:{_ID[:12]}", "container"),
            None,
        ),
        (f"9:pids:/docker/{_ID}\n", JobRef(f"container:{_ID[:12]}", "container"), None),
        (
            f"0::/machine.slice/libpod-{_ID}.scope/container\n",
            JobRef(f"container:{_ID[:12]}", "container"),
            None,
        ),
    ],
)
def test_scheduler_layouts(text: str, job: JobRef, uid: int | None) -> None:
    assert scheduler_job(text) == (job, uid)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "0::/\n",
        "0::/user.slice/user-1000.slice/session-4.scope\n",
        "0::/system.slice/slurmd.service\n",
        # A pod uid outside a kubepods path is not a Kubernetes pod.
        "0::/machine.slice/pod0b7632a2_a56e_4278_987a_22de18008dbe.slice\n",
        # 63 hex digits: not a container id.
        f"0::/system.slice/docker-{_ID[:63]}.scope\n",
        "garbage without colons\n",
    ],
)
def test_paths_without_a_scheduler_job(text: str) -> None:
    assert scheduler_job(text) is None


def test_slurm_beats_a_container_id_on_another_line() -> None:
    text = f"5:devices:/docker/{_ID}\n4:memory:/slurm/uid_7/job_8/step_0\n"
    assert scheduler_job(text) == (JobRef("8", "slurm", step="0"), 7)


@pytest.mark.parametrize(
    ("text", "unit"),
    [
        ("0::/system.slice/inference.service\n", "inference.service"),
        ("0::/system.slice/run-u42.scope\n", "run-u42.scope"),
        ("0::/system.slice/outer.service/inner.service/leaf\n", "inner.service"),
        ("0::/init.scope\n", None),
        ("0::/user.slice/user-1000.slice/session-4.scope\n", None),
        ("0::/user.slice/user-1000.slice/user@1000.service/app.slice/x.service\n", None),
        ("0::/\n", None),
        # v1: the systemd hierarchy decides, not a controller still at its root.
        ("3:cpu:/\n1:name=systemd:/system.slice/batch.service\n", "batch.service"),
    ],
)
def test_systemd_unit(text: str, unit: str | None) -> None:
    assert systemd_unit(text) == unit


def test_paths_rank_unified_then_systemd() -> None:
    text = "3:memory:/a\n1:name=systemd:/b\n0::/c\nnot a line\n2:cpu:relative\n"
    assert cgroup_paths(text) == ["/c", "/b", "/a"]
