"""The in-memory twin of a backend: scripted figures, miscompares and faults, no compute.

Harness tests script a scenario per test name (``matmul_bf16``, ``memory_copy``, ``burn_fp32``)
and device: a figure, an exception to raise, or a burn's miscompare count. Each call advances
``clock`` by ``seconds_per_test`` so time budgets can be tested without waiting, and is
recorded in ``calls``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from agent.bench.backend import BurnOutcome, Device, Throughput, matmul_flops, test_name

DEFAULT_FIGURES = {"matmul": 100.0, "memory_copy": 1000.0, "host_to_device": 50.0}


@dataclass
class ManualClock:
    """Monotonic seconds that move only when told."""

    now: float = 0.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class ScriptedBackend:
    """``figures`` by test name (else a default per kind); ``faults`` by (test name, device)
    raise; ``miscompares`` by device make that device's burn miscompare."""

    device_list: Sequence[Device] = (Device(0, "Scripted GPU", "cuda"),)
    figures: Mapping[str, float] = field(default_factory=dict)
    faults: Mapping[tuple[str, int], Exception] = field(default_factory=dict)
    miscompares: Mapping[int, int] = field(default_factory=dict)
    clock: ManualClock = field(default_factory=ManualClock)
    seconds_per_test: float = 1.0
    calls: list[tuple[str, int]] = field(default_factory=list)
    name: str = "scripted"

    def devices(self) -> list[Device]:
        return list(self.device_list)

    def matmul(
        self, device: int, dtype: str, size: int, warmup: int, iterations: int, budget_s: float
    ) -> Throughput:
        return self._throughput(test_name("matmul", dtype), "matmul", device, iterations)

    def memory_copy(
        self, device: int, nbytes: int, warmup: int, iterations: int, budget_s: float
    ) -> Throughput:
        return self._throughput("memory_copy", "memory_copy", device, iterations)

    def host_to_device(
        self, device: int, nbytes: int, warmup: int, iterations: int, budget_s: float
    ) -> Throughput:
        return self._throughput("host_to_device", "host_to_device", device, iterations)

    def device_to_host(
        self, device: int, nbytes: int, warmup: int, iterations: int, budget_s: float
    ) -> Throughput:
        return self._throughput("device_to_host", "host_to_device", device, iterations)

    def burn(self, device: int, dtype: str, size: int, duration_s: float) -> BurnOutcome:
        name = test_name("burn", dtype)
        self._enter(name, device)
        errors = self.miscompares.get(device, 0)
        iterations = 10
        tflops = matmul_flops(size) * iterations / self.seconds_per_test / 1e12
        worst = 1.0 if errors else 0.0
        return BurnOutcome(iterations, self.seconds_per_test, errors, worst, 1e-3, tflops)

    def _throughput(self, name: str, kind: str, device: int, iterations: int) -> Throughput:
        self._enter(name, device)
        value = self.figures.get(name, DEFAULT_FIGURES[kind])
        return Throughput(value, iterations, self.seconds_per_test)

    def _enter(self, name: str, device: int) -> None:
        self.calls.append((name, device))
        self.clock.advance(self.seconds_per_test)
        fault = self.faults.get((name, device))
        if fault is not None:
            raise fault
