"""The ``jobs`` collector: which job uses which GPU, and how much.

Stage: ``GpuSnapshot`` list (published by the GPU collector) -> (this) -> samples (catalog
``agent/wire/catalog/jobs.toml``) and ``usage()`` (the batch's ``jobs``). Each tick it
resolves every GPU process to a job (``resolver``), adds the jobs a job-mapping directory
allocates to each GPU (``mapping``), groups them per GPU (``attribution``) and advances the
per-pairing counters (``accounting``).

Jobs are not labels on every series: there is one ``dcmon_job_gpu_info`` series (value 1)
per job-GPU pairing present this tick, to be joined with the GPU series on ``UUID``; the
numbers travel as ``JobUsage`` records. Run it after the GPU collector in a tick so that it
sees that tick's snapshots (otherwise it works one tick behind, which loses nothing).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from agent.collectors.base import HostPaths, Sample
from agent.collectors.gpu.snapshot import GpuSnapshot
from agent.jobs._once import LogOnce
from agent.jobs.accounting import UsageLedger
from agent.jobs.attribution import presences
from agent.jobs.mapping import JobMappingDir
from agent.jobs.model import JobPresence, JobRef, JobUsage
from agent.jobs.procfs import ProcessFileReader, ProcFiles
from agent.jobs.resolver import JobResolver, system_user_name
from agent.wire.schema import MAX_JOB_USAGES_PER_BATCH

_log = logging.getLogger(__name__)

INFO_METRIC = "dcmon_job_gpu_info"


class JobsCollector:
    """Collector ``jobs``: job-GPU pairings from GPU snapshots and process files.

    Args:
        snapshots: returns the latest snapshot of every GPU (the GPU collector's).
        hostname: value of the ``Hostname`` label.
        files: reads ``/proc/<pid>/<name>`` (``ProcFiles(HostPaths.proc)`` on a node).
        mapping_dir: an HPC job-mapping directory, or None to use none.
        user_name: uid -> login name (the system user database by default).
        monotonic: the agent's monotonic clock, in seconds.
        settle_timeout_s: see ``UsageLedger``.
    """

    name = "jobs"

    def __init__(
        self,
        snapshots: Callable[[], Sequence[GpuSnapshot]],
        hostname: str,
        files: ProcessFileReader,
        mapping_dir: Path | None = None,
        user_name: Callable[[int], str | None] = system_user_name,
        monotonic: Callable[[], float] = time.monotonic,
        settle_timeout_s: float = 300.0,
    ) -> None:
        self._snapshots = snapshots
        self._hostname = hostname
        self._resolver = JobResolver(files, user_name)
        self._mapping = JobMappingDir(mapping_dir) if mapping_dir is not None else None
        self._monotonic = monotonic
        self._ledger = UsageLedger(settle_timeout_s)
        self._log_once = LogOnce(_log)

    @classmethod
    def on_host(
        cls,
        paths: HostPaths,
        snapshots: Callable[[], Sequence[GpuSnapshot]],
        hostname: str,
        mapping_dir: Path | None = None,
        settle_timeout_s: float = 300.0,
    ) -> JobsCollector:
        """Returns: a collector reading the process files under ``paths.proc``."""
        return cls(
            snapshots,
            hostname,
            ProcFiles(paths.proc),
            mapping_dir,
            settle_timeout_s=settle_timeout_s,
        )

    def collect(self, now: float) -> list[Sample]:
        """Account one tick; returns the info series of the pairings present."""
        snapshots = list(self._snapshots())
        mapping = self._mapping.read() if self._mapping is not None else {}
        resolved: dict[int, JobRef | None] = {}

        def resolve(pid: int) -> JobRef | None:
            if pid not in resolved:
                resolved[pid] = self._resolver.resolve(pid)
            return resolved[pid]

        gpus: list[tuple[GpuSnapshot, Sequence[JobPresence]]] = []
        for snapshot in snapshots:
            present: Sequence[JobPresence] = ()
            if snapshot.up:
                present = presences(snapshot, resolve, mapping.get(snapshot.index, ()))
            gpus.append((snapshot, present))
        self._resolver.prune(resolved)
        self._ledger.advance(now, self._monotonic(), gpus)
        return [
            Sample(
                INFO_METRIC,
                {
                    "job_id": pairing.job.job_id,
                    "scheduler": pairing.job.scheduler,
                    "user": pairing.job.user,
                    "gpu": str(pairing.gpu_index),
                    "UUID": pairing.uuid,
                    "pci_bus_id": pairing.pci_bus_id,
                    "Hostname": self._hostname,
                },
                1.0,
            )
            for pairing in self._ledger.active()
        ]

    def usage(self) -> list[JobUsage]:
        """Returns: the pairings of the last ``collect`` (present ones, then ended ones)."""
        usage = self._ledger.usage()
        if len(usage) > MAX_JOB_USAGES_PER_BATCH:
            self._log_once(
                "cap",
                "%d job-GPU pairings; sending the first %d",
                len(usage),
                MAX_JOB_USAGES_PER_BATCH,
            )
            usage = usage[:MAX_JOB_USAGES_PER_BATCH]
        return usage
