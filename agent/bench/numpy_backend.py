"""The CPU backend: real measurements with numpy, labelled kind "cpu" (not a GPU).

float64 and float32 multiplies run through numpy's BLAS; other precisions are unsupported
(numpy has no bfloat16, tf32 or fp8, and its float16 multiply is not BLAS). Memory copy is a
host-memory copy; host<->device and peer-to-peer copies do not apply to the CPU.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt

from agent.bench.backend import (
    BURN_TOLERANCE,
    BurnOutcome,
    Device,
    NotApplicable,
    Throughput,
    Unsupported,
    matmul_flops,
)
from agent.bench.loop import timed_loop

_DTYPES: dict[str, npt.DTypeLike] = {"float64": np.float64, "float32": np.float32}
Matrix = npt.NDArray[np.floating[Any]]


class NumpyBackend:
    """Device 0 is this host's CPU; ``timer`` reads seconds for the timed loops."""

    name = "numpy"

    def __init__(self, timer: Callable[[], float] = time.perf_counter, seed: int = 0) -> None:
        self._timer = timer
        self._rng = np.random.default_rng(seed)

    def devices(self) -> list[Device]:
        model = platform.processor() or platform.machine() or "unknown"
        return [Device(0, f"CPU {model} ({os.cpu_count() or 1} threads)", "cpu")]

    def matmul(
        self, device: int, dtype: str, size: int, warmup: int, iterations: int, budget_s: float
    ) -> Throughput:
        self._check(device)
        a, b = self._operands(dtype, size)
        out = np.empty_like(a)
        done, seconds = timed_loop(
            lambda: np.matmul(a, b, out=out),
            warmup=warmup, iterations=iterations, budget_s=budget_s, timer=self._timer,
        )  # fmt: skip
        return Throughput(_rate(matmul_flops(size) * done, seconds) / 1e12, done, seconds)

    def memory_copy(
        self, device: int, nbytes: int, warmup: int, iterations: int, budget_s: float
    ) -> Throughput:
        self._check(device)
        source = np.ones(nbytes, dtype=np.uint8)
        target = np.empty_like(source)
        done, seconds = timed_loop(
            lambda: np.copyto(target, source),
            warmup=warmup, iterations=iterations, budget_s=budget_s, timer=self._timer,
        )  # fmt: skip
        return Throughput(_rate(2.0 * nbytes * done, seconds) / 1e9, done, seconds)

    def host_to_device(
        self, device: int, nbytes: int, warmup: int, iterations: int, budget_s: float
    ) -> Throughput:
        raise NotApplicable("the CPU backend has no device memory apart from the host's")

    def device_to_host(
        self, device: int, nbytes: int, warmup: int, iterations: int, budget_s: float
    ) -> Throughput:
        raise NotApplicable("the CPU backend has no device memory apart from the host's")

    def peer_to_peer(
        self, source: int, target: int, nbytes: int, warmup: int, iterations: int, budget_s: float
    ) -> Throughput:
        raise NotApplicable("the CPU backend has one device: there is no peer to copy to")

    def burn(self, device: int, dtype: str, size: int, duration_s: float) -> BurnOutcome:
        self._check(device)
        a, b = self._operands(dtype, size, uniform=True)
        first = a @ b
        out = np.empty_like(first)
        tolerance = BURN_TOLERANCE[dtype]
        miscompares, worst, done = 0, 0.0, 0
        start = self._timer()
        while done == 0 or self._timer() - start < duration_s:
            np.matmul(a, b, out=out)
            error = np.abs(out - first)
            miscompares += int(np.count_nonzero(error > tolerance))
            worst = max(worst, float(error.max()))
            done += 1
        seconds = self._timer() - start
        tflops = _rate(matmul_flops(size) * done, seconds) / 1e12
        return BurnOutcome(done, seconds, miscompares, worst, tolerance, tflops)

    def _operands(self, dtype: str, size: int, *, uniform: bool = False) -> tuple[Matrix, Matrix]:
        kind = _DTYPES.get(dtype)
        if kind is None:
            raise Unsupported(f"numpy on the CPU has no {dtype} matrix multiply")
        if size < 1:
            raise ValueError("the matrix size must be positive")
        draw = self._rng.random if uniform else self._rng.standard_normal
        return draw((size, size)).astype(kind), draw((size, size)).astype(kind)

    def _check(self, device: int) -> None:
        if device != 0:
            raise ValueError(f"the CPU backend has only device 0, not {device}")


def _rate(amount: float, seconds: float) -> float:
    if seconds <= 0:
        raise RuntimeError("the timer did not advance over the timed loop")
    return amount / seconds
