"""A benchmark run judged against its SKU: a slow H100 warns or fails by its measured
reference, a CPU is never judged as a GPU, and the tree names each GPU's identity and SKU.
(The NVML checks around a run are the job's: test_job.py.)"""

from __future__ import annotations

from agent.bench.backend import Device
from agent.bench.checks import Identity
from agent.bench.harness import run
from agent.bench.scripted import ScriptedBackend
from agent.bench.verdicts import judge
from agent.wire.bench import BenchRun
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


def test_the_tree_names_each_gpu_and_its_sku_and_validates_on_the_wire() -> None:
    unknown = Device(1, "NVIDIA Future GPU", "cuda")
    bench = ScriptedBackend(device_list=(H100, unknown), figures=HEALTHY, seconds_per_test=0.01)
    found = {0: Identity("GPU-a", "00000000:18:00.0", "NVIDIA H100 80GB HBM3")}
    tree = judge(run(bench, "quick", clock=bench.clock), default_table(), None, found).to_dict()
    first, second = (d["device"] for d in tree["devices"])
    assert (first["uuid"], first["pci_bus_id"], first["sku"]) == (
        "GPU-a", "00000000:18:00.0", "h100_sxm"
    )  # fmt: skip
    assert (second["uuid"], second["pci_bus_id"], second["sku"]) == (None, None, None)
    assert BenchRun.model_validate(tree).devices[0].device.sku == "h100_sxm"
    judged = {(j["device"], j["test"]): j["status"] for j in tree["judgement"]}
    assert judged[(0, "matmul_fp32")] == "pass" and judged[(1, "matmul_fp32")] == "unjudged"
