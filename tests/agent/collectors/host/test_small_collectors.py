"""The time, uname and filefd collectors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agent.collectors.host._files import MalformedFileError
from agent.collectors.host.clock import TimeCollector
from agent.collectors.host.filefd import FilefdCollector
from agent.collectors.host.uname import UnameCollector
from tests.catalog_check import assert_conforms

from ._helpers import GPU_SERVER, RECORDED, tree_paths, value, write_tree


def test_time_is_the_ticks_timestamp() -> None:
    samples = TimeCollector().collect(1_795_403_457.625)

    assert value(samples, "node_time_seconds") == 1_795_403_457.625
    assert_conforms(samples, source="time")


def test_uname_from_recorded_proc_sys_kernel() -> None:
    def no_syscall() -> os.uname_result:
        raise AssertionError("every field is in the recorded tree")

    samples = UnameCollector(tree_paths(GPU_SERVER), uname=no_syscall).collect(0.0)

    assert samples[0].labels == {
        "sysname": "Linux",
        "release": "5.15.0-105-generic",
        "version": "#115-Ubuntu SMP Mon Apr 15 09:52:04 UTC 2024",
        "machine": "x86_64",
        "nodename": "gpu-node-017",
        "domainname": "(none)",
    }
    assert samples[0].value == 1
    assert_conforms(samples, source="uname")


def test_uname_falls_back_to_the_syscall_for_missing_files(scratch: Path) -> None:
    paths = write_tree(scratch, {"proc/sys/kernel/hostname": "n1\n"})
    fake = os.uname_result(("Linux", "uts-name", "6.1.0", "#1 SMP", "aarch64"))

    samples = UnameCollector(paths, uname=lambda: fake).collect(0.0)

    assert samples[0].labels == {
        "sysname": "Linux",
        "release": "6.1.0",
        "version": "#1 SMP",
        "machine": "aarch64",
        "nodename": "n1",
        "domainname": "",
    }


def test_uname_rereads_host_and_domain_names_but_not_the_kernel(scratch: Path) -> None:
    files = {
        "proc/sys/kernel/ostype": "Linux\n",
        "proc/sys/kernel/osrelease": "6.8.0\n",
        "proc/sys/kernel/version": "#1\n",
        "proc/sys/kernel/arch": "x86_64\n",
        "proc/sys/kernel/hostname": "old\n",
        "proc/sys/kernel/domainname": "(none)\n",
    }
    collector = UnameCollector(write_tree(scratch, files))
    collector.collect(0.0)

    write_tree(scratch, {"proc/sys/kernel/hostname": "new\n", "proc/sys/kernel/osrelease": "9\n"})
    labels = collector.collect(1.0)[0].labels

    assert labels["nodename"] == "new"
    assert labels["release"] == "6.8.0"  # a running kernel's release cannot change


def test_filefd_recorded_and_gpu_server() -> None:
    recorded = FilefdCollector(tree_paths(RECORDED)).collect(0.0)
    server = FilefdCollector(tree_paths(GPU_SERVER)).collect(0.0)

    assert value(recorded, "node_filefd_allocated") == 173
    assert value(recorded, "node_filefd_maximum") == 2466174
    assert value(server, "node_filefd_maximum") == float(2**63 - 1)
    assert_conforms(server, source="filefd")


@pytest.mark.parametrize("text", ["12 0\n", "12 0 many\n"])
def test_malformed_file_nr_raises(scratch: Path, text: str) -> None:
    paths = write_tree(scratch, {"proc/sys/fs/file-nr": text})

    with pytest.raises(MalformedFileError, match="file-nr"):
        FilefdCollector(paths).collect(0.0)
