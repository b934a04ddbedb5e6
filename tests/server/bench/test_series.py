"""The dcmon_bench_* series: in storage for PromQL and the rules (written again every interval,
so they do not go stale after the 5-minute lookback), on /metrics, on the web page, and the
shipped rule firing on them inside a server."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.testclient import TestClient

from agent.wire.catalog import default_catalog
from server.alerting.writeback import MemorySeriesWriter
from server.auth.secrets import sha256_hex
from server.bench.series import BenchSeries
from server.promql.values import get_label
from tests.server.bench.conftest import ADMIN, ADMIN_KEY, Bench, device, result
from tests.server.conftest import START, FakeClock

ALERTS = Path(__file__).resolve().parents[3] / "alerts"


def _fleet(bench: Bench) -> None:
    """Six H100s on gpu01 and gpu02: GPU-1 failed (its matmul under its SKU's fail line, and
    below the fleet too), GPU-5 copies at 70 % of the others (a fleet outlier that passed)."""
    bench.node("gpu01")
    bench.node("gpu02")
    values = [(790.0, 3300.0), (500.0, 3300.0), (792.0, 3300.0)]
    values += [(791.0, 3300.0), (789.0, 3300.0), (790.0, 0.7 * 3300.0)]
    devices = [
        device(i % 3, {"matmul_bf16": m, "memory_copy": c}, uuid=f"GPU-{i}")
        for i, (m, c) in enumerate(values)
    ]
    bench.run("gpu01", result(devices[:3]))
    bench.run("gpu02", result(devices[3:]))


def _query(client: TestClient, expr: str, at: float) -> list[dict[str, Any]]:
    answer = client.get(
        "/prometheus/api/v1/query", params={"query": expr, "time": at}, headers=ADMIN
    )
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["data"]["result"]
    return found


def _series(bench: Bench) -> BenchSeries:
    found: BenchSeries = bench.client.app.state.bench_series.series  # type: ignore[attr-defined]
    return found


def test_the_series_are_queryable_and_stay_visible_while_they_are_written(bench: Bench) -> None:
    _fleet(bench)
    series = _series(bench)
    t0 = START + 60
    series.tick(t0)
    passed = _query(bench.client, "dcmon_bench_passed", t0)
    by_uuid = {r["metric"]["UUID"]: r for r in passed}
    assert {u: r["value"][1] for u, r in by_uuid.items()} == {
        "GPU-0": "1",
        "GPU-1": "0",
        "GPU-2": "1",
        "GPU-3": "1",
        "GPU-4": "1",
        "GPU-5": "1",
    }
    assert by_uuid["GPU-4"]["metric"] == {
        "__name__": "dcmon_bench_passed",
        "instance": "gpu02",
        "gpu": "1",
        "UUID": "GPU-4",
        "modelName": "NVIDIA H100 80GB HBM3",
        "sku": "h100_sxm",
    }
    outliers = _query(bench.client, "dcmon_bench_fleet_outlier == 1", t0)
    assert sorted(r["metric"]["UUID"] for r in outliers) == ["GPU-1", "GPU-5"]
    [ratio] = _query(bench.client, 'dcmon_bench_ratio{UUID="GPU-1", test="matmul_bf16"}', t0)
    assert float(ratio["value"][1]) == 500.0 / 795.0
    [fleet] = _query(bench.client, 'dcmon_bench_fleet_ratio{UUID="GPU-5", test="memory_copy"}', t0)
    assert round(float(fleet["value"][1]), 6) == 0.7
    [last] = _query(bench.client, 'dcmon_bench_last_run_timestamp_seconds{UUID="GPU-0"}', t0)
    assert float(last["value"][1]) == START
    # Written once, a value is gone after PromQL's 5-minute lookback ...
    assert _query(bench.client, "dcmon_bench_passed", t0 + 301) == []
    # ... so the loop writes it again on every slot of the grid, and only then
    assert series.tick(t0 + 1) == 59.0  # not yet: nothing written
    for k in range(1, 7):
        series.tick(t0 + 60 * k)
    assert series.rounds == 7
    assert len(_query(bench.client, "dcmon_bench_passed", t0 + 400)) == 6


def test_only_the_leader_writes_the_series(bench: Bench) -> None:
    _fleet(bench)

    class Follower:
        shared = True
        is_leader = False

        def check(self) -> bool:
            return False

        def close(self) -> None:
            pass

    writer = MemorySeriesWriter()
    services = bench.services
    follower = BenchSeries(services.bench, writer, Follower(), 60.0)
    follower.tick(START + 60)
    assert writer.batches == []
    leader = BenchSeries(services.bench, writer, services.leader, 60.0)
    leader.tick(START + 60)
    [(node, _ts, count)] = writer.batches
    assert node == "dcmon-bench" and count == 6 * 3 + 12 + 12  # 3 per device, 2 ratios per figure
    names = {get_label(raw.labels, "__name__") for raw in writer.series.select([], 0, 2**62)}
    assert names == {
        "dcmon_bench_passed",
        "dcmon_bench_last_run_timestamp_seconds",
        "dcmon_bench_fleet_outlier",
        "dcmon_bench_ratio",
        "dcmon_bench_fleet_ratio",
    }


def test_metrics_expose_the_series_with_catalog_types(bench: Bench) -> None:
    text = bench.client.get("/metrics", headers=ADMIN).text
    assert "dcmon_bench_" not in text  # no result, no series
    _fleet(bench)
    text = bench.client.get("/metrics", headers=ADMIN).text
    line = next(x for x in text.splitlines() if x.startswith('dcmon_bench_passed{UUID="GPU-1"'))
    assert line == (
        'dcmon_bench_passed{UUID="GPU-1",gpu="1",instance="gpu01",'
        'modelName="NVIDIA H100 80GB HBM3",sku="h100_sxm"} 0'
    )
    assert "# TYPE dcmon_bench_fleet_outlier gauge" in text
    catalog = bench.services.catalog
    assert catalog is default_catalog()  # the shipped catalog lists them (source "server")
    for name in ("dcmon_bench_passed", "dcmon_bench_fleet_outlier", "dcmon_bench_ratio"):
        assert catalog[name].source == "server"
        assert f"# HELP {name} {catalog[name].help}" in text
    device_labels = {"UUID", "gpu", "instance", "modelName", "sku"}
    assert catalog["dcmon_bench_passed"].label_set == device_labels
    assert catalog["dcmon_bench_ratio"].label_set == device_labels | {"test"}


def test_the_web_page_lists_each_devices_latest_run(bench: Bench) -> None:
    page = bench.client.get("/benchmarks", headers=ADMIN).text
    assert 'id="no-bench"' in page
    _fleet(bench)
    bench.node("gpu03")
    open_request = bench.ask_one("gpu03")
    page = bench.client.get("/benchmarks", headers=ADMIN).text
    table = page[
        page.index('<table id="bench">') : page.index("</table>", page.index('id="bench"'))
    ]
    rows = table.split("<tr>")[2:]
    assert len(rows) == 6
    assert "GPU-1" in rows[0] and "failed" in rows[0]  # failed first
    assert "0.63 \u00d7 (matmul_bf16)" in rows[0]  # the multiplication sign
    assert "GPU-5" in rows[1] and "outlier" in rows[1] and "memory_copy: " in rows[1]
    assert all("passed" in row for row in rows[1:])
    requests = page[page.index('<table id="bench-requests">') :]
    assert open_request[:12] in requests.split("</tr>")[1]  # the open one first
    assert "pending" in requests.split("</tr>")[1]


def test_the_shipped_rule_fires_on_a_failed_run(
    make_app: Callable[..., FastAPI], clock: FakeClock
) -> None:
    app = make_app(
        open_reads=False,
        admin_key_sha256=[sha256_hex(ADMIN_KEY)],
        rule_files=[str(ALERTS / "bench.yaml")],
        rule_query_offset_seconds=0,
    )
    with TestClient(app) as client:
        bench = Bench(client, clock)
        alerting = client.app.state.alerting  # type: ignore[attr-defined]
        alerting.stop()
        alerting.evaluator.lead()
        _fleet(bench)
        phase = alerting.evaluator.snapshot()[0].phase_ms / 1000
        slot = (START - phase) // 60 * 60 + phase + 60
        clock.now = slot - 5
        for node in bench.nodes.values():
            node.push()  # up and current, so their alerts are not held
        assert _series(bench).write(slot - 5) == 42
        clock.now = slot
        alerting.evaluator.tick(slot)
        alerts = client.get("/api/v1/alerts", headers=ADMIN).json()["alerts"]
        fired = sorted((a["rule"], a["labels"]["UUID"], a["state"]) for a in alerts)
        assert fired == [
            ("GpuBenchmarkFailed", "GPU-1", "firing"),
            ("GpuBenchmarkFleetOutlier", "GPU-1", "firing"),
            ("GpuBenchmarkFleetOutlier", "GPU-5", "firing"),
        ]
        failed = next(a for a in alerts if a["rule"] == "GpuBenchmarkFailed")
        assert failed["labels"]["instance"] == "gpu01"
        assert failed["annotations"]["summary"] == "GPU 1 on gpu01 failed its latest benchmark"
