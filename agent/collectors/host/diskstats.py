"""The ``diskstats`` collector: block-device I/O counters from ``/proc/diskstats``.

Names and units as node_exporter's ``node_disk_*{device}``: sector counts become bytes (the
kernel's sectors are always 512 bytes here, whatever the device's block size), millisecond
counters become seconds, ``node_disk_io_now`` is a gauge of I/Os in flight. Discard columns
(kernel >= 4.18) and flush columns (>= 5.5) are reported when the line has them;
``node_disk_discarded_sectors_total`` stays in sectors, as node_exporter has it. Partitions,
loop and RAM disks are excluded by default so that no I/O is counted twice.
"""

from __future__ import annotations

from agent.collectors.base import HostPaths, Sample
from agent.collectors.host._files import MalformedFileError, read_table
from agent.collectors.host.options import ExclusionFilter, HostOptions

SECTOR_BYTES = 512
MILLISECONDS_PER_SECOND = 1000

# Columns after "major minor name", in kernel order (Documentation/admin-guide/iostats.rst):
# the metric, then the factor and divisor that turn the column into the metric's unit.
_COLUMNS: tuple[tuple[str, int, int], ...] = (
    ("node_disk_reads_completed_total", 1, 1),
    ("node_disk_reads_merged_total", 1, 1),
    ("node_disk_read_bytes_total", SECTOR_BYTES, 1),
    ("node_disk_read_time_seconds_total", 1, MILLISECONDS_PER_SECOND),
    ("node_disk_writes_completed_total", 1, 1),
    ("node_disk_writes_merged_total", 1, 1),
    ("node_disk_written_bytes_total", SECTOR_BYTES, 1),
    ("node_disk_write_time_seconds_total", 1, MILLISECONDS_PER_SECOND),
    ("node_disk_io_now", 1, 1),
    ("node_disk_io_time_seconds_total", 1, MILLISECONDS_PER_SECOND),
    ("node_disk_io_time_weighted_seconds_total", 1, MILLISECONDS_PER_SECOND),
    ("node_disk_discards_completed_total", 1, 1),
    ("node_disk_discards_merged_total", 1, 1),
    ("node_disk_discarded_sectors_total", 1, 1),
    ("node_disk_discard_time_seconds_total", 1, MILLISECONDS_PER_SECOND),
    ("node_disk_flush_requests_total", 1, 1),
    ("node_disk_flush_requests_time_seconds_total", 1, MILLISECONDS_PER_SECOND),
)
_MIN_FIELDS = 14  # major, minor, name and the 11 columns every kernel since 2.6 has


class DiskstatsCollector:
    """Reads ``/proc/diskstats`` for every device the exclusion pattern lets through."""

    name = "diskstats"

    def __init__(self, paths: HostPaths, options: HostOptions) -> None:
        self._path = paths.proc / "diskstats"
        self._exclude = ExclusionFilter(options.disk_devices_exclude)

    def collect(self, now: float) -> list[Sample]:
        """Returns: the counters and ``io_now`` gauge of each device.

        Raises:
            MalformedFileError: a line has fewer than 14 fields or a non-integer column.
        """
        samples: list[Sample] = []
        for line in read_table(self._path).splitlines():
            fields = line.split()
            if not fields:
                continue
            if len(fields) < _MIN_FIELDS:
                raise MalformedFileError(self._path, f"bad line {line[:80]!r}")
            device = fields[2]
            if self._exclude.excludes(device):
                continue
            try:
                values = [int(field) for field in fields[3 : 3 + len(_COLUMNS)]]
            except ValueError:
                raise MalformedFileError(self._path, f"bad line {line[:80]!r}") from None
            for (name, multiply, divide), value in zip(_COLUMNS, values, strict=False):
                samples.append(Sample(name, {"device": device}, value * multiply / divide))
        return samples
