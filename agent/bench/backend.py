"""The benchmark backend seam: what a compute library must measure for the harness.

Every method runs one test on one device, bounded by a time budget in seconds, and returns
what it measured. Two exceptions say a test does not apply, and are not failures:

- ``Unsupported``: this backend or device cannot run the test as asked (a precision, say).
- ``NotApplicable``: the test has no meaning here (host<->device copies on the CPU).

Any other exception is the test's error; the harness records it and carries on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

DeviceKind = Literal["cpu", "cuda"]
#: Matrix precisions by name; a backend supports a subset.
DTYPES = ("float64", "float32", "tf32", "bfloat16", "float16", "float8_e4m3fn")
_SHORT = {
    "float64": "fp64",
    "float32": "fp32",
    "tf32": "tf32",
    "bfloat16": "bf16",
    "float16": "fp16",
    "float8_e4m3fn": "fp8",
}


def test_name(kind: str, dtype: str = "") -> str:
    """Returns: a test's name in results, e.g. ``matmul_bf16``, ``memory_copy``."""
    return f"{kind}_{_SHORT[dtype]}" if dtype else kind


class Unsupported(Exception):  # noqa: N818 (a verdict, not an error)
    """The backend cannot run this test as asked (for example a precision it lacks)."""


class NotApplicable(Exception):  # noqa: N818 (a verdict, not an error)
    """The test has no meaning on this device kind."""


@dataclass(frozen=True)
class Device:
    index: int
    name: str
    kind: DeviceKind


@dataclass(frozen=True)
class Throughput:
    """A figure from a timed loop run after warm-up.

    ``value`` is in the unit the producing method names; ``iterations`` and ``seconds`` are
    the timed loop's (warm-up excluded), so ``value`` can be re-derived from them.
    """

    value: float
    iterations: int
    seconds: float


@dataclass(frozen=True)
class BurnOutcome:
    """The correctness burn: ``iterations`` products compared with the first one.

    ``miscompares`` counts elements, over all iterations, that differ from the first product
    by more than ``tolerance`` (absolute, as gpu-burn compares); ``max_abs_error`` is the
    largest difference seen. ``tflops`` is the throughput over the burn.
    """

    iterations: int
    seconds: float
    miscompares: int
    max_abs_error: float
    tolerance: float
    tflops: float


class Backend(Protocol):
    """One compute library behind the harness."""

    @property
    def name(self) -> str:
        """Returns: the backend's name ("numpy", "torch", ...)."""
        ...

    def devices(self) -> list[Device]:
        """Returns: the devices this backend can run tests on."""
        ...

    def matmul(
        self, device: int, dtype: str, size: int, warmup: int, iterations: int, budget_s: float
    ) -> Throughput:
        """Dense ``size``x``size`` matrix multiply; returns TFLOP/s (2·size³ flops each)."""
        ...

    def memory_copy(
        self, device: int, nbytes: int, warmup: int, iterations: int, budget_s: float
    ) -> Throughput:
        """Device-memory copy of ``nbytes``; returns GB/s counting read plus write bytes."""
        ...

    def host_to_device(
        self, device: int, nbytes: int, warmup: int, iterations: int, budget_s: float
    ) -> Throughput:
        """Host -> device copy of ``nbytes`` from pinned host memory; returns GB/s."""
        ...

    def device_to_host(
        self, device: int, nbytes: int, warmup: int, iterations: int, budget_s: float
    ) -> Throughput:
        """Device -> host copy of ``nbytes`` into pinned host memory; returns GB/s."""
        ...

    def burn(self, device: int, dtype: str, size: int, duration_s: float) -> BurnOutcome:
        """Multiply the same matrices for ``duration_s`` and compare each product with the first."""
        ...

    def peer_to_peer(
        self, source: int, target: int, nbytes: int, warmup: int, iterations: int, budget_s: float
    ) -> Throughput:
        """Copy ``nbytes`` from device ``source`` to device ``target``; returns GB/s, one
        direction (the bytes copied, not read plus written)."""
        ...


def matmul_flops(size: int) -> float:
    """Returns: floating-point operations in one ``size``³ multiply (2·size³)."""
    return 2.0 * float(size) ** 3


#: gpu-burn's absolute compare tolerances; other precisions scale from float32's.
BURN_TOLERANCE = {
    "float64": 1e-7,
    "float32": 1e-3,
    "tf32": 1e-3,
    "bfloat16": 1e-3,
    "float16": 1e-3,
}
