"""The ``filesystem`` collector: space and inodes per mount, as node_exporter's.

Input: the mount table of PID 1 (``/proc/1/mounts``, falling back to ``/proc/self/mounts``
when PID 1 is hidden by ``hidepid``) and ``statvfs`` of each mount point, resolved under
``HostPaths.rootfs`` so an agent in a container reads the host's mounts at ``/host/...``.
Output, labelled ``{device,fstype,mountpoint}``: ``node_filesystem_{size,free,avail}_bytes``,
``node_filesystem_files``, ``node_filesystem_files_free``, ``node_filesystem_readonly`` and
``node_filesystem_device_error``.

``statvfs`` is injected and runs with a deadline (see ``_statvfs``). The whole pass shares one
deadline of ``statvfs_timeout_seconds``; once it has passed, each further mount still gets a
short grace, so healthy mounts keep reporting while newly hung ones cost at most the grace. A
mount whose call hangs or fails is reported with ``device_error=1`` (and ``readonly`` from its
mount options) and nothing else; a hung one is not asked again until its call returns.

Deviations from node_exporter: sizes use ``f_frsize`` (POSIX's unit of ``f_blocks``, what df
uses) where node_exporter multiplies by ``f_bsize``; the two agree on local filesystems but not
on FUSE or parallel filesystems that report a large preferred I/O size. node_exporter >= 1.6
also adds a ``device_error`` label holding the error text; dcmon keeps the three labels (an
empty label equals an absent one in PromQL, and error text is unbounded cardinality).
"""

from __future__ import annotations

import logging
import os
import re
import time

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host import _statvfs
from agent.collectors.host._files import MalformedFileError, read_table
from agent.collectors.host.options import HostOptions

logger = logging.getLogger(__name__)

GRACE_SECONDS = 0.1
"""Wait granted to each mount once the pass's deadline has passed."""

_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")


def unescape(field: str) -> str:
    """Returns: a mount-table field with the kernel's octal escapes (``\\040`` ...) decoded."""
    if "\\" not in field:
        return field
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match.group(1), 8)), field)


class FilesystemCollector:
    """Reports every mounted filesystem that the exclusion patterns let through."""

    name = "filesystem"

    def __init__(
        self,
        paths: HostPaths,
        options: HostOptions,
        statvfs: _statvfs.StatvfsFunction = os.statvfs,
    ) -> None:
        self._mount_tables = (paths.proc / "1" / "mounts", paths.proc / "self" / "mounts")
        self._rootfs = str(paths.rootfs).rstrip("/")  # "" for "/"
        self._mount_exclude = options.pattern(options.mount_points_exclude)
        self._type_exclude = options.pattern(options.fs_types_exclude)
        self._timeout_seconds = options.statvfs_timeout_seconds
        self._runner = _statvfs.StatvfsRunner(statvfs)

    def close(self) -> None:
        """Stops the statvfs worker thread."""
        self._runner.close()

    def collect(self, now: float) -> list[Sample]:
        """Returns: the filesystem samples of this pass.

        Raises:
            OSError: no mount table can be read.
            MalformedFileError: a mount-table line has fewer than four fields.
        """
        deadline = time.monotonic() + self._timeout_seconds
        samples: list[Sample] = []
        seen: set[tuple[str, str, str]] = set()
        for device, mount_point, fs_type, options in self._mounts():
            if self._mount_exclude is not None and self._mount_exclude.search(mount_point):
                continue
            if self._type_exclude is not None and self._type_exclude.search(fs_type):
                continue
            if (device, mount_point, fs_type) in seen:
                continue  # the same mount listed twice (propagation) is reported once
            seen.add((device, mount_point, fs_type))
            labels = {"device": device, "fstype": fs_type, "mountpoint": mount_point}
            readonly = "ro" in options.split(",")
            wait = max(deadline - time.monotonic(), min(GRACE_SECONDS, self._timeout_seconds))
            try:
                stat = self._runner.call(self._host_path(mount_point), wait)
            except OSError as exc:
                logger.debug("statvfs(%r) failed: %s", mount_point, exc)
                samples.append(Sample("node_filesystem_device_error", labels, 1.0))
                samples.append(Sample("node_filesystem_readonly", dict(labels), float(readonly)))
                continue
            readonly = readonly or bool(stat.f_flag & os.ST_RDONLY)
            for name, value in (
                ("node_filesystem_device_error", 0),
                ("node_filesystem_size_bytes", stat.f_blocks * stat.f_frsize),
                ("node_filesystem_free_bytes", stat.f_bfree * stat.f_frsize),
                ("node_filesystem_avail_bytes", stat.f_bavail * stat.f_frsize),
                ("node_filesystem_files", stat.f_files),
                ("node_filesystem_files_free", stat.f_ffree),
                ("node_filesystem_readonly", int(readonly)),
            ):
                samples.append(Sample(name, dict(labels), float(value)))
        return samples

    def _mounts(self) -> list[tuple[str, str, str, str]]:
        """Returns: (device, mount point as the host sees it, fs type, options) per mount."""
        primary, fallback = self._mount_tables
        try:
            path, text = primary, read_table(primary)
        except (FileNotFoundError, PermissionError) as exc:
            logger.debug("cannot read %s (%s); using %s", primary, exc, fallback)
            path, text = fallback, read_table(fallback)
        mounts = []
        for line in text.splitlines():
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 4:
                raise MalformedFileError(path, f"bad mount line {line[:80]!r}")
            mount_point = self._strip_rootfs(unescape(fields[1]))
            mounts.append((fields[0], mount_point, fields[2], fields[3]))
        return mounts

    def _strip_rootfs(self, mount_point: str) -> str:
        """Returns: the mount point without the rootfs prefix a container's table shows."""
        if not self._rootfs:
            return mount_point
        if mount_point == self._rootfs:
            return "/"
        if mount_point.startswith(self._rootfs + "/"):
            return mount_point[len(self._rootfs) :]
        return mount_point

    def _host_path(self, mount_point: str) -> str:
        """Returns: where this process reaches the host's ``mount_point``."""
        return self._rootfs + mount_point if self._rootfs else mount_point
