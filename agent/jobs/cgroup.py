"""Jobs from ``/proc/<pid>/cgroup``: Slurm, Kubernetes, containers, systemd units.

Stage: ``/proc/<pid>/cgroup`` text -> (this) -> ``JobResolver``. Pure functions on text.

The file has one ``hierarchy:controllers:path`` line per hierarchy: ``0::/path`` on cgroup v2,
several ``N:controller:/path`` lines on v1, both on hybrid hosts. Paths recognised (first match
over all lines wins, in this order):

- Slurm cgroup v2: ``.../slurmstepd.scope/job_<id>/step_<step>/...`` (also the
  ``<node>_slurmstepd.scope`` of multiple-slurmd builds).
- Slurm cgroup v1: ``.../slurm/uid_<uid>/job_<id>/step_<step>/...`` (``slurm_<node>`` too).
- Kubernetes: a ``kubepods`` path holding ``pod<uid>`` (the systemd cgroup driver writes the
  uid with underscores, the cgroupfs driver with dashes) and, below it, the container id.
- Containers outside Kubernetes: a 64-hex container id, bare (``/docker/<id>``, containerd's
  ``/<namespace>/<id>``) or in a ``<runtime>-<id>.scope`` unit (docker, libpod, nerdctl, ...).

``systemd_unit`` is asked separately, and later: the resolver consults the Slurm environment
variables between the two, because a process of a Slurm job without cgroup tracking sits in
``slurmd.service``.
"""

from __future__ import annotations

import re

from agent.jobs.model import JobRef

_SLURM_V2 = re.compile(r"slurmstepd\.scope/job_(\d+)(?:/step_([^/]+))?")
_SLURM_V1 = re.compile(r"/slurm(?:_[^/]+)?/uid_(\d+)/job_(\d+)(?:/step_([^/]+))?")
_POD = re.compile(
    r"pod([0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12})(?![0-9a-f])"
)
_CONTAINER = re.compile(r"(?:^|/)(?:[a-z][a-z0-9-]*-)?([0-9a-f]{64})(?:\.scope)?(?=/|$)")
_UNIT_SUFFIXES = (".service", ".scope")
# Units that never stand for a workload.
_NOT_JOBS = frozenset({"init.scope"})

SHORT_ID_LENGTH = 12


def cgroup_paths(text: str) -> list[str]:
    """Returns: the cgroup path of every line; v2 (``0::``) first, then v1's ``name=systemd``."""
    ranked: list[tuple[int, str]] = []
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3 or not parts[2].startswith("/"):
            continue
        rank = 0 if parts[0] == "0" and parts[1] == "" else 1 if parts[1] == "name=systemd" else 2
        ranked.append((rank, parts[2]))
    return [path for _, path in sorted(ranked, key=lambda item: item[0])]


def scheduler_job(text: str) -> tuple[JobRef, int | None] | None:
    """Returns: the Slurm, Kubernetes or container job the cgroup file names, or None.

    The second item is the uid a Slurm v1 path carries (a fallback for the owner), else None.
    """
    paths = cgroup_paths(text)
    for path in paths:
        if match := _SLURM_V2.search(path):
            return JobRef(match[1], "slurm", step=match[2] or ""), None
    for path in paths:
        if match := _SLURM_V1.search(path):
            return JobRef(match[2], "slurm", step=match[3] or ""), int(match[1])
    for path in paths:
        if "kubepods" in path and (match := _POD.search(path)):
            uid = match[1].replace("_", "-")
            container = _CONTAINER.search(path, match.end())
            step = container[1][:SHORT_ID_LENGTH] if container else ""
            return JobRef(f"k8s:{uid}", "kubernetes", step=step), None
    for path in paths:
        if match := _CONTAINER.search(path):
            return JobRef(f"container:{match[1][:SHORT_ID_LENGTH]}", "container"), None
    return None


def systemd_unit(text: str) -> str | None:
    """Returns: the innermost systemd service or scope the process runs in, or None.

    Everything under ``user.slice`` (login sessions, per-user managers) belongs to the user,
    not to a unit: the resolver attributes it to the process owner instead.
    """
    for path in cgroup_paths(text):
        segments = [segment for segment in path.split("/") if segment]
        if not segments:
            continue  # the root cgroup of one controller; the systemd hierarchy says more
        if segments[0] == "user.slice":
            return None
        for segment in reversed(segments):
            if segment.endswith(_UNIT_SUFFIXES) and segment not in _NOT_JOBS:
                return segment
        return None
    return None
