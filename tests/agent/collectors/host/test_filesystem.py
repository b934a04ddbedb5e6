"""The filesystem collector: mount table, exclusions, statvfs through an injected function."""

from __future__ import annotations

import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host._files import MalformedFileError
from agent.collectors.host.filesystem import FilesystemCollector, unescape
from agent.collectors.host.options import HostOptions
from tests.catalog_check import assert_conforms

from ._helpers import (
    GPU_SERVER,
    RECORDED,
    fake_statvfs_result,
    label_values,
    tree_paths,
    value,
    write_tree,
)

KUBELET_TMPFS = (
    "/var/lib/kubelet/pods/5e6f7a8b/volumes/kubernetes.io~projected/kube-api-access-x7k2p"
)
GPU_SERVER_REPORTED = {
    "/run",
    "/",
    "/boot/efi",
    "/raid",
    "/mnt/scratch space",
    "/home",
    "/mnt/datasets",
    KUBELET_TMPFS,  # tmpfs is not excluded by node_exporter's defaults, nor by dcmon's
}
HOME = {"device": "10.20.0.5:/export/home", "fstype": "nfs4", "mountpoint": "/home"}
ROOT = {"device": "/dev/nvme0n1p2", "fstype": "ext4", "mountpoint": "/"}


@pytest.fixture
def build() -> Iterator[Callable[..., FilesystemCollector]]:
    """Builds collectors and closes them (and so their worker threads) at teardown."""
    built: list[FilesystemCollector] = []

    def make(
        paths: HostPaths,
        statvfs: Callable[[str], os.statvfs_result],
        options: HostOptions | None = None,
    ) -> FilesystemCollector:
        collector = FilesystemCollector(paths, options or HostOptions(), statvfs)
        built.append(collector)
        return collector

    yield make
    for collector in built:
        collector.close()


def by_path(results: dict[str, os.statvfs_result]) -> Callable[[str], os.statvfs_result]:
    def statvfs(path: str) -> os.statvfs_result:
        if path in results:
            return results[path]
        raise FileNotFoundError(2, "No such file or directory", path)

    return statvfs


def test_recorded_vm_reports_only_the_root_filesystem(
    build: Callable[..., FilesystemCollector],
) -> None:
    seen: list[str] = []

    def statvfs(path: str) -> os.statvfs_result:
        seen.append(path)
        return fake_statvfs_result(frsize=4096, blocks=66053021, bfree=60250000, bavail=20795000)

    samples = build(tree_paths(RECORDED), statvfs).collect(0.0)

    labels = {"device": "/dev/vda", "fstype": "ext4", "mountpoint": "/"}
    assert seen == ["/"]
    assert value(samples, "node_filesystem_size_bytes", **labels) == 66053021 * 4096
    assert value(samples, "node_filesystem_free_bytes", **labels) == 60250000 * 4096
    assert value(samples, "node_filesystem_avail_bytes", **labels) == 20795000 * 4096
    assert value(samples, "node_filesystem_files", **labels) == 100
    assert value(samples, "node_filesystem_files_free", **labels) == 90
    assert value(samples, "node_filesystem_readonly", **labels) == 0
    assert value(samples, "node_filesystem_device_error", **labels) == 0
    assert len(samples) == 7
    assert_conforms(samples, source="filesystem")


def test_gpu_server_default_exclusions_dedup_and_escapes(
    build: Callable[..., FilesystemCollector],
) -> None:
    calls: Counter[str] = Counter()

    def statvfs(path: str) -> os.statvfs_result:
        calls[path] += 1
        return fake_statvfs_result()

    samples = build(tree_paths(GPU_SERVER), statvfs).collect(0.0)

    assert (
        label_values(samples, "node_filesystem_device_error", "mountpoint") == GPU_SERVER_REPORTED
    )
    assert set(calls) == GPU_SERVER_REPORTED
    assert max(calls.values()) == 1  # "/" is listed twice in the table, asked once
    assert label_values(samples, "node_filesystem_size_bytes", "fstype") == {
        "tmpfs",
        "ext4",
        "vfat",
        "xfs",
        "nfs4",
    }
    assert value(samples, "node_filesystem_readonly", **ROOT) == 0
    datasets = {"device": "10.20.0.6:/datasets", "fstype": "nfs4", "mountpoint": "/mnt/datasets"}
    assert value(samples, "node_filesystem_readonly", **datasets) == 1
    assert_conforms(samples, source="filesystem")


