"""Helpers for the host collector tests: the recorded trees, scratch trees, sample lookups."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from pathlib import Path

from agent.collectors.base import HostPaths, Sample

DATA = Path(__file__).resolve().parents[3] / "data" / "host"
RECORDED = DATA / "recorded-vm"
GPU_SERVER = DATA / "gpu-server"


def tree_paths(root: Path, rootfs: Path | str = "/") -> HostPaths:
    """Returns: HostPaths pointing at a recorded tree's ``proc`` and ``sys``."""
    return HostPaths(proc=root / "proc", sys=root / "sys", rootfs=Path(rootfs))


def write_tree(root: Path, files: Mapping[str, str]) -> HostPaths:
    """Writes ``{relative path: text}`` under ``root``; returns HostPaths for it."""
    for relative, text in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return tree_paths(root)


def value(samples: Iterable[Sample], name: str, **labels: str) -> float:
    """Returns: the value of the one sample with this name and exactly these labels."""
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
    return found[0]


def label_values(samples: Iterable[Sample], name: str, label: str) -> set[str]:
    """Returns: the values one label takes across the samples of ``name``."""
    return {s.labels[label] for s in samples if s.name == name}


def names(samples: Iterable[Sample]) -> set[str]:
    return {s.name for s in samples}


def fake_statvfs_result(
    frsize: int = 4096,
    blocks: int = 1000,
    bfree: int = 600,
    bavail: int = 500,
    files: int = 100,
    ffree: int = 90,
    flag: int = 0,
    bsize: int | None = None,
) -> os.statvfs_result:
    """Returns: an ``os.statvfs_result`` with the given fields (bsize defaults to frsize)."""
    return os.statvfs_result(
        (bsize or frsize, frsize, blocks, bfree, bavail, files, ffree, ffree, flag, 255)
    )
