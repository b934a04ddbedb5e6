"""Benchmark results over HTTP: stored from final reports, filtered, per-device history, judged
against the SKU's reference and against the fleet; CPU devices judged among themselves."""

from __future__ import annotations

from typing import Any

from agent.wire.bench import BENCH_RESULTS_PATH
from tests.server.bench.conftest import ADMIN, H100, Bench, device, result
from tests.server.conftest import START

FLEET = "/api/v1/bench/fleet"


def _results(bench: Bench, **params: Any) -> dict[str, Any]:
    answer = bench.client.get(BENCH_RESULTS_PATH, params=params, headers=ADMIN)
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def _h100s(values: list[float], first: int = 0) -> list[dict[str, Any]]:
    return [
        device(i, {"matmul_bf16": v, "memory_copy": 3000.0}, uuid=f"GPU-{first + i}")
        for i, v in enumerate(values)
    ]


def test_a_done_report_stores_its_figures_judged_against_the_sku(bench: Bench) -> None:
    bench.node("gpu01")
    run = result(
        [
            device(0, {"matmul_bf16": 790.0, "memory_copy": 3000.0}, uuid="GPU-a"),
            device(1, {"matmul_bf16": 500.0, "memory_copy": 3010.0}, uuid="GPU-b"),  # < 0.75 x
        ]
    )
    request_id = bench.run("gpu01", run)
    assert bench.get(request_id)["run_id"] is not None
    found = _results(bench)["results"]
    assert len(found) == 4
    by_key = {(r["gpu"], r["test"]): r for r in found}
    good = by_key[("GPU-a", "matmul_bf16")]
    assert (good["verdict"], good["basis"], good["reference"]) == ("pass", "measured", 795.0)
    assert good["ratio"] == 790.0 / 795.0 and good["sku"] == "h100_sxm"
    assert good["request_id"] == request_id and good["node"] == "gpu01" and good["time"] == START
    slow = by_key[("GPU-b", "matmul_bf16")]
    assert slow["verdict"] == "fail" and "0.63 x the H100 SXM5 80GB measured" in slow["reason"]
    # the server judged GPU-b failed, whatever the agent said
    history = bench.client.get("/api/v1/bench/gpus/GPU-b/history", headers=ADMIN).json()
    assert [(r["passed"], r["level"]) for r in history["runs"]] == [(False, "quick")]
    assert {f["test"] for f in history["figures"]} == {"matmul_bf16", "memory_copy"}
    passed = bench.client.get("/api/v1/bench/gpus/GPU-a/history", headers=ADMIN).json()
    assert passed["runs"][0]["passed"] is True


def test_results_filter_by_node_gpu_sku_test_verdict_and_time(bench: Bench) -> None:
    bench.node("gpu01")
    bench.node("gpu02")
    bench.run("gpu01", result(_h100s([790.0, 700.0]), started_at=START))
    bench.clock.now += 100
    bench.run("gpu02", result(_h100s([400.0], first=5), started_at=START + 100))

    def keys(**params: Any) -> list[tuple[str, str]]:
        return [(r["gpu"], r["test"]) for r in _results(bench, **params)["results"]]

    assert len(keys()) == 6
    assert keys()[:2] == [("GPU-5", "memory_copy"), ("GPU-5", "matmul_bf16")]  # newest first
    assert {k[0] for k in keys(node="gpu01")} == {"GPU-0", "GPU-1"}
    assert keys(gpu="GPU-1", test="matmul_bf16") == [("GPU-1", "matmul_bf16")]
    assert keys(verdict="fail") == [("GPU-5", "matmul_bf16")]
    assert keys(verdict="warn") == [("GPU-1", "matmul_bf16")]  # 700 / 795 = 0.88
    assert len(keys(sku="h100_sxm")) == 6 and keys(sku="a100_sxm") == []
    assert {k[0] for k in keys(since=START + 50)} == {"GPU-5"}
    assert {k[0] for k in keys(until=START + 50)} == {"GPU-0", "GPU-1"}
    assert len(keys(limit=2)) == 2
    bad = bench.client.get(BENCH_RESULTS_PATH, params={"verdict": "great"}, headers=ADMIN)
    assert bad.status_code == 422


