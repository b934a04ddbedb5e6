"""The numpy backend really computes and really times, at tiny sizes."""

from __future__ import annotations

import numpy as np
import pytest

from agent.bench.backend import NotApplicable, Unsupported, matmul_flops
from agent.bench.harness import run
from agent.bench.numpy_backend import NumpyBackend


def test_matmul_measures_a_positive_rate_from_its_own_loop() -> None:
    got = NumpyBackend().matmul(0, "float32", 64, warmup=1, iterations=5, budget_s=5.0)
    assert got.iterations == 5 and got.seconds > 0
    assert got.value > 0
    assert got.value == pytest.approx(matmul_flops(64) * 5 / got.seconds / 1e12)


def test_the_timed_loop_uses_the_timer_and_honours_the_budget() -> None:
    ticks = iter(float(i) for i in range(1000))  # every reading is one second later
    got = NumpyBackend(timer=lambda: next(ticks)).matmul(0, "float64", 8, 0, 100, budget_s=3.0)
    assert got.iterations < 100  # stopped by the budget, not the iteration count
    assert got.value == pytest.approx(matmul_flops(8) * got.iterations / got.seconds / 1e12)


def test_memory_copy_and_what_the_cpu_does_not_have() -> None:
    backend = NumpyBackend()
    copy = backend.memory_copy(0, 1 << 20, warmup=1, iterations=3, budget_s=5.0)
    assert copy.value > 0 and copy.iterations == 3
    with pytest.raises(NotApplicable):
        backend.host_to_device(0, 1 << 20, 1, 3, 5.0)
    with pytest.raises(Unsupported, match="bfloat16"):
        backend.matmul(0, "bfloat16", 8, 1, 1, 1.0)
    with pytest.raises(ValueError, match="only device 0"):
        backend.matmul(1, "float32", 8, 1, 1, 1.0)
    assert backend.devices()[0].kind == "cpu"


def test_burn_compares_each_product_with_the_first() -> None:
    outcome = NumpyBackend().burn(0, "float32", 32, duration_s=0.05)
    assert outcome.iterations >= 1 and outcome.miscompares == 0
    assert outcome.max_abs_error <= outcome.tolerance and outcome.tflops > 0


def test_burn_counts_elements_that_differ(monkeypatch: pytest.MonkeyPatch) -> None:
    real = np.matmul
    calls = {"n": 0}

    def flaky(a: np.ndarray, b: np.ndarray, out: np.ndarray) -> np.ndarray:
        real(a, b, out=out)
        calls["n"] += 1
        if calls["n"] == 2:  # the second repeat flips three elements
            out[0, :3] += 1.0
        return out

    monkeypatch.setattr(np, "matmul", flaky)
    ticks = iter(float(i) / 10 for i in range(1000))
    outcome = NumpyBackend(timer=lambda: next(ticks)).burn(0, "float32", 16, duration_s=0.25)
    assert outcome.iterations >= 2 and outcome.miscompares == 3
    assert outcome.max_abs_error == pytest.approx(1.0, rel=1e-3)


def test_quick_level_on_the_cpu_finishes_in_seconds() -> None:
    result = run(NumpyBackend(), "quick")
    statuses = {r.test: r.status for r in result.devices[0].results}
    assert statuses["matmul_fp32"] == "ok" and statuses["matmul_bf16"] == "unsupported"
    assert statuses["host_to_device"] == "not_applicable" and statuses["burn_fp32"] == "ok"
    assert result.duration_s < 10 and result.passed
