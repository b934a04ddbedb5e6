"""A reported run flattened: device keys, the SKU each device is compared with, the server's
own verdicts and whether each device passed."""

from __future__ import annotations

from agent.wire.bench import BenchRun
from agent.wire.skus import default_table
from server.bench.records import flatten, gpu_key, is_fleet_test
from tests.server.bench.conftest import device, result


def _flat(tree: dict[str, object]) -> tuple[dict[str, object], dict[tuple[str, str], object]]:
    flat = flatten(BenchRun.model_validate(tree), "gpu01", default_table())
    return (
        {d.gpu_key: d for d in flat.devices},
        {(f.gpu_key, f.test): f for f in flat.figures},
    )


def test_keys_and_skus_of_gpus_cpus_and_unknown_models() -> None:
    devices, _ = _flat(
        result(
            [
                device(0, {"matmul_bf16": 790.0}, uuid="GPU-a"),
                device(1, {"matmul_bf16": 790.0}, uuid="GPU-b", sku=None),  # found by name
                device(0, {"matmul_fp32": 0.5}, name="Xeon", kind="cpu", sku=None),
                device(2, {"matmul_bf16": 9.0}, name="Mystery", sku=None),
            ]
        )
    )
    assert {k: d.sku for k, d in devices.items()} == {  # type: ignore[attr-defined]
        "GPU-a": "h100_sxm",
        "GPU-b": "h100_sxm",
        "gpu01/cpu0": "cpu:Xeon",
        "gpu01/cuda2": "cuda:Mystery",
    }


def test_the_server_judges_with_its_table_and_a_device_fails_for_any_reason() -> None:
    checks = {"2": [{"level": "fail", "check": "ecc", "message": "DBE"}], "0": []}
    tree = result(
        [
            device(0, {"matmul_bf16": 790.0, "memory_copy": 3000.0}, uuid="GPU-a"),
            device(1, {"matmul_bf16": 550.0}, uuid="GPU-b"),  # 0.69 x: below the fail line
            device(2, {"matmul_bf16": 790.0}, uuid="GPU-c"),  # its ECC check failed
            device(3, {"matmul_bf16": 0.0}, uuid="GPU-d", statuses={"matmul_bf16": "error"}),
        ],
        checks=checks,
    )
    # the agent said all is well; the server's table decides
    tree["judgement"] = [{"device": 1, "test": "matmul_bf16", "status": "pass", "ratio": 1.0}]
    devices, figures = _flat(tree)
    passed = {k: d.passed for k, d in devices.items()}  # type: ignore[attr-defined]
    assert passed == {"GPU-a": True, "GPU-b": False, "GPU-c": False, "GPU-d": False}
    slow = figures[("GPU-b", "matmul_bf16")]
    assert (slow.verdict, slow.basis, slow.reference) == ("fail", "measured", 795.0)  # type: ignore[attr-defined]
    broken = figures[("GPU-d", "matmul_bf16")]
    assert broken.verdict == "unjudged" and broken.reason == "not measured (error)"  # type: ignore[attr-defined]


def test_the_burn_is_not_a_fleet_figure_and_keys_are_stable() -> None:
    assert not is_fleet_test("burn_fp32") and is_fleet_test("memory_copy")
    from agent.wire.bench import DeviceInfo  # noqa: PLC0415

    cpu = DeviceInfo(index=3, name="Xeon", kind="cpu")
    assert gpu_key("node7", cpu) == "node7/cpu3"
    assert gpu_key("node7", DeviceInfo(index=0, name="x", kind="cuda", uuid="GPU-9")) == "GPU-9"


def test_the_burn_is_judged_by_its_miscompares_on_any_device() -> None:
    _, figures = _flat(
        result(
            [
                device(0, {"burn_fp32": 0.0}, uuid="GPU-a"),
                device(1, {"burn_fp32": 12.0}, uuid="GPU-b", statuses={"burn_fp32": "fail"}),
                device(0, {"burn_fp32": 0.0}, name="Xeon", kind="cpu", sku=None),
                device(2, {"burn_fp32": 0.0}, uuid="GPU-c", statuses={"burn_fp32": "error"}),
            ]
        )
    )
    verdicts = {key: f.verdict for (key, _test), f in figures.items()}  # type: ignore[attr-defined]
    assert verdicts == {"GPU-a": "pass", "GPU-b": "fail", "gpu01/cpu0": "pass", "GPU-c": "unjudged"}
    assert figures[("GPU-b", "burn_fp32")].reason == "12 miscompares"  # type: ignore[attr-defined]
