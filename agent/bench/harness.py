"""The benchmark harness: a level becomes a plan of tests, run per device into a ``RunResult``.

Pure over its seams: the backend measures, ``clock`` (monotonic seconds) times each test and
enforces the level's total budget, ``wall`` stamps the run, ``progress`` hears one line per
test. A test that raises is recorded as an error result and the run goes on.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from agent.bench.backend import (
    DTYPES,
    Backend,
    Device,
    DeviceKind,
    NotApplicable,
    Unsupported,
    test_name,
)
from agent.bench.result import BenchResult, DeviceReport, Param, RunResult

LEVELS = ("quick", "standard", "burn")
DEFAULT_BURN_SECONDS = 60.0
TestKind = Literal["matmul", "memory_copy", "host_to_device", "device_to_host", "burn"]
_MIB = 1 << 20
_UNITS: dict[TestKind, str] = {
    "matmul": "TFLOP/s",
    "memory_copy": "GB/s",
    "host_to_device": "GB/s",
    "device_to_host": "GB/s",
    "burn": "miscompares",
}


class BenchError(Exception):
    """A request the harness cannot run (unknown level, device not present)."""


@dataclass(frozen=True)
class Case:
    """One test to run on each device; ``size`` is a matrix side or a byte count."""

    kind: TestKind
    size: int
    budget_s: float  # the timed loop's budget; for the burn its duration
    dtype: str = ""
    warmup: int = 2
    iterations: int = 10

    @property
    def name(self) -> str:
        return test_name(self.kind, self.dtype)

    def params(self) -> dict[str, Param]:
        params: dict[str, Param] = {"size": self.size}
        if self.dtype:
            params["dtype"] = self.dtype
        if self.kind == "burn":
            params["duration_s"] = self.budget_s
        else:
            params |= {"warmup": self.warmup, "iterations": self.iterations}
            params["budget_s"] = self.budget_s
        return params


@dataclass(frozen=True)
class Plan:
    level: str
    cases: tuple[Case, ...]
    total_budget_s: float | None  # for the whole run, all devices; None: the cases bound it


def plan(level: str, kind: DeviceKind, burn_s: float | None = None) -> Plan:
    """Returns: the tests of ``level`` sized for ``kind`` (the CPU gets small sizes).

    quick is bounded to 60 s in total on GPUs (8 devices at ~7 s of budgets each); on the CPU
    it finishes in a few seconds. ``burn_s`` overrides the burn's duration (the burn level's
    default is 60 s).
    """
    if level not in LEVELS:
        raise BenchError(f"unknown level {level!r} (choose from {', '.join(LEVELS)})")
    if burn_s is not None and not burn_s > 0:
        raise BenchError("the burn duration must be positive")
    gpu = kind == "cuda"
    if level == "quick":
        side, copy, link = (4096, 256 * _MIB, 256 * _MIB) if gpu else (192, 8 * _MIB, 8 * _MIB)
        budget = 1.0 if gpu else 0.2
        cases = [
            *(Case("matmul", side, budget, d) for d in ("float32", "bfloat16")),
            Case("memory_copy", copy, budget),
            Case("host_to_device", link, budget),
            Case("device_to_host", link, budget),
            Case("burn", side, burn_s or (2.0 if gpu else 0.3), "float32"),
        ]
        return Plan(level, tuple(cases), 60.0)
    if level == "standard":
        side, copy, link = (8192, 2048 * _MIB, 1024 * _MIB) if gpu else (1024, 64 * _MIB, 64 * _MIB)
        budget = 10.0 if gpu else 2.0
        cases = [
            *(Case("matmul", side, budget, d, 3, 20) for d in DTYPES),
            Case("memory_copy", copy, budget, "", 3, 20),
            Case("host_to_device", link, budget, "", 3, 10),
            Case("device_to_host", link, budget, "", 3, 10),
            Case("burn", side, burn_s or (30.0 if gpu else 3.0), "float32"),
        ]
        return Plan(level, tuple(cases), None)
    side = 8192 if gpu else 512
    cases = [
        Case("matmul", side, 10.0 if gpu else 2.0, "float32", 3, 20),
        Case("burn", side, burn_s or DEFAULT_BURN_SECONDS, "float32"),
    ]
    return Plan(level, tuple(cases), None)


def select_devices(devices: Sequence[Device], wanted: Sequence[int] | None) -> list[Device]:
    """Returns: the devices with the ``wanted`` indices (all when None), in that order."""
    if wanted is None:
        return list(devices)
    by_index = {d.index: d for d in devices}
    missing = [i for i in wanted if i not in by_index]
    if missing:
        have = ", ".join(str(i) for i in by_index) or "none"
        raise BenchError(f"no device {missing[0]} (devices: {have})")
    return [by_index[i] for i in dict.fromkeys(wanted)]


def run(
    backend: Backend,
    level: str,
    *,
    devices: Sequence[int] | None = None,
    burn_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    progress: Callable[[BenchResult], None] = lambda result: None,
    note: str = "",
) -> RunResult:
    """Run ``level`` on the selected devices of ``backend``, one device after another."""
    chosen = select_devices(backend.devices(), devices)
    if not chosen:
        raise BenchError(f"the {backend.name} backend found no device")
    started_at, start = wall(), clock()
    reports = []
    for device in chosen:
        steps = plan(level, device.kind, burn_s)
        results = []
        for case in steps.cases:
            remaining = None
            if steps.total_budget_s is not None:
                remaining = steps.total_budget_s - (clock() - start)
            result = _run_case(backend, device, case, remaining, clock)
            results.append(result)
            progress(result)
        reports.append(DeviceReport(device, tuple(results)))
    return RunResult(level, backend.name, started_at, clock() - start, tuple(reports), note)


def _run_case(
    backend: Backend,
    device: Device,
    case: Case,
    remaining_s: float | None,
    clock: Callable[[], float],
) -> BenchResult:
    unit = _UNITS[case.kind]
    params = case.params()
    if remaining_s is not None and remaining_s <= 0:
        detail = "the level's time budget was spent"
        return BenchResult(case.name, device.index, "skipped", None, unit, params, 0.0, detail)
    budget = case.budget_s if remaining_s is None else min(case.budget_s, remaining_s)
    began = clock()
    try:
        if case.kind == "burn":
            burn = backend.burn(device.index, case.dtype, case.size, budget)
            extra = {
                "iterations": float(burn.iterations),
                "seconds": burn.seconds,
                "max_abs_error": burn.max_abs_error,
                "tolerance": burn.tolerance,
                "tflops": burn.tflops,
            }
            failed = burn.miscompares > 0 or burn.iterations < 1
            detail = "" if burn.iterations >= 1 else "no product was compared"
            if burn.miscompares:
                detail = f"{burn.miscompares} elements differed from the first product"
            return BenchResult(
                case.name, device.index, "fail" if failed else "ok", float(burn.miscompares),
                unit, params, clock() - began, detail, extra,
            )  # fmt: skip
        measure = {
            "memory_copy": backend.memory_copy,
            "host_to_device": backend.host_to_device,
            "device_to_host": backend.device_to_host,
        }
        if case.kind == "matmul":
            got = backend.matmul(
                device.index, case.dtype, case.size, case.warmup, case.iterations, budget
            )
        else:
            got = measure[case.kind](device.index, case.size, case.warmup, case.iterations, budget)
    except Unsupported as exc:
        return _verdict(case, device, "unsupported", params, clock() - began, exc)
    except NotApplicable as exc:
        return _verdict(case, device, "not_applicable", params, clock() - began, exc)
    except Exception as exc:  # noqa: BLE001 (any failure of one test is that test's result)
        return _verdict(case, device, "error", params, clock() - began, exc)
    extra = {"iterations": float(got.iterations), "seconds": got.seconds}
    return BenchResult(
        case.name, device.index, "ok", got.value, unit, params, clock() - began, "", extra
    )


def _verdict(
    case: Case,
    device: Device,
    status: Literal["unsupported", "not_applicable", "error"],
    params: dict[str, Param],
    duration_s: float,
    exc: Exception,
) -> BenchResult:
    detail = str(exc) or type(exc).__name__
    if status == "error":
        detail = f"{type(exc).__name__}: {detail}"
    unit = _UNITS[case.kind]
    return BenchResult(case.name, device.index, status, None, unit, params, duration_s, detail)
