"""``dcmon bench``: run the benchmark levels on this node and print the result.

``--json`` prints the result tree on stdout (with each figure's verdict against its SKU and the
GPUs' health-check findings, ``verdicts.py``); otherwise a table. Progress goes to stderr, one
line per test. numpy and torch are imported only when their backend is chosen; on GPUs an NVML
session takes the health snapshots before and after, and a GPU with compute processes is
refused unless ``--force``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys

from agent.bench.backend import Backend
from agent.bench.harness import LEVELS, BenchError, run
from agent.bench.result import BenchResult, RunResult
from agent.bench.verdicts import BusyGpuError, Judged, checked_run
from agent.collectors.gpu.backend import NvmlBackend, NvmlError
from agent.collectors.gpu.nvml_backend import PynvmlBackend
from agent.wire.skus import default_table

EXIT_FAILED = 1
EXIT_USAGE = 2
CPU_NOTE = "CPU, not a GPU: no CUDA device through torch; these figures measure the host's CPU"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"dcmon bench: {message}\n")


def parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="dcmon bench",
        description="Measure this node's accelerators: matrix-multiply throughput, memory and "
        "host<->device bandwidth, and a correctness burn (products compared with the first).",
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


class BackendUnavailableError(Exception):
    """The chosen backend's library is missing or has no usable device."""


def load_backend(choice: str) -> tuple[Backend, str]:
    """Returns: the backend for ``choice`` and a note for the result ("" when none)."""
    if choice in ("auto", "torch"):
        if importlib.util.find_spec("torch") is not None:
            os.environ.setdefault("CUDA_DEVICE_ORDER", "PCI_BUS_ID")  # CUDA numbers GPUs as NVML
            from agent.bench.torch_backend import TorchBackend  # noqa: PLC0415 (lazy: torch)

            torch_backend = TorchBackend()
            if torch_backend.devices():
                return torch_backend, ""
            if choice == "torch":
                raise BackendUnavailableError("torch is installed but sees no CUDA device")
        elif choice == "torch":
            raise BackendUnavailableError(
                "torch is not installed (install a CUDA build of PyTorch)"
            )
    try:
        from agent.bench.numpy_backend import NumpyBackend  # noqa: PLC0415 (lazy: numpy)
    except ModuleNotFoundError as exc:
        if exc.name != "numpy":
            raise
        raise BackendUnavailableError(
            "the numpy backend needs numpy: pip install 'dcmon[gpu-bench]'"
        ) from None
    return NumpyBackend(), CPU_NOTE if choice == "auto" else "CPU, not a GPU (numpy backend)"


def main(argv: list[str]) -> int:
    args = parser().parse_args(argv)
    try:
        backend, note = load_backend(args.backend)
    except BackendUnavailableError as exc:
        print(f"dcmon bench: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if note:
        print(f"dcmon bench: {note}", file=sys.stderr)

    def bench() -> RunResult:
        return run(
            backend, args.level, devices=args.gpus, burn_s=args.duration, progress=_progress,
            note=note,
        )  # fmt: skip

    nvml = _nvml() if any(d.kind == "cuda" for d in backend.devices()) else None
    devices = args.gpus if args.gpus is not None else [d.index for d in backend.devices()]
    try:
        judged = checked_run(bench, nvml, devices, default_table(), force=args.force)
    except (BenchError, BusyGpuError) as exc:
        print(f"dcmon bench: {exc}", file=sys.stderr)
        return EXIT_USAGE
    finally:
        if nvml is not None:
            nvml.shutdown()
    print(json.dumps(judged.to_dict(), indent=2, allow_nan=False) if args.json else table(judged))
    return 0 if judged.passed else EXIT_FAILED


def _nvml() -> NvmlBackend | None:
    """Returns: an NVML session for the pre/post checks, None (with a line) when none starts."""
    backend = PynvmlBackend()
    try:
        backend.init()
    except NvmlError as exc:
        print(f"dcmon bench: no NVML ({exc}): health checks before and after are skipped",
              file=sys.stderr)  # fmt: skip
        return None
    return backend


def _progress(result: BenchResult) -> None:
    print(f"dcmon bench: device {result.device} {result.test}: {_figure(result)} "
          f"({result.duration_s:.2f} s)", file=sys.stderr, flush=True)  # fmt: skip


def _figure(result: BenchResult) -> str:
    if result.value is None:
        return f"{result.status} ({result.detail})" if result.detail else result.status
    text = f"{result.value:.4g} {result.unit}"
    return text if result.status == "ok" else f"{result.status}: {text}"


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
