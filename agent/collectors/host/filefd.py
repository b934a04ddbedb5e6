"""The ``filefd`` collector: open file handles from ``/proc/sys/fs/file-nr``.

The file holds three numbers: handles allocated, allocated but unused (always 0 since Linux
2.6), and the system-wide maximum (``fs.file-max``). Output, as node_exporter's:
``node_filefd_allocated`` and ``node_filefd_maximum`` (counts); their ratio is the
file-descriptor exhaustion signal.
"""

from __future__ import annotations

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host._files import MalformedFileError, parse_int, read_table


class FilefdCollector:
    """Reads the allocated and maximum file-handle counts."""

    name = "filefd"

    def __init__(self, paths: HostPaths) -> None:
        self._path = paths.proc / "sys" / "fs" / "file-nr"

    def collect(self, now: float) -> list[Sample]:
        """Returns: ``node_filefd_allocated`` and ``node_filefd_maximum``.

        Raises:
            MalformedFileError: the file does not hold three integers.
        """
        fields = read_table(self._path).split()
        if len(fields) != 3:
            raise MalformedFileError(self._path, f"expected three numbers, found {len(fields)}")
        return [
            Sample("node_filefd_allocated", {}, float(parse_int(self._path, fields[0]))),
            Sample("node_filefd_maximum", {}, float(parse_int(self._path, fields[2]))),
        ]
