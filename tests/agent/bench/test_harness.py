"""The harness over the scripted backend: figures carried, errors recorded, burns judged."""

from __future__ import annotations

import json
from collections.abc import Sequence

import pytest

from agent.bench.backend import Device, NotApplicable, Unsupported
from agent.bench.harness import BenchError, plan, run
from agent.bench.result import BenchResult
from agent.bench.scripted import ScriptedBackend

TWO_GPUS = (Device(0, "GPU A", "cuda"), Device(1, "GPU B", "cuda"))


def _by_test(results: tuple[BenchResult, ...]) -> dict[str, BenchResult]:
    return {r.test: r for r in results}


def test_figures_units_and_parameters_are_carried_through() -> None:
    backend = ScriptedBackend(figures={"matmul_bf16": 795.0, "memory_copy": 3025.0})
    result = run(backend, "standard", clock=backend.clock, wall=lambda: 1000.0)
    tests = _by_test(result.devices[0].results)
    assert tests["matmul_bf16"].value == 795.0
    assert tests["matmul_bf16"].unit == "TFLOP/s"
    assert tests["matmul_bf16"].params == {
        "size": 8192, "dtype": "bfloat16", "warmup": 3, "iterations": 20, "budget_s": 10.0
    }  # fmt: skip
    assert tests["memory_copy"].value == 3025.0 and tests["memory_copy"].unit == "GB/s"
    assert tests["matmul_fp32"].value == 100.0  # the scripted default
    assert tests["matmul_bf16"].duration_s == backend.seconds_per_test
    assert result.started_at == 1000.0 and result.passed
    tree = json.loads(result.to_json())
    assert tree["devices"][0]["results"][0]["test"] == "matmul_fp64"
    assert tree["passed"] is True and tree["devices"][0]["device"]["kind"] == "cuda"


def test_an_exception_becomes_an_error_result_and_later_tests_still_run() -> None:
    backend = ScriptedBackend(
        device_list=TWO_GPUS,
        faults={
            ("memory_copy", 0): RuntimeError("CUDA error: an illegal memory access"),
            ("matmul_bf16", 1): Unsupported("no bf16 here"),
        },
    )
    result = run(backend, "quick", clock=backend.clock)
    first, second = (_by_test(d.results) for d in result.devices)
    assert first["memory_copy"].status == "error"
    assert first["memory_copy"].value is None
    assert "RuntimeError: CUDA error: an illegal memory access" in first["memory_copy"].detail
    assert first["host_to_device"].status == "ok" and first["burn_fp32"].status == "ok"
    assert second["matmul_bf16"].status == "unsupported"
    assert second["memory_copy"].status == "ok"
    assert [name for name, _ in backend.calls].count("burn_fp32") == 2
    assert not result.devices[0].passed and result.devices[1].passed
    assert not result.passed


def test_a_miscompare_is_counted_and_fails_the_burn() -> None:
    backend = ScriptedBackend(device_list=TWO_GPUS, miscompares={1: 7})
    result = run(backend, "burn", burn_s=5.0, clock=backend.clock)
    healthy, sick = (_by_test(d.results)["burn_fp32"] for d in result.devices)
    assert healthy.status == "ok" and healthy.value == 0.0
    assert sick.status == "fail" and sick.value == 7.0 and sick.unit == "miscompares"
    assert "7 elements differed" in sick.detail
    assert sick.params["duration_s"] == 5.0
    assert result.devices[0].passed and not result.devices[1].passed


def test_quick_stops_at_its_total_budget() -> None:
    backend = ScriptedBackend(seconds_per_test=25.0)  # the third test starts at 50 s, not 60
    results = run(backend, "quick", clock=backend.clock).devices[0].results
    statuses = [r.status for r in results]
    assert statuses == ["ok", "ok", "ok", "skipped", "skipped", "skipped"]
    assert len(backend.calls) == 3


def test_device_selection_and_bad_requests() -> None:
    backend = ScriptedBackend(device_list=TWO_GPUS)
    result = run(backend, "quick", devices=[1], clock=backend.clock)
    assert [d.device.index for d in result.devices] == [1]
    assert {device for _, device in backend.calls} == {1}
    with pytest.raises(BenchError, match="no device 3"):
        run(backend, "quick", devices=[3])
    with pytest.raises(BenchError, match="unknown level 'slow'"):
        plan("slow", "cuda")
    with pytest.raises(BenchError, match="positive"):
        plan("burn", "cuda", burn_s=0)


def test_the_cpu_gets_smaller_sizes_than_a_gpu() -> None:
    for level in ("quick", "standard", "burn"):
        gpu, cpu = plan(level, "cuda"), plan(level, "cpu")
        assert [c.name for c in gpu.cases] == [c.name for c in cpu.cases]
        matmul = next(c for c in cpu.cases if c.kind == "matmul")
        assert matmul.size < next(c for c in gpu.cases if c.kind == "matmul").size
    assert plan("burn", "cpu", burn_s=12.5).cases[-1].budget_s == 12.5


