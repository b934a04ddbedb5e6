"""The diskstats collector: units, column sets of old and new kernels, device exclusion."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent.collectors.host._files import MalformedFileError
from agent.collectors.host.diskstats import DiskstatsCollector
from agent.collectors.host.options import HostOptions
from agent.wire.catalog import default_catalog
from tests.catalog_check import assert_conforms

from ._helpers import GPU_SERVER, RECORDED, label_values, names, tree_paths, value, write_tree


def test_recorded_vm_excludes_loop_and_zram() -> None:
    samples = DiskstatsCollector(tree_paths(RECORDED), HostOptions()).collect(0.0)

    assert label_values(samples, "node_disk_reads_completed_total", "device") == {"vda"}
    # vda 39011 8229 2023834 11901 4992 16215 1484672 3997 0 5360 16987 3987 66 65936 674 501 413
    assert value(samples, "node_disk_read_bytes_total", device="vda") == 2023834 * 512
    assert value(samples, "node_disk_written_bytes_total", device="vda") == 1484672 * 512
    assert value(samples, "node_disk_io_time_weighted_seconds_total", device="vda") == 16.987
    assert value(samples, "node_disk_flush_requests_time_seconds_total", device="vda") == 0.413
    assert len(samples) == 17
    assert_conforms(samples, source="diskstats")


def test_gpu_server_partitions_are_excluded_and_every_column_converted() -> None:
    samples = DiskstatsCollector(tree_paths(GPU_SERVER), HostOptions()).collect(0.0)

    assert label_values(samples, "node_disk_io_now", "device") == {
        "nvme0n1",
        "nvme1n1",
        "md0",
        "dm-0",
        "sda",
    }
    expected = {
        "node_disk_reads_completed_total": 1234567,
        "node_disk_reads_merged_total": 2345,
        "node_disk_read_bytes_total": 987654321 * 512,
        "node_disk_read_time_seconds_total": 456.789,
        "node_disk_writes_completed_total": 7654321,
        "node_disk_writes_merged_total": 98765,
        "node_disk_written_bytes_total": 1234567890 * 512,
        "node_disk_write_time_seconds_total": 2345.678,
        "node_disk_io_now": 3,
        "node_disk_io_time_seconds_total": 3456.789,
        "node_disk_io_time_weighted_seconds_total": 2802.467,
        "node_disk_discards_completed_total": 111,
        "node_disk_discards_merged_total": 0,
        "node_disk_discarded_sectors_total": 2222,  # stays in sectors, as node_exporter has it
        "node_disk_discard_time_seconds_total": 0.033,
        "node_disk_flush_requests_total": 444,
        "node_disk_flush_requests_time_seconds_total": 0.055,
    }
    for name, number in expected.items():
        assert value(samples, name, device="nvme0n1") == number, name
    assert set(expected) == {spec.name for spec in default_catalog().from_source("diskstats")}
    assert_conforms(samples, source="diskstats")


def test_old_kernel_line_has_no_discard_or_flush_metrics() -> None:
    samples = DiskstatsCollector(tree_paths(GPU_SERVER), HostOptions()).collect(0.0)

    sda = [s for s in samples if s.labels == {"device": "sda"}]
    assert len(sda) == 11
    assert "node_disk_discards_completed_total" not in names(sda)
    assert value(samples, "node_disk_io_time_seconds_total", device="sda") == 2.222


def test_empty_exclusion_reports_partitions_too() -> None:
    samples = DiskstatsCollector(
        tree_paths(GPU_SERVER), HostOptions(disk_devices_exclude="")
    ).collect(0.0)

    devices = label_values(samples, "node_disk_io_now", "device")
    assert {"nvme0n1p1", "nvme0n1p2", "nvme1n1p1", "sda1", "loop0", "zram0"} <= devices


@pytest.mark.parametrize(
    "line",
    ["   8 0 sda 1 2 3 4 5 6 7\n", "   8 0 sda 1 2 3 4 5 6 7 8 9 x 11 12 13 14\n"],
    ids=["too-short", "non-integer"],
)
def test_malformed_diskstats_raises(scratch: Path, line: str) -> None:
    paths = write_tree(scratch, {"proc/diskstats": line})

    with pytest.raises(MalformedFileError, match="diskstats"):
        DiskstatsCollector(paths, HostOptions()).collect(0.0)
