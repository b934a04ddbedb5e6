"""GPU -> job ids from an HPC job-mapping directory (dcgm-exporter's ``--hpc-job-mapping-dir``).

Stage: files written by the scheduler's prolog/epilog -> (this) -> attribution. Input: one
file per GPU, named by its NVML index (``0``, ``1``, ...) or, for a MIG instance,
``<gpu>.<gpu instance>`` (``2.0``); each line is one job id. Output: GPU index -> job ids.

A MIG file counts for its parent GPU (usage is reported per physical GPU). Files are re-read
only when the directory's or their own modification time (or size) changed, so an unchanged
directory costs one ``stat`` per file per tick. Faults never stop collection: a missing
directory is an empty mapping, and a file with an unknown name, an unreadable or oversized
file, or a line that is not a plausible job id is skipped; each kind is logged once.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from agent.jobs._once import LogOnce
from agent.wire.schema import MAX_GPUS_PER_NODE

_log = logging.getLogger(__name__)

_FILE_NAME = re.compile(r"(\d{1,3})(?:\.(\d{1,3}))?")
# Printable, no whitespace: Slurm ids (123, 123_4, 123+1), namespaced names, UUIDs.
_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:+@/=-]{0,255}")
_MAX_FILE_BYTES = 65536


@dataclass(frozen=True, slots=True)
class _File:
    signature: tuple[int, int]  # (mtime_ns, size)
    gpu_index: int
    job_ids: tuple[str, ...]


class JobMappingDir:
    """Reads a job-mapping directory, re-reading only what changed.

    Args:
        path: the directory.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._dir_mtime_ns: int | None = None
        self._names: list[str] = []
        self._files: dict[str, _File] = {}
        self._log_once = LogOnce(_log)
        self.reads = 0  # files parsed so far (observability; tests check caching with it)

    def read(self) -> dict[int, tuple[str, ...]]:
        """Returns: GPU index -> the job ids allocated to it, in file order, without repeats."""
        try:
            mtime_ns = os.stat(self._path).st_mtime_ns
            if mtime_ns != self._dir_mtime_ns:
                with os.scandir(self._path) as entries:
                    self._names = sorted(entry.name for entry in entries)
                self._dir_mtime_ns = mtime_ns
        except OSError as exc:
            self._log_once("dir", "job-mapping directory %s unreadable: %s", self._path, exc)
            self._dir_mtime_ns = None
            self._names = []
            self._files.clear()
            return {}
        files: dict[str, _File] = {}
        for name in self._names:
            parsed = self._file(name)
            if parsed is not None:
                files[name] = parsed
        self._files = files
        mapping: dict[int, list[str]] = {}
        for parsed in files.values():
            ids = mapping.setdefault(parsed.gpu_index, [])
            ids.extend(job for job in parsed.job_ids if job not in ids)
        return {index: tuple(ids) for index, ids in sorted(mapping.items()) if ids}

    def _file(self, name: str) -> _File | None:
        match = _FILE_NAME.fullmatch(name)
        if match is None or int(match[1]) >= MAX_GPUS_PER_NODE:
            self._log_once(
                f"name:{name}", "job-mapping file %r is not named by a GPU index, skipped", name
            )
            return None
        path = self._path / name
        try:
            info = os.stat(path)
        except OSError:
            return None  # removed since the directory was listed
        signature = (info.st_mtime_ns, info.st_size)
        known = self._files.get(name)
        if known is not None and known.signature == signature:
            return known
        if info.st_size > _MAX_FILE_BYTES:
            self._log_once(f"size:{name}", "job-mapping file %s is too large, skipped", path)
            return _File(signature, int(match[1]), ())
        try:
            text = path.read_bytes()[:_MAX_FILE_BYTES].decode("utf-8", "replace")
        except OSError as exc:
            self._log_once(f"read:{name}", "job-mapping file %s unreadable: %s", path, exc)
            return None
        self.reads += 1
        job_ids: list[str] = []
        for line in text.splitlines():
            job = line.strip()
            if not job:
                continue
            if _JOB_ID.fullmatch(job) is None:
                self._log_once(
                    f"line:{name}", "job-mapping file %s: line %r is not a job id", path, job[:60]
                )
                continue
            if job not in job_ids:
                job_ids.append(job)
        return _File(signature, int(match[1]), tuple(job_ids))
