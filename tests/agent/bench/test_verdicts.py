"""A benchmark run judged against its SKU and wrapped in the NVML health checks: a slow H100
warns or fails by its measured reference, a CPU is never judged as a GPU, a GPU with compute
processes is refused unless forced, and an error counter that grows during the run fails it."""

from __future__ import annotations

import pytest

from agent.bench.backend import Device
from agent.bench.harness import run
from agent.bench.scripted import ScriptedBackend
from agent.bench.verdicts import BusyGpuError, checked_run, judge
from agent.collectors.gpu.backend import FieldId, GpuProcess
from agent.collectors.gpu.scripted import DeviceScript, sequence
from agent.collectors.gpu.scripted import ScriptedBackend as ScriptedNvml
from agent.wire.skus import default_table

H100 = Device(0, "NVIDIA H100 80GB HBM3", "cuda")


HEALTHY = {  # an H100 SXM's figures near its measured references (and its spec where none)
    "matmul_fp64": 55.0,
    "matmul_fp32": 51.0,
    "matmul_tf32": 400.0,
    "matmul_fp16": 760.0,
    "matmul_fp8": 1280.0,
    "memory_copy": 3000.0,
    "host_to_device": 55.0,
    "device_to_host": 55.0,
}


def _bench(bf16: float, device: Device = H100) -> ScriptedBackend:
    figures = {**HEALTHY, "matmul_bf16": bf16}
    return ScriptedBackend(device_list=(device,), figures=figures, seconds_per_test=0.01)


def _nvml(**changes: object) -> ScriptedNvml:
    script = DeviceScript(uuid="GPU-a", pci_bus_id="00000000:18:00.0", minor_number=0)
    for name, value in changes.items():
        setattr(script, name, value)
    nvml = ScriptedNvml([script])
    nvml.init()
    return nvml


def _status(judged: object, test: str) -> str:
    return next(f.verdict.status for f in judged.figures if f.test == test)  # type: ignore[attr-defined]


def test_figures_are_judged_against_the_skus_measured_reference() -> None:
    table = default_table()
    for bf16, expected in ((790.0, "pass"), (700.0, "warn"), (500.0, "fail")):
        bench = _bench(bf16)
        judged = judge(run(bench, "standard", clock=bench.clock), table)
        assert _status(judged, "matmul_bf16") == expected
        assert judged.passed == (expected != "fail")
    assert "judgement" in judged.to_dict() and judged.to_dict()["passed"] is False


def test_a_cpu_is_never_judged_as_a_gpu() -> None:
    cpu = Device(0, "NVIDIA H100 80GB HBM3", "cpu")  # whatever its name says
    bench = _bench(1.0, cpu)
    judged = judge(run(bench, "quick", clock=bench.clock), default_table())
    assert judged.figures and {f.verdict.status for f in judged.figures} == {"unjudged"}
    assert judged.passed


def test_a_busy_gpu_is_refused_unless_forced_and_nothing_runs() -> None:
    bench = _bench(790.0)
    busy = _nvml(running_processes=[GpuProcess(4242, 1 << 30)])
    with pytest.raises(BusyGpuError, match="GPU 0 run compute processes"):
        checked_run(lambda: run(bench, "quick", clock=bench.clock), busy, [0], default_table())
    assert bench.calls == []
    forced = checked_run(
        lambda: run(bench, "quick", clock=bench.clock), busy, [0], default_table(), force=True
    )
    assert forced.run.devices and bench.calls


def test_an_error_counter_growing_during_the_run_fails_it() -> None:
    bench = _bench(790.0)
    dbe = {(int(FieldId.ECC_DBE_VOL_TOTAL), 0): sequence(0.0, 1.0)}
    judged = checked_run(
        lambda: run(bench, "quick", clock=bench.clock), _nvml(fields=dbe), [0], default_table()
    )
    assert [(f.level, f.check) for f in judged.findings[0]] == [("fail", "ecc")]
    assert not judged.passed and judged.run.passed  # the figures were fine; the GPU is not
    healthy = checked_run(
        lambda: run(_bench(790.0), "quick", clock=bench.clock), _nvml(), [0], default_table()
    )
    assert healthy.findings == {0: ()} and healthy.passed