def test_every_gpu_level_measures_with_the_references_shapes_and_repetitions() -> None:
    # The verdicts compare with per-SKU references measured at 8192^3 (multiplies) and 2 GiB
    # (device copy), 3 warm-ups + 20 timed; a smaller or shorter run reads low on a healthy
    # GPU (an H200 gave 0.73 x its bf16 reference at 4096^3 and 10 repetitions: a failure).
    for level in ("quick", "standard", "burn"):
        for case in plan(level, "cuda").cases:
            if case.kind == "matmul":
                assert (case.size, case.warmup, case.iterations) == (8192, 3, 20), (level, case)
            if case.kind == "memory_copy":
                assert (case.size, case.warmup, case.iterations) == (2048 * 2**20, 3, 20)


class Heard:
    """A listener that records what it hears, in order."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object, object]] = []

    def planned(self, total: int, devices: Sequence[Device]) -> None:
        self.events.append(("planned", total, [d.index for d in devices]))

    def started(self, device: int, test: str) -> None:
        self.events.append(("started", device, test))

    def finished(self, result: BenchResult) -> None:
        self.events.append(("finished", result.device, result.test))


def test_the_listener_hears_the_plan_then_each_test_start_and_result() -> None:
    backend = ScriptedBackend(device_list=TWO_GPUS)
    heard = Heard()
    result = run(backend, "quick", clock=backend.clock, listener=heard)
    assert heard.events[0] == ("planned", 12, [0, 1])
    assert heard.events[1:3] == [("started", 0, "matmul_fp32"), ("finished", 0, "matmul_fp32")]
    assert len(heard.events) == 1 + 2 * 12
    assert sum(len(d.results) for d in result.devices) == 12


def test_standard_measures_fp8_and_every_ordered_pair_reporting_the_slowest() -> None:
    three = (*TWO_GPUS, Device(2, "GPU C", "cuda"))
    backend = ScriptedBackend(
        device_list=three,
        figures={"matmul_fp8": 1290.0},
        peer_figures={(0, 1): 380.0, (0, 2): 120.0, (1, 0): 381.0},
        faults={("peer_to_peer", 2): RuntimeError("peer access denied")},
    )
    heard = Heard()
    result = run(backend, "standard", clock=backend.clock, listener=heard)
    assert heard.events[0] == ("planned", 3 * 10 + 3, [0, 1, 2])
    by_device = [_by_test(d.results) for d in result.devices]
    assert by_device[0]["matmul_fp8"].value == 1290.0
    assert by_device[0]["matmul_fp8"].params["dtype"] == "float8_e4m3fn"
    first = by_device[0]["peer_to_peer"]
    assert (first.status, first.value, first.unit) == ("ok", 120.0, "GB/s")
    assert first.extra["to_1"] == 380.0 and first.extra["to_2"] == 120.0
    assert first.extra["slowest_to"] == 2.0
    second = by_device[1]["peer_to_peer"]
    assert second.value == 300.0 and second.extra["to_0"] == 381.0  # (1, 2) is the default
    third = by_device[2]["peer_to_peer"]
    assert third.status == "error" and "to 0: RuntimeError: peer access denied" in third.detail
    pairs = [device for name, device in backend.calls if name == "peer_to_peer"]
    assert pairs == [0, 0, 1, 1, 2, 2]  # every ordered pair, after every device test
    assert backend.calls[-7][0] == "burn_fp32"
    assert heard.events[-1] == ("finished", 2, "peer_to_peer")


def test_one_device_has_no_peer_phase_and_the_cpu_has_no_peers() -> None:
    backend = ScriptedBackend()
    result = run(backend, "standard", clock=backend.clock)
    assert "peer_to_peer" not in _by_test(result.devices[0].results)
    cpu = ScriptedBackend(device_list=(Device(0, "CPU", "cpu"), Device(1, "CPU", "cpu")),
                          faults={("peer_to_peer", 0): NotApplicable("one host")})  # fmt: skip
    peer = _by_test(run(cpu, "standard", clock=cpu.clock).devices[0].results)["peer_to_peer"]
    assert peer.status == "not_applicable" and peer.value is None


def test_a_listener_that_raises_stops_the_run_before_the_next_test() -> None:
    backend = ScriptedBackend(device_list=TWO_GPUS)

    class Stop(Heard):
        def started(self, device: int, test: str) -> None:
            if len(self.events) >= 3:
                raise KeyboardInterrupt
            super().started(device, test)

    with pytest.raises(KeyboardInterrupt):
        run(backend, "quick", clock=backend.clock, listener=Stop())
    assert len(backend.calls) == 1
