"""Reading kernel interface files for the host collectors.

Two kinds of file: a procfs table a collector cannot work without (``/proc/stat``), read with
``read_table``, whose absence is an error; and optional interfaces (PSI, hwmon, one attribute
of one network interface), read with ``read_optional`` or ``read_attribute``, whose absence
yields ``None`` so the collector leaves the reading out. A file that exists but does not parse
raises ``MalformedFileError`` so the daemon marks the collector failed for the tick.
"""

from __future__ import annotations

import os
from pathlib import Path

# Largest sysfs attribute read; sysfs never returns more than a page from one attribute.
_ATTRIBUTE_BYTES = 4096
# Read size for procfs tables; /proc/stat of a large node is tens of KiB.
_TABLE_CHUNK_BYTES = 65536


class MalformedFileError(ValueError):
    """A kernel file exists but its content does not parse."""

    def __init__(self, path: Path | str, detail: str) -> None:
        super().__init__(f"{path}: {detail}")
        self.path = str(path)


def read_table(path: Path) -> str:
    """Returns: the text of a procfs file the collector needs.

    Raises:
        OSError: the file cannot be read (``FileNotFoundError`` means ``/proc`` is not where
            ``HostPaths.proc`` says).
    """
    # os.read straight into bytes: a third of the cost of a buffered text file per read,
    # which adds up over a tick's twenty-odd small procfs files.
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, _TABLE_CHUNK_BYTES):
            chunks.append(chunk)
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", errors="replace")


def read_optional(path: Path) -> str | None:
    """Returns: the file's text, or None when it or its folder does not exist."""
    try:
        return read_table(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def read_attribute(path: Path | str, dir_fd: int | None = None) -> str | None:
    """Returns: a sysfs attribute's stripped text, or None when it cannot be read.

    Drivers answer EINVAL (speed of a link that is down), EIO or ENODATA (a sensor that is not
    wired), or EAGAIN; each means "no reading", so every ``OSError`` maps to None. One
    ``read(2)`` call, never a retry loop, so a broken driver cannot stall the tick. With
    ``dir_fd``, ``path`` is relative to that open folder (one ``openat``).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        data = os.read(fd, _ATTRIBUTE_BYTES)
    except OSError:
        return None
    finally:
        os.close(fd)
    return data.decode("utf-8", errors="replace").strip()


def parse_int(path: Path | str, text: str) -> int:
    """Returns: ``text`` as an integer.

    Raises:
        MalformedFileError: ``text`` is not an integer.
    """
    try:
        return int(text)
    except ValueError:
        raise MalformedFileError(path, f"expected an integer, found {text[:40]!r}") from None
