"""``dcmon bench``: run the benchmark job on this node and print the result.

The job (``job.run_job``) runs the harness in a worker process, wrapped in the NVML health
checks, and judges the figures against the GPU's SKU. ``--json`` prints the judged tree on
stdout (``agent.wire.bench.BenchRun``); otherwise a table. Progress goes to stderr: a progress
bar on a terminal, else one line per test (``display.py``). Ctrl-C cancels: the worker is
stopped and the command exits 130. Exit status: 0 passed, 1 failed, 2 usage error or refused
(a GPU runs compute processes and ``--force`` is off, no such device, no backend), 130
cancelled.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from types import FrameType

from agent.bench.display import choose
from agent.bench.harness import LEVELS
from agent.bench.job import run_job
from agent.bench.jobspec import JobOutcome, JobSpec
from agent.bench.verdicts import Judged

EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_CANCELLED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"dcmon bench: {message}\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="dcmon bench",
        description="Measure this node's accelerators: matrix-multiply throughput, memory, "
        "host<->device and peer-to-peer bandwidth, and a correctness burn (products compared "
        "with the first), with NVML health checks before, during and after.",
    )
    p.add_argument("--level", choices=LEVELS, default="quick", help="default: quick")
    p.add_argument("--backend", choices=("auto", "numpy", "torch"), default="auto",
                   help="auto: torch on CUDA when available, else numpy on the CPU")  # fmt: skip
    p.add_argument("--gpus", type=_indices, help="device indices, e.g. 0,1 (default: all)")
    p.add_argument("--duration", type=_seconds, help="the burn's duration in seconds")
    p.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    p.add_argument("--force", action="store_true",
                   help="run even on GPUs that have compute processes on them")  # fmt: skip
    return p


def _indices(text: str) -> list[int]:
    try:
        indices = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected indices like 0,1, got {text!r}") from None
    if any(i < 0 for i in indices):
        raise argparse.ArgumentTypeError(f"device indices are not negative, got {text!r}")
    return indices


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"the duration must be positive, got {text!r}")
    return value


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    spec = JobSpec(args.level, args.gpus, args.duration, args.force, args.backend)
    cancel = threading.Event()
    outcome = _run(spec, cancel)
    if outcome.state == "refused":
        print(f"dcmon bench: {outcome.message}", file=sys.stderr)
        return EXIT_USAGE
    if outcome.judged is not None:
        tree = outcome.result
        print(json.dumps(tree, indent=2, allow_nan=False) if args.json else table(outcome.judged))
    if outcome.state in ("cancelled", "failed") and (
        outcome.judged is None or not outcome.judged.run.complete
    ):
        print(f"dcmon bench: {outcome.message}", file=sys.stderr)
    if outcome.state == "cancelled":
        return EXIT_CANCELLED
    return 0 if outcome.state == "done" else EXIT_FAILED


def _run(spec: JobSpec, cancel: threading.Event) -> JobOutcome:
    """Run the job with Ctrl-C (SIGINT) as its cancel, where signals can be caught."""

    def interrupted(signum: int, frame: FrameType | None) -> None:
        cancel.set()

    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, interrupted) if main_thread else None
    try:
        with choose(sys.stderr) as display:
            return run_job(spec, on_event=display.show, cancel=cancel)
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)


def table(judged: Judged) -> str:
    """Returns: the result as a plain-text table, one row per test and device, with each
    figure's verdict against its SKU and the health checks' findings."""
    result = judged.run
    verdicts = {(f.device, f.test): f.verdict for f in judged.figures}
    lines = [f"dcmon bench: level {result.level}, backend {result.backend}, "
             f"{result.duration_s:.1f} s, {'PASSED' if judged.passed else 'FAILED'}"]  # fmt: skip
    if result.note:
        lines.append(result.note)
    lines.append(f"{'device':<8}{'test':<18}{'status':<16}{'figure':>16}  {'unit':<12}verdict")
    for report in result.devices:
        lines.append(f"{report.device.index:<8}{report.device.name} [{report.device.kind}]")
        for r in report.results:
            figure = "-" if r.value is None else f"{r.value:,.4g}"
            verdict = verdicts.get((report.device.index, r.test))
            judged_as: str = "" if verdict is None else verdict.status
            if verdict is not None and verdict.ratio is not None:
                judged_as += f" ({verdict.ratio:.2f} x {verdict.basis})"
            lines.append(f"{'':<8}{r.test:<18}{r.status:<16}{figure:>16}  {r.unit:<12}{judged_as}")
            if r.detail and r.status != "ok":
                lines.append(f"{'':<26}{r.detail}")
        for finding in judged.findings.get(report.device.index, ()):
            lines.append(f"{'':<8}check {finding.check}: {finding.level}: {finding.message}")
    return "\n".join(lines)
