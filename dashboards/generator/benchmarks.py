"""The benchmarks dashboard: each device's latest run against its SKU and its fleet.

Stage: dashboards (build time). Input: none; output: the ``Dashboard`` spec of
``dcmon-benchmarks`` over the server's ``dcmon_bench_*`` series (one set per device with its
``instance``, ``gpu``, ``UUID``, ``modelName`` and ``sku``): passed or failed, fleet outliers,
each figure's ratio to its SKU's reference and to its SKU's fleet median, and how old the
latest runs are.
"""

from __future__ import annotations

from dashboards.generator import thresholds as t
from dashboards.generator.common import GPU_LINK, GPU_ROW_LINK
from dashboards.generator.spec import (
    BAR_GAUGE,
    TABLE,
    TIME_SERIES,
    Dashboard,
    Panel,
    Query,
    Row,
    Step,
    ValueMap,
    stat,
)

DEVICE = "instance, gpu, UUID, modelName, sku"
VS_SKU = t.falling(t.SKU_WARN_RATIO, t.SKU_FAIL_RATIO)
VS_FLEET = (Step(None, "orange"), Step(t.FLEET_OUTLIER_RATIO.value, "green"))
PASSED = (ValueMap("0", "failed", "red"), ValueMap("1", "passed", "green"))
OUTLIER = (ValueMap("0", "no", "green"), ValueMap("1", "yes", "orange"))

VERDICTS = Row(
    "Verdicts",
    (
        stat("Devices benchmarked", "count(dcmon_bench_passed)"),
        stat("Passed", "sum(dcmon_bench_passed)"),
        stat("Failed", "sum(dcmon_bench_passed == bool 0)", steps=t.any_is_bad(),
             description="The latest run failed: a test failed or raised, a figure fell below "
             "its SKU's fail line, or a health check failed (GpuBenchmarkFailed)."),
        stat("Fleet outliers", "sum(dcmon_bench_fleet_outlier)", steps=t.any_is_bad("orange"),
             description="A latest figure under 0.9 x its SKU's fleet median and outside its "
             "spread (GpuBenchmarkFleetOutlier)."),
        stat("Lowest figure vs fleet", "min(dcmon_bench_fleet_ratio)", "percentunit",
             steps=VS_FLEET),
        stat("Oldest latest run", "time() - min(dcmon_bench_last_run_timestamp_seconds)", "s"),
    ),
)  # fmt: skip

DEVICES = Row(
    "Devices",
    (
        Panel("Devices", TABLE, (
            Query(f"max by ({DEVICE}) (dcmon_bench_passed)", column="verdict",
                  mappings=PASSED),
            Query(f"max by ({DEVICE}) (dcmon_bench_fleet_outlier)", column="fleet outlier",
                  mappings=OUTLIER),
            Query(f"min by ({DEVICE}) (dcmon_bench_ratio)", column="lowest vs SKU",
                  unit="percentunit"),
            Query(f"min by ({DEVICE}) (dcmon_bench_fleet_ratio)", column="lowest vs fleet",
                  unit="percentunit"),
            Query(f"time() - max by ({DEVICE}) (dcmon_bench_last_run_timestamp_seconds)",
                  column="latest run", unit="s"),
        ), width=24, height=10, link=GPU_ROW_LINK,
            columns=(("instance", "node"), ("gpu", "gpu"), ("modelName", "model"),
                     ("sku", "SKU"), ("UUID", "UUID"))),
        Panel("Figures of the fleet outliers", TABLE, (
            Query("dcmon_bench_fleet_ratio and on (instance, UUID) "
                  "(dcmon_bench_fleet_outlier == 1)", column="vs fleet median"),
            Query("dcmon_bench_ratio and on (instance, UUID) (dcmon_bench_fleet_outlier == 1)",
                  column="vs SKU reference"),
        ), "percentunit", width=24, height=7, steps=VS_FLEET, link=GPU_ROW_LINK,
            columns=(("instance", "node"), ("gpu", "gpu"), ("sku", "SKU"), ("test", "test"))),
    ),
)  # fmt: skip

RATIOS = Row(
    "Figures",
    (
        Panel("Lowest figure vs its SKU's reference, per test", BAR_GAUGE, (
            Query("min by (sku, test) (dcmon_bench_ratio)", "{{sku}} {{test}}"),
        ), "percentunit", width=12, height=9, minimum=0.5, maximum=1.2, steps=VS_SKU,
            description="Measured reference: warn below 0.90 x, fail below 0.75 x (against "
            "the spec only: 0.60 and 0.45)."),
        Panel("Lowest figure vs the fleet median, per test", BAR_GAUGE, (
            Query("min by (sku, test) (dcmon_bench_fleet_ratio)", "{{sku}} {{test}}"),
        ), "percentunit", width=12, height=9, minimum=0.5, maximum=1.2, steps=VS_FLEET),
        Panel("Lowest figure vs fleet, per device", TIME_SERIES, (
            Query("min by (instance, gpu) (dcmon_bench_fleet_ratio)",
                  "{{instance}} GPU {{gpu}}"),
        ), "percentunit", width=12, steps=VS_FLEET, link=GPU_LINK),
        Panel("Age of the latest run, per device", BAR_GAUGE, (
            Query("time() - dcmon_bench_last_run_timestamp_seconds", "{{instance}} GPU {{gpu}}"),
        ), "s", width=12, link=GPU_LINK),
    ),
)  # fmt: skip

DASHBOARD = Dashboard(
    "benchmarks",
    "dcmon / Benchmarks",
    "Each device's latest benchmark run: passed or failed against its SKU, outliers of its "
    "SKU's fleet, and every figure's ratios.",
    (VERDICTS, DEVICES, RATIOS),
    time_from="now-24h",
)
