"""The CUDA backend through PyTorch, imported only when chosen (never by the unit tests).

Written against PyTorch 2's API but not run in this repository's tests, which have no GPU:
its figures are unverified until run on a CUDA device. Timing follows the reference method
(CUDA events, 2·N³ flops per multiply, read+write bytes for device copies, pinned host memory).

fp8 multiplies go through ``torch._scaled_mm`` (float8_e4m3fn inputs, unit scales, bfloat16
output, fast accumulation) on compute capability 8.9 and newer (Ada, Hopper, Blackwell); older
GPUs and PyTorch builds without it answer Unsupported. Peer-to-peer copies are timed on the host
clock between synchronisations of both devices, one direction; PyTorch enables direct peer
access where the GPUs allow it and stages through the host where they do not.
"""

from __future__ import annotations

import importlib
import time
from typing import Any

from agent.bench.backend import (
    BURN_TOLERANCE,
    BurnOutcome,
    Device,
    Throughput,
    Unsupported,
    matmul_flops,
)
from agent.bench.loop import timed_loop

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
        if dtype == "float8_e4m3fn":
            return self._matmul_fp8(device, size, warmup, iterations, budget_s)
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

    def peer_to_peer(
        self, source: int, target: int, nbytes: int, warmup: int, iterations: int, budget_s: float
    ) -> Throughput:
        torch = self._torch
        if source == target:
            raise ValueError("a peer-to-peer copy needs two devices")
        sent = torch.empty(nbytes, dtype=torch.uint8, device=torch.device("cuda", source))
        received = torch.empty(nbytes, dtype=torch.uint8, device=torch.device("cuda", target))

        def sync() -> None:
            torch.cuda.synchronize(source)
            torch.cuda.synchronize(target)

        done, seconds = timed_loop(
            lambda: received.copy_(sent, non_blocking=True),
            warmup=warmup, iterations=iterations, budget_s=budget_s, timer=time.perf_counter,
            sync=sync,
        )  # fmt: skip
        if seconds <= 0:
            raise RuntimeError("the host clock measured no time")
        return Throughput(nbytes * done / seconds / 1e9, done, seconds)

    def _matmul_fp8(
        self, device: int, size: int, warmup: int, iterations: int, budget_s: float
    ) -> Throughput:
        torch = self._torch
        if not hasattr(torch, "float8_e4m3fn") or not hasattr(torch, "_scaled_mm"):
            raise Unsupported("this PyTorch has no fp8 matrix multiply (torch._scaled_mm)")
        major, minor = torch.cuda.get_device_capability(device)
        if (major, minor) < (8, 9):
            raise Unsupported(f"fp8 needs compute capability 8.9 or newer, not {major}.{minor}")
        where = torch.device("cuda", device)
        fp8 = torch.float8_e4m3fn
        a = torch.randn(size, size, device=where).to(fp8)
        b = torch.randn(size, size, device=where).to(fp8).t()  # column-major, as cuBLASLt wants
        one = torch.ones((), device=where, dtype=torch.float32)

        def step() -> object:
            return torch._scaled_mm(  # PyTorch's only fp8 GEMM entry point
                a, b, scale_a=one, scale_b=one, out_dtype=torch.bfloat16, use_fast_accum=True
            )

        done, seconds = self._time(where, step, warmup, iterations, budget_s)
        return Throughput(matmul_flops(size) * done / seconds / 1e12, done, seconds)

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
