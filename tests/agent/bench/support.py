"""Test support for the benchmark job: scenario files for real worker processes, process
checks, and a scripted XID source."""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path
from typing import Any

from agent.events.model import XidObservation

H100 = "NVIDIA H100 80GB HBM3"


def scenario(tmp_path: Path, gpus: int = 2, **script: Any) -> Path:
    """Returns: a scenario file for the worker's scripted backend: ``gpus`` H100s."""
    devices = [{"index": i, "name": H100} for i in range(gpus)]
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps({"devices": devices, **script}), encoding="utf-8")
    return path


def alive(pid: int) -> bool:
    """Returns: whether process ``pid`` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii")
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def wait_gone(pid: int, timeout_s: float = 10.0) -> bool:
    """Returns: whether ``pid`` is gone (or a zombie) within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.02)
    return False


def children(pid: int) -> list[int]:
    """Returns: the processes whose parent is ``pid`` (read from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def kill_quietly(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)


class ScriptedXids:
    """An XID source whose observations the test queues (``pending``); counts its polls."""

    name = "scripted"

    def __init__(self) -> None:
        self.pending: list[XidObservation] = []
        self.polls = 0
        self.closed = False

    def poll(self, now: float) -> list[XidObservation]:
        self.polls += 1
        out, self.pending = self.pending, []
        return out

    def close(self) -> None:
        self.closed = True
