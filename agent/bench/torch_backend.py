"""The CUDA backend through PyTorch, imported only when chosen (never by the unit tests).

Written against PyTorch 2's API but not run in this repository's tests, which have no GPU:
its figures are unverified until run on a CUDA device. Timing follows the reference method
(CUDA events, 2·N³ flops per multiply, read+write bytes for device copies, pinned host memory).
"""

from __future__ import annotations

import importlib
from typing import Any

from agent.bench.backend import (
    BURN_TOLERANCE,
    BurnOutcome,
    Device,
    Throughput,
    Unsupported,
    matmul_flops,
)

_DTYPES = {"float64": "float64", "float32": "float32", "tf32": "float32",
           "bfloat16": "bfloat16", "float16": "float16"}  # fmt: skip


class TorchBackend:
    name = "torch"

    def __init__(self) -> None:
        self._torch: Any = importlib.import_module("torch")

    def devices(self) -> list[Device]:
        cuda = self._torch.cuda
        if not cuda.is_available():
            return []
        return [Device(i, str(cuda.get_device_name(i)), "cuda") for i in range(cuda.device_count())]

    def matmul(
        self, device: int, dtype: str, size: int, warmup: int, iterations: int, budget_s: float
    ) -> Throughput:
        torch = self._torch
        if dtype not in _DTYPES:
            raise Unsupported(f"torch has no {dtype} matrix multiply")
        where = torch.device("cuda", device)
        kind = getattr(torch, _DTYPES[dtype])
        a = torch.randn(size, size, device=where, dtype=kind)
        b = torch.randn(size, size, device=where, dtype=kind)
        previous = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = dtype == "tf32"
        try:
            done, seconds = self._time(where, lambda: a @ b, warmup, iterations, budget_s)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = previous
        return Throughput(matmul_flops(size) * done / seconds / 1e12, done, seconds)

    def memory_copy(
        self, device: int, nbytes: int, warmup: int, iterations: int, budget_s: float
    ) -> Throughput:
        torch = self._torch
        where = torch.device("cuda", device)
        source = torch.empty(nbytes, dtype=torch.uint8, device=where)
        target = torch.empty_like(source)
        done, seconds = self._time(
            where, lambda: target.copy_(source), warmup, iterations, budget_s
        )
        return Throughput(2.0 * nbytes * done / seconds / 1e9, done, seconds)

    def host_to_device(
        self, device: int, nbytes: int, warmup: int, iterations: int, budget_s: float
    ) -> Throughput:
        return self._link(device, nbytes, warmup, iterations, budget_s, to_device=True)

    def device_to_host(
        self, device: int, nbytes: int, warmup: int, iterations: int, budget_s: float
    ) -> Throughput:
        return self._link(device, nbytes, warmup, iterations, budget_s, to_device=False)

    def burn(self, device: int, dtype: str, size: int, duration_s: float) -> BurnOutcome:
        torch = self._torch
        if dtype not in _DTYPES or dtype == "tf32":
            raise Unsupported(f"the burn runs in float32 or float64, not {dtype}")
        where = torch.device("cuda", device)
        kind = getattr(torch, _DTYPES[dtype])
        a = torch.rand(size, size, device=where, dtype=kind)
        b = torch.rand(size, size, device=where, dtype=kind)
        first = a @ b
        tolerance = BURN_TOLERANCE[dtype]
        miscompares, worst, done = 0, 0.0, 0
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        elapsed = 0.0
        while done == 0 or elapsed < duration_s:
            error = (a @ b - first).abs()
            miscompares += int((error > tolerance).sum().item())  # .item() synchronises
            worst = max(worst, float(error.max().item()))
            done += 1
            end.record()
            end.synchronize()
            elapsed = start.elapsed_time(end) / 1e3
        tflops = matmul_flops(size) * done / elapsed / 1e12
        return BurnOutcome(done, elapsed, miscompares, worst, tolerance, tflops)

    def _link(
        self, device: int, nbytes: int, warmup: int, iterations: int, budget_s: float,
        *, to_device: bool,
    ) -> Throughput:  # fmt: skip
        torch = self._torch
        where = torch.device("cuda", device)
        host = torch.empty(nbytes, dtype=torch.uint8, pin_memory=True)
        gpu = torch.empty(nbytes, dtype=torch.uint8, device=where)
        source, target = (host, gpu) if to_device else (gpu, host)
        done, seconds = self._time(
            where, lambda: target.copy_(source, non_blocking=True), warmup, iterations, budget_s
        )
        return Throughput(nbytes * done / seconds / 1e9, done, seconds)

    def _time(
        self, where: Any, step: Any, warmup: int, iterations: int, budget_s: float
    ) -> tuple[int, float]:
        """CUDA-event timing of up to ``iterations`` steps after ``warmup``, within the budget."""
        torch = self._torch
        with torch.cuda.device(where):
            for _ in range(warmup):
                step()
            torch.cuda.synchronize()
            start = torch.cuda.Event(enable_timing=True)
            end = torch.cuda.Event(enable_timing=True)
            start.record()
            done = 0
            while done < iterations:
                step()
                done += 1
                end.record()
                end.synchronize()
                if start.elapsed_time(end) / 1e3 >= budget_s:
                    break
            seconds = float(start.elapsed_time(end)) / 1e3
        if seconds <= 0:
            raise RuntimeError("CUDA events measured no time")
        return done, seconds