def test_size_uses_fragment_size_as_posix_defines(
    build: Callable[..., FilesystemCollector],
) -> None:
    # A FUSE filesystem reporting a 128 KiB preferred I/O size over 512-byte fragments.
    result = fake_statvfs_result(bsize=131072, frsize=512, blocks=2147483648, bavail=10, bfree=20)

    samples = build(tree_paths(GPU_SERVER), lambda _path: result).collect(0.0)

    assert value(samples, "node_filesystem_size_bytes", **ROOT) == 2147483648 * 512  # 1 TiB
    assert value(samples, "node_filesystem_avail_bytes", **ROOT) == 10 * 512


def test_readonly_flag_from_statvfs_counts_too(build: Callable[..., FilesystemCollector]) -> None:
    result = fake_statvfs_result(flag=os.ST_RDONLY)

    samples = build(tree_paths(GPU_SERVER), lambda _path: result).collect(0.0)

    assert value(samples, "node_filesystem_readonly", **ROOT) == 1


def test_failing_statvfs_reports_device_error_and_nothing_else(
    build: Callable[..., FilesystemCollector],
) -> None:
    def statvfs(path: str) -> os.statvfs_result:
        if path == "/boot/efi":
            raise PermissionError(13, "Permission denied", path)
        return fake_statvfs_result()

    samples = build(tree_paths(GPU_SERVER), statvfs).collect(0.0)

    efi = {"device": "/dev/nvme0n1p1", "fstype": "vfat", "mountpoint": "/boot/efi"}
    assert value(samples, "node_filesystem_device_error", **efi) == 1
    assert value(samples, "node_filesystem_readonly", **efi) == 0
    assert not [s for s in samples if s.labels == efi and s.name.endswith("_bytes")]
    assert value(samples, "node_filesystem_device_error", **ROOT) == 0
    assert_conforms(samples, source="filesystem")


def test_custom_exclusions_replace_the_defaults(build: Callable[..., FilesystemCollector]) -> None:
    options = HostOptions(mount_points_exclude="^/(run|home|var)($|/)", fs_types_exclude="^$")

    samples = build(tree_paths(GPU_SERVER), lambda _p: fake_statvfs_result(), options).collect(0.0)

    reported = label_values(samples, "node_filesystem_device_error", "mountpoint")
    assert "/home" not in reported
    assert "/run" not in reported
    assert {"/sys", "/proc", "/dev", "/snap/core20/2015"} <= reported


def test_mount_points_resolve_under_rootfs(
    scratch: Path, build: Callable[..., FilesystemCollector]
) -> None:
    table = "/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 /data xfs rw 0 0\n"
    paths = write_tree(scratch, {"proc/1/mounts": table})
    paths = paths._replace(rootfs=Path("/host"))
    seen: list[str] = []

    def statvfs(path: str) -> os.statvfs_result:
        seen.append(path)
        return fake_statvfs_result()

    samples = build(paths, statvfs).collect(0.0)

    assert seen == ["/host/", "/host/data"]
    assert label_values(samples, "node_filesystem_size_bytes", "mountpoint") == {"/", "/data"}


def test_container_view_of_host_mounts_is_stripped_of_the_rootfs_prefix(
    scratch: Path, build: Callable[..., FilesystemCollector]
) -> None:
    # /proc/1/mounts hidden (hidepid): the agent's own table shows the host under /host.
    table = (
        "overlay / overlay rw 0 0\n"
        "/dev/sda1 /host ext4 rw 0 0\n"
        "/dev/sdb1 /host/data xfs ro 0 0\n"
        "/dev/sdc1 /hostile ext4 rw 0 0\n"
    )
    paths = write_tree(scratch, {"proc/self/mounts": table})._replace(rootfs=Path("/host"))
    seen: list[str] = []

    def statvfs(path: str) -> os.statvfs_result:
        seen.append(path)
        return fake_statvfs_result()

    samples = build(paths, statvfs).collect(0.0)

    assert label_values(samples, "node_filesystem_size_bytes", "mountpoint") == {
        "/",
        "/data",
        "/hostile",
    }
    assert seen == ["/host/", "/host/data", "/host/hostile"]
    data = {"device": "/dev/sdb1", "fstype": "xfs", "mountpoint": "/data"}
    assert value(samples, "node_filesystem_readonly", **data) == 1


def test_no_mount_table_at_all_is_an_error(
    scratch: Path, build: Callable[..., FilesystemCollector]
) -> None:
    with pytest.raises(FileNotFoundError):
        build(write_tree(scratch, {}), lambda _p: fake_statvfs_result()).collect(0.0)


