"""The benchmark worker process: the harness alone, its progress as JSON lines on stdout.

Stage: ``job`` -> (``workers.SubprocessWorker`` starts this) -> harness -> ``stream`` lines.
Compute runs here, never in the agent or the CLI: when the run ends, is stopped, or crashes,
the process is gone and the driver frees its GPU memory and contexts, so no GPU is left busy.

Command line::

    python -m agent.bench.worker --level {quick,standard,burn} [--gpus 0,1] [--duration S]
        [--backend {auto,numpy,torch,scripted}] [--script SCENARIO.json] [--parent-pid PID]

At start it asks Linux to SIGKILL it when its parent dies (``prctl(PR_SET_PDEATHSIG)``; Linux
only, skipped elsewhere) and exits at once, status 3, if the parent named by ``--parent-pid``
is already gone. SIGTERM and SIGINT end it promptly (status 128 + the signal's number) between
two Python steps: a GPU kernel is a few milliseconds. The death signal follows the parent
*thread* that started it, so the caller must wait for the worker on that thread (``run_job``
does). Exit status: 0 the run completed (whatever its verdicts), 2 refused, other: it broke
(traceback on stderr). Anything else that writes to stdout (a library's print) is sent to
stderr, so the stream stays clean.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import TextIO

from agent.bench.backend import Device
from agent.bench.backends import CHOICES, BackendUnavailableError, load_backend
from agent.bench.harness import LEVELS, BenchError, run
from agent.bench.result import BenchResult
from agent.bench.stream import Completed, Finished, Planned, Refused, Started, encode

EXIT_REFUSED = 2
EXIT_ORPHANED = 3
PR_SET_PDEATHSIG = 1  # linux/prctl.h

_log = logging.getLogger(__name__)


def die_with_parent(parent_pid: int | None) -> bool:
    """Ask the kernel to SIGKILL this process when its parent dies (Linux only).

    Returns: False when ``parent_pid`` is given and is no longer the parent (it died before
    the request took effect), else True.
    """
    if sys.platform.startswith("linux"):
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
                _log.warning("prctl(PR_SET_PDEATHSIG) failed: errno %d", ctypes.get_errno())
        except (OSError, AttributeError) as exc:
            _log.warning("prctl unavailable (%s): the worker may outlive its parent", exc)
    return parent_pid is None or os.getppid() == parent_pid


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


class LineWriter:
    """A harness listener that writes the stream's lines to ``out``."""

    def __init__(self, out: TextIO, backend: str, note: str) -> None:
        self._out = out
        self._backend = backend
        self._note = note

    def planned(self, total: int, devices: Sequence[Device]) -> None:
        self.write(Planned(total, self._backend, self._note, tuple(devices)))

    def started(self, device: int, test: str) -> None:
        self.write(Started(device, test))

    def finished(self, result: BenchResult) -> None:
        self.write(Finished(result))

    def write(self, event: Planned | Started | Finished | Completed | Refused) -> None:
        self._out.write(encode(event) + "\n")
        self._out.flush()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m agent.bench.worker")
    p.add_argument("--level", choices=LEVELS, required=True)
    p.add_argument("--gpus", type=_indices)
    p.add_argument("--duration", type=float)
    p.add_argument("--backend", choices=CHOICES, default="auto")
    p.add_argument("--script", type=Path)
    p.add_argument("--parent-pid", type=int)
    return p


def _indices(text: str) -> list[int]:
    return [int(part) for part in text.split(",")]


def serve(argv: Sequence[str], out: TextIO) -> int:
    """Run one request and write its stream to ``out``. Returns: the exit status."""
    args = parser().parse_args(argv)
    try:
        backend, note = load_backend(args.backend, args.script)
    except BackendUnavailableError as exc:
        LineWriter(out, args.backend, "").write(Refused(str(exc)))
        return EXIT_REFUSED
    lines = LineWriter(out, backend.name, note)
    try:
        result = run(
            backend, args.level, devices=args.gpus, burn_s=args.duration, listener=lines,
            note=note,
        )  # fmt: skip
    except BenchError as exc:
        lines.write(Refused(str(exc)))
        return EXIT_REFUSED
    lines.write(Completed(result))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """The process entry point: signals, the parent's death, stdout kept for the stream."""
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING, format="%(name)s: %(message)s")
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _exit_on_signal)
    words = list(sys.argv[1:] if argv is None else argv)
    parent = parser().parse_known_args(words)[0].parent_pid
    if not die_with_parent(parent):
        return EXIT_ORPHANED
    sys.stdout.flush()
    stream = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8")
    os.dup2(2, 1)  # stray writes to fd 1, from Python or C, land on stderr
    sys.stdout = sys.stderr
    with stream:
        return serve(words, stream)


if __name__ == "__main__":
    sys.exit(main())