def test_history_lists_a_devices_runs_newest_first(bench: Bench) -> None:
    bench.node("gpu01")
    for i, value in enumerate([790.0, 780.0, 500.0]):
        bench.clock.now += 60
        run = result([device(0, {"matmul_bf16": value}, uuid="GPU-x")], started_at=START + 60 * i)
        bench.run("gpu01", run)
    answer = bench.client.get("/api/v1/bench/gpus/GPU-x/history", headers=ADMIN)
    history = answer.json()
    assert [r["passed"] for r in history["runs"]] == [False, True, True]
    assert [f["value"] for f in history["figures"]] == [500.0, 780.0, 790.0]
    # only the latest figure carries the fleet's verdict
    assert history["figures"][0]["fleet"] is not None
    assert history["figures"][1]["fleet"] is None
    limited = bench.client.get(
        "/api/v1/bench/gpus/GPU-x/history",
        params={"limit": 1, "test": "matmul_bf16"},
        headers=ADMIN,
    ).json()
    assert [f["value"] for f in limited["figures"]] == [500.0]
    missing = bench.client.get("/api/v1/bench/gpus/GPU-none/history", headers=ADMIN)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_a_gpu_at_70_percent_of_its_five_peers_is_the_fleet_outlier(bench: Bench) -> None:
    """Six H100s on two nodes; one copies at 70 % of the others: above the SKU's own fail line
    (0.75 x its measured 3030 GB/s), so only the fleet catches it."""
    bench.node("gpu01")
    bench.node("gpu02")
    copies = [3300.0, 3300.0, 3300.0, 3300.0, 3300.0, 0.7 * 3300.0]
    devices = [
        device(i % 3, {"matmul_bf16": 790.0 + i, "memory_copy": c}, uuid=f"GPU-{i}")
        for i, c in enumerate(copies)
    ]
    bench.run("gpu01", result(devices[:3]))
    bench.run("gpu02", result(devices[3:]))
    fleet = bench.client.get(FLEET, headers=ADMIN).json()
    groups = {(g["sku"], g["test"]): g for g in fleet["groups"]}
    copy = groups[("h100_sxm", "memory_copy")]
    assert (copy["count"], copy["median"], copy["scaled_mad"]) == (6, 3300.0, 0.0)
    assert copy["limit"] == 0.9 * 3300.0
    (outlier,) = [g for g in fleet["gpus"] if g["fleet"]["outlier"]]
    assert (outlier["gpu"], outlier["test"], outlier["node"]) == ("GPU-5", "memory_copy", "gpu02")
    assert round(outlier["fleet"]["ratio"], 6) == 0.7
    assert (
        "0.70 x the median 3300 of 6 h100_sxm GPUs: below the fleet" in outlier["fleet"]["reason"]
    )
    assert fleet["gpus"][0] == outlier  # outliers first
    assert len(fleet["gpus"]) == 12
    only = bench.client.get(FLEET, params={"outliers": True}, headers=ADMIN).json()
    assert [g["gpu"] for g in only["gpus"]] == ["GPU-5"]
    results = _results(bench, gpu="GPU-5", test="memory_copy")
    (figure,) = results["results"]
    assert figure["verdict"] == "warn" and figure["fleet"]["outlier"] is True
    assert [(g["sku"], g["test"]) for g in results["fleet"]] == [("h100_sxm", "memory_copy")]
    healthy = _results(bench, gpu="GPU-4", test="memory_copy")["results"][0]
    assert healthy["fleet"]["outlier"] is False and healthy["fleet"]["judged"] is True
    assert healthy["fleet"]["median"] == 3300.0 and healthy["fleet"]["ratio"] == 1.0
    assert "within the fleet" in healthy["fleet"]["reason"]
    # the matmul figures are all within 1 %: nobody is flagged for them
    matmul = bench.client.get(FLEET, params={"test": "matmul_bf16"}, headers=ADMIN).json()
    assert len(matmul["gpus"]) == 6 and not any(g["fleet"]["outlier"] for g in matmul["gpus"])


def test_too_few_peers_judge_nothing(bench: Bench) -> None:
    bench.node("gpu01")
    bench.run("gpu01", result(_h100s([790.0, 790.0, 790.0, 400.0])))
    fleet = bench.client.get(FLEET, headers=ADMIN).json()
    assert not any(g["fleet"]["outlier"] for g in fleet["gpus"])
    assert all(not g["fleet"]["judged"] for g in fleet["gpus"])
    assert all(g["limit"] is None for g in fleet["groups"])
    assert "at least 5 are needed" in fleet["gpus"][0]["fleet"]["reason"]