def test_malformed_mount_table_raises(
    scratch: Path, build: Callable[..., FilesystemCollector]
) -> None:
    paths = write_tree(scratch, {"proc/1/mounts": "/dev/sda1 / ext4 rw 0 0\nbroken line\n"})

    with pytest.raises(MalformedFileError, match="mounts"):
        build(paths, lambda _p: fake_statvfs_result()).collect(0.0)


def _error(samples: list[Sample], labels: dict[str, str]) -> float:
    return value(samples, "node_filesystem_device_error", **labels)


def test_hung_statvfs_is_cut_off_not_retried_while_stuck_and_recovers(
    build: Callable[..., FilesystemCollector],
) -> None:
    release = threading.Event()
    calls: Counter[str] = Counter()

    def statvfs(path: str) -> os.statvfs_result:
        calls[path] += 1
        if path == "/home" and not release.is_set():
            release.wait(30)  # a dead NFS server; bounded so a broken test cannot hang
        return fake_statvfs_result(blocks=777)

    collector = build(tree_paths(GPU_SERVER), statvfs, HostOptions(statvfs_timeout_seconds=0.3))
    try:
        started = time.monotonic()
        first = collector.collect(1.0)
        first_seconds = time.monotonic() - started

        assert 0.3 <= first_seconds < 1.5
        assert _error(first, HOME) == 1
        assert not [s for s in first if s.labels == HOME and s.name.endswith("_bytes")]
        assert value(first, "node_filesystem_size_bytes", **ROOT) == 777 * 4096
        assert calls["/home"] == 1

        threads = threading.active_count()
        started = time.monotonic()
        second = collector.collect(2.0)
        second_seconds = time.monotonic() - started

        assert second_seconds < 0.25  # the stuck mount is skipped, not waited for again
        assert calls["/home"] == 1  # no second call piled up behind the stuck one
        assert threading.active_count() == threads
        assert _error(second, HOME) == 1
        assert value(second, "node_filesystem_device_error", **ROOT) == 0
        assert_conforms(second, source="filesystem")
    finally:
        release.set()

    deadline = time.monotonic() + 5.0
    while True:
        third = collector.collect(3.0)
        if _error(third, HOME) == 0 or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert _error(third, HOME) == 0
    assert value(third, "node_filesystem_size_bytes", **HOME) == 777 * 4096
    assert calls["/home"] == 2


def test_several_hung_mounts_share_one_deadline(build: Callable[..., FilesystemCollector]) -> None:
    release = threading.Event()

    def statvfs(path: str) -> os.statvfs_result:
        if path in ("/home", "/mnt/datasets"):
            release.wait(30)
        return fake_statvfs_result()

    collector = build(tree_paths(GPU_SERVER), statvfs, HostOptions(statvfs_timeout_seconds=0.5))
    try:
        started = time.monotonic()
        samples = collector.collect(1.0)
        elapsed = time.monotonic() - started
    finally:
        release.set()

    # One deadline (0.5 s) plus the grace (0.1 s) for the second hung mount, not 2 x 0.5 s.
    assert 0.5 <= elapsed < 0.95
    datasets = {"device": "10.20.0.6:/datasets", "fstype": "nfs4", "mountpoint": "/mnt/datasets"}
    assert _error(samples, HOME) == 1
    assert _error(samples, datasets) == 1
    assert value(samples, "node_filesystem_device_error", **ROOT) == 0


def test_close_stops_the_worker_threads(build: Callable[..., FilesystemCollector]) -> None:
    collector = build(tree_paths(GPU_SERVER), lambda _p: fake_statvfs_result())
    collector.collect(0.0)
    assert any(t.name == "dcmon-statvfs" for t in threading.enumerate())

    collector.close()

    deadline = time.monotonic() + 5.0
    while any(t.name == "dcmon-statvfs" for t in threading.enumerate()):
        assert time.monotonic() < deadline, "statvfs worker still running after close()"
        time.sleep(0.01)


def _kernel_escape(text: str) -> str:
    """The kernel's mangling of mount-table fields (fs/proc_namespace.c: space, tab, NL, \\)."""
    return "".join(f"\\{ord(c):03o}" if c in " \t\n\\" else c for c in text)


@settings(database=None, max_examples=300)
@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40))
def test_unescape_inverts_the_kernel_escaping(text: str) -> None:
    assert unescape(_kernel_escape(text)) == text
