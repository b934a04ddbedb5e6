"""PID -> job on the recorded trees, and the faults between calls: exits, PID reuse, no access."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from agent.jobs.model import JobRef
from agent.jobs.procfs import (
    MemoryProcFiles,
    ProcessGone,
    ProcessUnreadable,
    ProcFiles,
)
from agent.jobs.resolver import JobResolver
from tests.agent.jobs.conftest import proc_root, user_name
from tests.integration import require_binary

REPO = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize(
    ("tree", "pid", "job"),
    [
        ("slurm-v2", 41237, JobRef("3385", "slurm", user="trainer", step="0")),
        ("slurm-v2", 41102, JobRef("3385", "slurm", user="trainer", step="batch")),
        ("slurm-v1", 27715, JobRef("123", "slurm", user="analyst", step="batch")),
        ("slurm-env", 30311, JobRef("777", "slurm", user="simulator", step="2")),
        (
            "kubernetes-systemd",
            88412,
            JobRef(
                "k8s:0b7632a2-a56e-4278-987a-22de18008dbe",
                "kubernetes",
                user="root",
                step="3f4e2a9c1b7d",
            ),
        ),
        (
            "kubernetes-cgroupfs",
            61020,
            JobRef(
                "k8s:5c1d2e3f-4a5b-6c7d-8e9f-0a1b2c3d4e5f",
                "kubernetes",
                user="triton",
                step="9a8b7c6d5e4f",
            ),
        ),
        ("docker", 52001, JobRef("container:c0ffee00aa11", "container", user="root")),
        ("containerd", 53007, JobRef("container:0d1e2f3a4b5c", "container", user="root")),
        ("containerd", 53100, JobRef("container:5e6f7a8b9c0d", "container", user="root")),
        (
            "systemd-unit",
            2210,
            JobRef("systemd:inference-server.service", "systemd", user="inference"),
        ),
        ("systemd-unit", 2305, JobRef("systemd:batch-runner.service", "systemd", user="inference")),
        ("user", 14002, JobRef("user:notebook", "user", user="notebook")),
        ("user", 14500, JobRef("user:1005", "user", user="1005")),
    ],
)
def test_recorded_trees(tree: str, pid: int, job: JobRef) -> None:
    resolver = JobResolver(ProcFiles(proc_root(tree)), user_name)
    assert resolver.resolve(pid) == job


def test_a_missing_pid_is_gone_and_not_cached() -> None:
    resolver = JobResolver(ProcFiles(proc_root("docker")), user_name)
    assert resolver.resolve(99999) is None
    assert resolver.cached_pids() == frozenset()


def _files(
    pid: int, start: int, cgroup: str, uid: int, environ: bytes = b""
) -> dict[tuple[int, str], bytes | ProcessGone | ProcessUnreadable]:
    return {
        (pid, "stat"): f"{pid} (python) S 1 {' '.join(['0'] * 17)} {start} 0 0\n".encode(),
        (pid, "cgroup"): cgroup.encode(),
        (pid, "status"): f"Name:\tpython\nUid:\t{uid}\t{uid}\t{uid}\t{uid}\n".encode(),
        (pid, "environ"): environ,
    }


def test_results_are_cached_per_process_lifetime() -> None:
    files = MemoryProcFiles(_files(7, 100, "0::/system.slice/a.service\n", 0))
    resolver = JobResolver(files, user_name)
    assert resolver.resolve(7) == JobRef("systemd:a.service", "systemd", user="root")
    files.reads.clear()
    assert resolver.resolve(7) == JobRef("systemd:a.service", "systemd", user="root")
    assert files.reads == [(7, "stat")]  # only the start time is checked again


def test_pid_reuse_resolves_the_new_process() -> None:
    files = MemoryProcFiles(_files(7, 100, "0::/system.slice/slurmstepd.scope/job_1/step_0\n", 0))
    resolver = JobResolver(files, user_name)
    assert resolver.resolve(7) == JobRef("1", "slurm", user="root", step="0")
    # Same PID, later start time, another owner and job.
    files.files.update(_files(7, 250, "0::/user.slice/user-1001.slice/session-2.scope\n", 1001))
    assert resolver.resolve(7) == JobRef("user:trainer", "user", user="trainer")


def test_pid_reused_while_being_read_is_not_cached() -> None:
    files = MemoryProcFiles(_files(7, 100, "0::/system.slice/a.service\n", 0))

    class Racing(MemoryProcFiles):
        def read(self, pid: int, name: str, limit_bytes: int) -> bytes:
            data = super().read(pid, name, limit_bytes)
            if name == "status":  # the process exits and its PID is reused right after this
                self.files.update(_files(7, 300, "0::/system.slice/b.service\n", 0))
            return data

    racing = Racing(files.files)
    resolver = JobResolver(racing, user_name)
    assert resolver.resolve(7) is None
    assert resolver.cached_pids() == frozenset()
    assert resolver.resolve(7) == JobRef("systemd:b.service", "systemd", user="root")


def test_process_vanishing_between_calls() -> None:
    files = MemoryProcFiles(_files(7, 100, "0::/system.slice/a.service\n", 0))
    del files.files[(7, "cgroup")]  # stat was readable, then the process exited
    resolver = JobResolver(files, user_name)
    assert resolver.resolve(7) is None
    assert resolver.cached_pids() == frozenset()
    # It was only a window: a later call sees the whole process and resolves it.
    files.files.update(_files(7, 100, "0::/system.slice/a.service\n", 0))
    assert resolver.resolve(7) == JobRef("systemd:a.service", "systemd", user="root")


def test_exited_process_is_dropped_from_the_cache() -> None:
    files = MemoryProcFiles(_files(7, 100, "0::/system.slice/a.service\n", 0))
    resolver = JobResolver(files, user_name)
    resolver.resolve(7)
    for name in ("stat", "cgroup", "status", "environ"):
        files.files[(7, name)] = ProcessGone("gone")
    assert resolver.resolve(7) is None
    assert resolver.cached_pids() == frozenset()


def test_environ_permission_denied_falls_through_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    files = MemoryProcFiles(
        {
            **_files(7, 100, "0::/system.slice/slurmd.service\n", 1001),
            **_files(8, 100, "0::/system.slice/slurmd.service\n", 1002),
        }
    )
    files.files[(7, "environ")] = ProcessUnreadable("permission denied")
    files.files[(8, "environ")] = ProcessUnreadable("permission denied")
    resolver = JobResolver(files, user_name)
    with caplog.at_level(logging.WARNING, logger="agent.jobs.resolver"):
        assert resolver.resolve(7) == JobRef("systemd:slurmd.service", "systemd", user="trainer")
        assert resolver.resolve(8) == JobRef("systemd:slurmd.service", "systemd", user="analyst")
    assert len([r for r in caplog.records if "environ" in r.getMessage()]) == 1


# Resolve PID 30311 of a copied tree whose environ is closed, and print the job: run as an
# unprivileged user when the tests run as root (as CI does), since root reads any file.
_RESOLVE_30311 = """
import sys
from pathlib import Path
from agent.jobs.procfs import ProcFiles
from agent.jobs.resolver import JobResolver
from tests.agent.jobs.conftest import user_name
print(repr(JobResolver(ProcFiles(Path(sys.argv[1])), user_name).resolve(30311)))
"""
_NOBODY = 65534


def test_environ_permission_denied_on_a_real_file() -> None:
    """A real EACCES from the kernel (not a scripted one): the job still resolves from the
    cgroup. As root, the read runs as ``nobody`` (setpriv), so the test never skips in CI."""
    scratch = Path(tempfile.mkdtemp(prefix="dcmon-resolver-"))
    try:
        scratch.chmod(0o755)  # the unprivileged user must reach the tree, not the environ
        shutil.copytree(proc_root("slurm-env"), scratch / "proc")
        environ = scratch / "proc" / "30311" / "environ"
        environ.chmod(0)
        argv = [sys.executable, "-c", _RESOLVE_30311, str(scratch / "proc")]
        if os.geteuid() == 0:
            setpriv = require_binary("setpriv")
            unprivileged = [f"--reuid={_NOBODY}", f"--regid={_NOBODY}", "--clear-groups"]
            argv = [setpriv, *unprivileged, *argv]
            probe = [setpriv, *unprivileged, sys.executable, "-c", "import sys; open(sys.argv[1])"]
            denied = subprocess.run([*probe, str(environ)], capture_output=True, check=False)
            assert b"PermissionError" in denied.stderr, denied  # the file really is closed
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONPATH": str(REPO)}
        done = subprocess.run(
            argv, capture_output=True, text=True, env=env, cwd=REPO, timeout=60, check=False
        )
        assert done.returncode == 0, done.stderr
        job = JobRef("systemd:slurmd.service", "systemd", user="simulator")
        assert done.stdout.strip() == repr(job), done.stderr
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def test_proc_files_maps_errors(tmp_path: Path) -> None:
    (tmp_path / "5").mkdir()
    (tmp_path / "5" / "stat").write_text("x")
    (tmp_path / "5" / "cgroup").mkdir()  # reading a folder fails with EISDIR
    files = ProcFiles(tmp_path)
    assert files.read(5, "stat", 10) == b"x"
    with pytest.raises(ProcessGone):
        files.read(6, "stat", 10)
    with pytest.raises(ProcessGone):
        files.read(5, "environ", 10)
    with pytest.raises(ProcessUnreadable):
        files.read(5, "cgroup", 10)


def test_proc_files_honours_the_limit(tmp_path: Path) -> None:
    (tmp_path / "5").mkdir()
    (tmp_path / "5" / "environ").write_bytes(b"A=1\0" * 100_000)
    assert len(ProcFiles(tmp_path).read(5, "environ", 1000)) == 1000


def test_unreadable_stat_or_status() -> None:
    files = MemoryProcFiles(_files(7, 100, "0::/user.slice/user-0.slice/session-1.scope\n", 0))
    files.files[(7, "status")] = ProcessUnreadable("denied")
    resolver = JobResolver(files, user_name)
    # Nothing names a job and the owner is unknown: no job, and that answer is cached.
    assert resolver.resolve(7) is None
    assert resolver.cached_pids() == frozenset({7})
    files.files[(8, "stat")] = b"8 (x) S 1 2\n"  # too short: no start time
    assert resolver.resolve(8) is None
    assert 8 not in resolver.cached_pids()


def test_slurm_v1_uid_stands_in_for_an_unreadable_status() -> None:
    files = MemoryProcFiles(_files(7, 100, "4:memory:/slurm/uid_1002/job_5/step_0\n", 0))
    files.files[(7, "status")] = ProcessUnreadable("denied")
    resolver = JobResolver(files, user_name)
    assert resolver.resolve(7) == JobRef("5", "slurm", user="analyst", step="0")


def test_prune_keeps_only_live_pids() -> None:
    files = MemoryProcFiles(
        {
            **_files(7, 100, "0::/system.slice/a.service\n", 0),
            **_files(8, 100, "0::/system.slice/b.service\n", 0),
        }
    )
    resolver = JobResolver(files, user_name)
    resolver.resolve(7)
    resolver.resolve(8)
    resolver.prune([8])
    assert resolver.cached_pids() == frozenset({8})