def test_cpu_devices_are_keyed_by_node_and_judged_among_themselves(bench: Bench) -> None:
    cpu = "AMD EPYC 9654"
    for name in ("cpu01", "cpu02", "cpu03", "cpu04", "cpu05", "cpu06"):
        bench.node(name)
        value = 0.35 if name == "cpu06" else 0.5
        run = result([device(0, {"matmul_fp32": value}, name=cpu, kind="cpu", sku=None)])
        bench.run(name, run, gpus=[0])
    figures = _results(bench, node="cpu01")["results"]
    (figure,) = figures
    assert (figure["gpu"], figure["gpu_uuid"], figure["sku"]) == ("cpu01/cpu0", None, f"cpu:{cpu}")
    assert (figure["verdict"], figure["reason"]) == ("unjudged", "a CPU, not a GPU")
    only = bench.client.get(FLEET, params={"outliers": True}, headers=ADMIN).json()
    assert [(g["gpu"], g["sku"]) for g in only["gpus"]] == [("cpu06/cpu0", f"cpu:{cpu}")]
    history = bench.client.get("/api/v1/bench/gpus/cpu06/cpu0/history", headers=ADMIN)
    assert history.status_code == 200, history.text
    assert history.json()["gpu"] == "cpu06/cpu0" and history.json()["runs"][0]["kind"] == "cpu"


def test_a_failed_health_check_fails_the_device_and_a_failed_report_keeps_its_figures(
    bench: Bench,
) -> None:
    bench.node("gpu01")
    checks = {"1": [{"level": "fail", "check": "pcie", "message": "x8 of x16"}]}
    tree = result(
        [
            device(0, {"matmul_bf16": 790.0}, uuid="GPU-a"),
            device(1, {"matmul_bf16": 790.0}, uuid="GPU-b"),
            device(
                2,
                {"matmul_bf16": 790.0, "burn_fp32": 3.0},
                uuid="GPU-c",
                statuses={"burn_fp32": "fail"},
            ),
        ],
        checks=checks,
    )
    request_id = bench.ask_one("gpu01")
    failed = bench.nodes["gpu01"].report(
        request_id, "failed", message="burn miscompared", result=tree
    )
    assert failed.status_code == 200
    passed = {
        gpu: bench.client.get(f"/api/v1/bench/gpus/{gpu}/history", headers=ADMIN).json()["runs"][0][
            "passed"
        ]
        for gpu in ("GPU-a", "GPU-b", "GPU-c")
    }
    assert passed == {"GPU-a": True, "GPU-b": False, "GPU-c": False}
    burn = _results(bench, gpu="GPU-c", test="burn_fp32")["results"][0]
    assert (burn["status"], burn["verdict"], burn["fleet"]) == ("fail", "fail", None)
    assert burn["reason"] == "3 miscompares"
    assert [r["gpu"] for r in _results(bench, verdict="fail")["results"]] == ["GPU-c"]
    stored = bench.get(request_id)
    assert stored["state"] == "failed" and stored["message"] == "burn miscompared"
    assert stored["result"]["checks"]["1"][0]["message"] == "x8 of x16"  # the tree, as sent


def test_a_report_without_a_result_closes_the_request_and_stores_nothing(bench: Bench) -> None:
    bench.node("gpu01")
    request_id = bench.ask_one("gpu01")
    refused = bench.nodes["gpu01"].report(request_id, "refused", message="GPU 0 busy")
    assert refused.status_code == 200
    assert bench.get(request_id)["run_id"] is None
    assert _results(bench)["results"] == []


def test_an_unknown_gpu_model_is_judged_by_the_agents_verdict_and_its_own_fleet(
    bench: Bench,
) -> None:
    bench.node("gpu01")
    tree = result([device(0, {"matmul_bf16": 100.0}, uuid="GPU-z", name="Future GPU", sku=None)])
    tree["judgement"] = [
        {"device": 0, "test": "matmul_bf16", "status": "warn", "ratio": 0.85, "reason": "agent's"}
    ]
    bench.run("gpu01", tree)
    (figure,) = _results(bench)["results"]
    assert (figure["sku"], figure["verdict"], figure["ratio"]) == ("cuda:Future GPU", "warn", 0.85)
    assert H100 not in figure["sku"]
