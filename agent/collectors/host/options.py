"""Settings of the host collectors: exclusion patterns and the statvfs deadline.

Defaults are node_exporter's (current upstream) except ``network_devices_exclude``: on
Kubernetes nodes every pod gets a host-side virtual interface (``veth*`` with Docker/containerd
bridges and Flannel, ``cali*`` with Calico, ``lxc*`` with Cilium), created and destroyed with the
pod. Reported like physical ports they churn thousands of short-lived series per node, so dcmon
leaves them out by default, where node_exporter reports them (its netdev/netclass/arp exclusions
default to nothing). Set the pattern to ``""`` to report every interface.

Patterns are Python regular expressions searched (not fully matched) in the name, as Go's
``MatchString`` does in node_exporter; the defaults are anchored. An empty pattern excludes
nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DEFAULT_MOUNT_POINTS_EXCLUDE = (
    r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"
)
DEFAULT_FS_TYPES_EXCLUDE = (
    r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs"
    r"|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs"
    r"|squashfs|erofs|sysfs|tracefs)$"
)
DEFAULT_DISK_DEVICES_EXCLUDE = r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$"
DEFAULT_NETWORK_DEVICES_EXCLUDE = r"^(veth|cali|lxc).*$"

_DECISION_CACHE_LIMIT = 4096


@dataclass(frozen=True)
class HostOptions:
    """What the host collectors leave out, and how long a ``statvfs`` may take.

    Attributes:
        mount_points_exclude: mount points the filesystem collector skips.
        fs_types_exclude: filesystem types the filesystem collector skips (pseudo filesystems;
            tmpfs is kept, as in node_exporter).
        disk_devices_exclude: block devices the diskstats collector skips (partitions, loop
            and RAM disks, so a disk is not counted twice).
        network_devices_exclude: interfaces the netdev, netclass and arp collectors skip (see the
            module docstring for why this differs from node_exporter).
        statvfs_timeout_seconds: deadline of one filesystem pass's ``statvfs`` calls, in
            seconds (node_exporter's ``--collector.filesystem.mount-timeout``).
        textfile_directory: where the textfile collector reads ``*.prom`` files
            (node_exporter's ``--collector.textfile.directory``); empty: none.
    """

    mount_points_exclude: str = DEFAULT_MOUNT_POINTS_EXCLUDE
    fs_types_exclude: str = DEFAULT_FS_TYPES_EXCLUDE
    disk_devices_exclude: str = DEFAULT_DISK_DEVICES_EXCLUDE
    network_devices_exclude: str = DEFAULT_NETWORK_DEVICES_EXCLUDE
    statvfs_timeout_seconds: float = 5.0
    textfile_directory: str = ""

    def __post_init__(self) -> None:
        for name in (
            "mount_points_exclude",
            "fs_types_exclude",
            "disk_devices_exclude",
            "network_devices_exclude",
        ):
            try:
                self.pattern(getattr(self, name))
            except re.error as exc:
                raise ValueError(f"{name}: invalid regular expression: {exc}") from None
        if not self.statvfs_timeout_seconds > 0:
            raise ValueError("statvfs_timeout_seconds must be positive")

    @staticmethod
    def pattern(expression: str) -> re.Pattern[str] | None:
        """Returns: the compiled exclusion pattern, or None for an empty one (exclude nothing)."""
        return re.compile(expression) if expression else None


class ExclusionFilter:
    """An exclusion pattern that remembers its verdict per name, so a regex runs once per name.

    The memory is bounded: it is emptied when it reaches 4096 names (device names churn).
    """

    def __init__(self, expression: str) -> None:
        self._pattern = HostOptions.pattern(expression)
        self._verdicts: dict[str, bool] = {}

    def excludes(self, name: str) -> bool:
        """Returns: whether ``name`` matches the exclusion pattern."""
        verdict = self._verdicts.get(name)
        if verdict is None:
            if len(self._verdicts) >= _DECISION_CACHE_LIMIT:
                self._verdicts.clear()
            verdict = self._pattern is not None and self._pattern.search(name) is not None
            self._verdicts[name] = verdict
        return verdict
