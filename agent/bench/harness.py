"""The benchmark harness: a level becomes a plan of tests, run per device into a ``RunResult``.

Pure over its seams: the backend measures, ``clock`` (monotonic seconds) times each test and
enforces the level's total budget, ``wall`` stamps the run, a ``Listener`` hears the plan's
size, each test's start and each result. A test that raises is recorded as an error result and
the run goes on; an exception raised by the listener ends the run (how a caller stops it
between tests).

After the per-device tests, a level with a peer-to-peer case measures every ordered pair of
the selected devices (when there are several) and reports one ``peer_to_peer`` result per
source device: its slowest pair, with every pair's figure in ``extra`` (``to_3``: GB/s).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

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
TestKind = Literal[
    "matmul", "memory_copy", "host_to_device", "device_to_host", "burn", "peer_to_peer"
]
PEER_TO_PEER = "peer_to_peer"
_MIB = 1 << 20
_UNITS: dict[TestKind, str] = {
    "matmul": "TFLOP/s",
    "memory_copy": "GB/s",
    "host_to_device": "GB/s",
    "device_to_host": "GB/s",
    "burn": "miscompares",
    "peer_to_peer": "GB/s",
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
    peer_to_peer: Case | None = None  # each ordered pair of devices, after the device tests


class Listener(Protocol):
    """Hears a run as it goes (the worker streams these; the CLI shows them)."""

    def planned(self, total: int, devices: Sequence[Device]) -> None:
        """The run will record ``total`` results on ``devices``."""

    def started(self, device: int, test: str) -> None:
        """A test starts on ``device`` (raise here to stop the run before it)."""

    def finished(self, result: BenchResult) -> None:
        """A test's result is recorded."""


class Quiet:
    """A listener that hears nothing."""

    def planned(self, total: int, devices: Sequence[Device]) -> None:
        pass

    def started(self, device: int, test: str) -> None:
        pass

    def finished(self, result: BenchResult) -> None:
        pass


def plan(level: str, kind: DeviceKind, burn_s: float | None = None) -> Plan:
    """Returns: the tests of ``level`` sized for ``kind`` (the CPU gets small sizes).

    quick is bounded to 60 s in total on GPUs (8 devices at ~7 s of budgets each; one H200
    takes about 4 s); on the CPU it finishes in a few seconds. ``burn_s`` overrides the burn's
    duration (the burn level's default is 60 s). standard adds the fp8 multiply and the
    peer-to-peer copies (1 s per ordered pair on GPUs: about a minute for eight).
    """
    if level not in LEVELS:
        raise BenchError(f"unknown level {level!r} (choose from {', '.join(LEVELS)})")
    if burn_s is not None and not burn_s > 0:
        raise BenchError("the burn duration must be positive")
    gpu = kind == "cuda"
    if level == "quick":
        # On GPUs the multiplies and the device copy keep the shapes and repetitions of the
        # per-SKU references they are judged against (8192^3, 2 GiB; 3 warm-ups + 20 timed):
        # an H200 reaches 0.73 x its bf16 reference at 4096^3 and 10 repetitions, a false
        # failure. Only the burn is shorter than standard's.
        side, copy, link = (8192, 2048 * _MIB, 256 * _MIB) if gpu else (192, 8 * _MIB, 8 * _MIB)
        budget = 1.0 if gpu else 0.2
        reps = (3, 20) if gpu else (2, 10)
        cases = [
            *(Case("matmul", side, budget, d, *reps) for d in ("float32", "bfloat16")),
            Case("memory_copy", copy, budget, "", *reps),
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
        peer = Case("peer_to_peer", 1024 * _MIB if gpu else 64 * _MIB, budget / 10, "", 3, 20)
        return Plan(level, tuple(cases), None, peer)
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


def count(plans: Sequence[Plan]) -> int:
    """Returns: the results a run of one plan per device records."""
    peer = plans[0].peer_to_peer if plans else None
    return sum(len(p.cases) for p in plans) + (len(plans) if peer and len(plans) > 1 else 0)


def run(
    backend: Backend,
    level: str,
    *,
    devices: Sequence[int] | None = None,
    burn_s: float | None = None,
    clock: Callable[[], float] = time.monotonic,
    wall: Callable[[], float] = time.time,
    listener: Listener | None = None,
    note: str = "",
) -> RunResult:
    """Run ``level`` on the selected devices of ``backend``, one device after another, then
    the peer-to-peer copies between them."""
    hears = listener if listener is not None else Quiet()
    chosen = select_devices(backend.devices(), devices)
    if not chosen:
        raise BenchError(f"the {backend.name} backend found no device")
    plans = [plan(level, device.kind, burn_s) for device in chosen]
    hears.planned(count(plans), chosen)
    started_at, start = wall(), clock()

    def remaining(steps: Plan) -> float | None:
        return None if steps.total_budget_s is None else steps.total_budget_s - (clock() - start)

    results: dict[int, list[BenchResult]] = {}
    for device, steps in zip(chosen, plans, strict=True):
        results[device.index] = []
        for case in steps.cases:
            hears.started(device.index, case.name)
            result = _run_case(backend, device, case, remaining(steps), clock)
            results[device.index].append(result)
            hears.finished(result)
    peer = plans[0].peer_to_peer
    if peer is not None and len(chosen) > 1:
        for source in chosen:
            hears.started(source.index, peer.name)
            result = _peer_to_peer(backend, source, chosen, peer, remaining(plans[0]), clock)
            results[source.index].append(result)
            hears.finished(result)
    reports = tuple(DeviceReport(d, tuple(results[d.index])) for d in chosen)
    return RunResult(level, backend.name, started_at, clock() - start, reports, note)


def _peer_to_peer(
    backend: Backend,
    source: Device,
    devices: Sequence[Device],
    case: Case,
    remaining_s: float | None,
    clock: Callable[[], float],
) -> BenchResult:
    """Copies from ``source`` to every other device: the slowest pair is the figure."""
    params = case.params()
    if remaining_s is not None and remaining_s <= 0:
        detail = "the level's time budget was spent"
        return BenchResult(case.name, source.index, "skipped", None, "GB/s", params, 0.0, detail)
    began = clock()
    figures: dict[int, float] = {}
    problems = []
    for target in devices:
        if target.index == source.index:
            continue
        try:
            got = backend.peer_to_peer(
                source.index, target.index, case.size, case.warmup, case.iterations, case.budget_s
            )
        except Unsupported as exc:
            return _verdict(case, source, "unsupported", params, clock() - began, exc)
        except NotApplicable as exc:
            return _verdict(case, source, "not_applicable", params, clock() - began, exc)
        except Exception as exc:  # noqa: BLE001 (a failed pair is this test's error)
            problems.append(f"to {target.index}: {type(exc).__name__}: {exc}")
        else:
            figures[target.index] = got.value
    extra = {f"to_{target}": value for target, value in figures.items()}
    slowest = min(figures, key=figures.__getitem__) if figures else None
    if slowest is not None:
        extra["slowest_to"] = float(slowest)
    value = None if slowest is None else figures[slowest]
    return BenchResult(
        case.name, source.index, "error" if problems else "ok", value, "GB/s", params,
        clock() - began, "; ".join(problems), extra,
    )  # fmt: skip


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
