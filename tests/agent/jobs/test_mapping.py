"""The HPC job-mapping directory: file names, MIG instances, garbage, and re-reading on change."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from agent.jobs.mapping import JobMappingDir


def _touch_later(path: Path, seconds: int = 10) -> None:
    """Move a path's mtime forward, as a later write would (mtime granularity may be coarse)."""
    info = path.stat()
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns + seconds * 1_000_000_000))


def test_reads_gpu_and_mig_files(tmp_path: Path) -> None:
    (tmp_path / "0").write_text("1001\n")
    (tmp_path / "1").write_text("1002\n1003\n\n")
    (tmp_path / "2.0").write_text("2001\n")
    (tmp_path / "2.1").write_text("2002\n2001\n")
    assert JobMappingDir(tmp_path).read() == {
        0: ("1001",),
        1: ("1002", "1003"),
        2: ("2001", "2002"),
    }


def test_garbage_is_skipped_and_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "0").write_bytes(b"  42  \nnot a job id\n\xff\xfe\x00\n" + b"9" * 300 + b"\n43\n")
    (tmp_path / "README").write_text("1\n")
    (tmp_path / "64").write_text("5\n")  # beyond the GPUs a node may have
    (tmp_path / "1.x").write_text("5\n")
    (tmp_path / "3").write_text("")
    (tmp_path / "4").mkdir()  # a folder where a file should be
    mapping = JobMappingDir(tmp_path)
    with caplog.at_level(logging.WARNING, logger="agent.jobs.mapping"):
        assert mapping.read() == {0: ("42", "43")}
        _touch_later(tmp_path)
        assert mapping.read() == {0: ("42", "43")}
    messages = [record.getMessage() for record in caplog.records]
    assert sum("README" in message for message in messages) == 1
    assert sum("'64'" in message for message in messages) == 1
    assert sum("not a job id" in message for message in messages) == 1


def test_oversized_file_is_skipped(tmp_path: Path) -> None:
    (tmp_path / "0").write_text("1\n" * 40_000)
    (tmp_path / "1").write_text("7\n")
    assert JobMappingDir(tmp_path).read() == {1: ("7",)}


def test_missing_directory_is_an_empty_mapping_until_it_appears(tmp_path: Path) -> None:
    folder = tmp_path / "mapping"
    mapping = JobMappingDir(folder)
    assert mapping.read() == {}
    folder.mkdir()
    (folder / "0").write_text("12\n")
    assert mapping.read() == {0: ("12",)}


def test_rereads_only_what_changed(tmp_path: Path) -> None:
    (tmp_path / "0").write_text("1\n")
    (tmp_path / "1").write_text("2\n")
    mapping = JobMappingDir(tmp_path)
    assert mapping.read() == {0: ("1",), 1: ("2",)}
    assert mapping.reads == 2
    assert mapping.read() == {0: ("1",), 1: ("2",)}
    assert mapping.reads == 2  # nothing changed, nothing parsed

    # The prolog rewrites a file in place: only that one is parsed again.
    (tmp_path / "1").write_text("3\n")
    _touch_later(tmp_path / "1")
    assert mapping.read() == {0: ("1",), 1: ("3",)}
    assert mapping.reads == 3

    # The epilog removes a file; a new one appears.
    (tmp_path / "0").unlink()
    (tmp_path / "5").write_text("9\n")
    _touch_later(tmp_path)
    assert mapping.read() == {1: ("3",), 5: ("9",)}
    assert mapping.reads == 4

    # An emptied file frees the GPU.
    (tmp_path / "5").write_text("")
    _touch_later(tmp_path / "5", 20)
    assert mapping.read() == {1: ("3",)}


def test_file_removed_between_listing_and_reading(tmp_path: Path) -> None:
    (tmp_path / "0").write_text("1\n")
    (tmp_path / "1").write_text("2\n")
    mapping = JobMappingDir(tmp_path)
    mapping.read()
    # Removed without the directory's mtime moving (as seen within one timestamp tick).
    before = tmp_path.stat()
    (tmp_path / "1").unlink()
    os.utime(tmp_path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert mapping.read() == {0: ("1",)}
