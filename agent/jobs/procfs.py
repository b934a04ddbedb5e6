"""The process-files seam: one small ``/proc/<pid>/<name>`` read, errors mapped once.

Stage: kernel (or a recorded tree, or memory) -> (this seam) -> ``JobResolver``. ``ProcFiles``
reads under an injected proc root (``HostPaths.proc``); ``MemoryProcFiles`` is the in-memory
twin for tests, where a file can equally be given content or an error.

Errors (the only ones a reader raises)::

    ProcessFileError        the file could not be read
     ├── ProcessGone        the process (or this file of it) no longer exists
     └── ProcessUnreadable  the file exists but the agent may not read it (environ of another
                            user's process without root or CAP_SYS_PTRACE)
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol


class ProcessFileError(Exception):
    """A process file could not be read."""


class ProcessGone(ProcessFileError):  # noqa: N818 (reads as a state, like the NVML errors)
    """The process exited (or its PID was never there)."""


class ProcessUnreadable(ProcessFileError):  # noqa: N818 (reads as a state, like the NVML errors)
    """The process exists but the file is closed to the agent."""


class ProcessFileReader(Protocol):
    """Reads one file of one process."""

    def read(self, pid: int, name: str, limit_bytes: int) -> bytes:
        """Returns: at most ``limit_bytes`` of ``/proc/<pid>/<name>``.

        Raises:
            ProcessGone: the process or the file does not exist.
            ProcessUnreadable: the file may not be read, or reading it failed otherwise.
        """
        ...


# Errors that mean "this process is not there (any more)": ENOENT before open(), ESRCH from
# reading a file of a process that exited after open().
_GONE = frozenset({errno.ENOENT, errno.ESRCH, errno.ENOTDIR})


class ProcFiles:
    """Reads process files under ``proc_root``."""

    def __init__(self, proc_root: Path) -> None:
        self._root = proc_root

    def read(self, pid: int, name: str, limit_bytes: int) -> bytes:
        path = self._root / str(pid) / name
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            raise _mapped(exc, path) from exc
        try:
            chunks: list[bytes] = []
            left = limit_bytes
            while left > 0 and (chunk := os.read(fd, min(left, 65536))):
                chunks.append(chunk)
                left -= len(chunk)
        except OSError as exc:
            raise _mapped(exc, path) from exc
        finally:
            os.close(fd)
        return b"".join(chunks)


class MemoryProcFiles:
    """The in-memory twin: ``files[(pid, name)]`` is the content, or the exception to raise.

    A PID with no entry at all is a process that is gone. ``files`` may be changed between
    calls to script exits and PID reuse.
    """

    def __init__(self, files: Mapping[tuple[int, str], bytes | ProcessFileError]) -> None:
        self.files: dict[tuple[int, str], bytes | ProcessFileError] = dict(files)
        self.reads: list[tuple[int, str]] = []

    def read(self, pid: int, name: str, limit_bytes: int) -> bytes:
        self.reads.append((pid, name))
        entry = self.files.get((pid, name))
        if entry is None:
            raise ProcessGone(f"/proc/{pid}/{name}: no such process")
        if isinstance(entry, ProcessFileError):
            raise entry
        return entry[:limit_bytes]


def _mapped(exc: OSError, path: Path) -> ProcessFileError:
    if isinstance(exc, PermissionError):
        return ProcessUnreadable(f"{path}: permission denied")
    if exc.errno in _GONE:
        return ProcessGone(f"{path}: {exc.strerror}")
    return ProcessUnreadable(f"{path}: {exc.strerror or exc}")
