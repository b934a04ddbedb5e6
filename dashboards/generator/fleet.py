"""The fleet dashboard: every node and GPU at a glance, the outliers first.

Stage: dashboards (build time). Input: none; output: the ``Dashboard`` spec of ``dcmon-fleet``:
nodes up, GPUs lost or hot, fleet utilisation, power and temperature over time, the hottest
and most idle GPUs, a node table, firing alerts, open hints and the benchmark verdicts.
"""

from __future__ import annotations

from dashboards.generator import thresholds as t
from dashboards.generator.common import (
    GPU_KEY,
    GPU_LINK,
    NODE_LINK,
    NODE_ROW_LINK,
    RANGE,
    RATE,
)
from dashboards.generator.spec import (
    BAR_GAUGE,
    MIB_BYTES,
    TABLE,
    TIME_SERIES,
    Dashboard,
    Panel,
    Query,
    Row,
    stat,
)

HOT = t.rising(t.GPU_TEMP_CLEAR_C, t.GPU_TEMP_HIGH_C)
NEAR_SLOWDOWN = (
    f"DCGM_FI_DEV_GPU_TEMP >= bool on ({GPU_KEY}) group_left () "
    f"(max by ({GPU_KEY}) (DCGM_FI_DEV_SLOWDOWN_TEMP) - {t.GPU_TEMP_MARGIN_C.value:g})"
)


GLANCE = Row(
    "At a glance",
    (
        stat("Nodes up", "sum(dcmon_node_up)", description="Nodes that pushed within their "
              "staleness window (3 push intervals)."),
        stat("Nodes down", "sum(dcmon_node_up == bool 0)", steps=t.any_is_bad(),
              description="Known nodes silent past their staleness window (NodeDown fires "
              "2 minutes later)."),
        stat("GPUs", "count(dcmon_gpu_up)"),
        stat("GPUs lost", "sum(dcmon_gpu_up == bool 0)", steps=t.any_is_bad(),
              description="GPUs that stopped answering NVML (GpuLost)."),
        stat("GPUs within 5 °C of slowdown", f"sum({NEAR_SLOWDOWN})", steps=t.any_is_bad(),
              description="GPUs at or above their own slowdown temperature minus 5 °C, "
              "where GpuTemperatureHigh starts counting."),
        stat("GPU utilisation", "avg(DCGM_FI_DEV_GPU_UTIL)", "percent"),
        stat("GPU power", "sum(DCGM_FI_DEV_POWER_USAGE)", "watt"),
        stat("GPU energy in range", f"sum(increase(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
              f"[{RANGE}])) / 3.6e9", "kwatth", decimals=2,
              description="From the GPUs' energy counters (mJ), over the dashboard's range."),
        stat("Hottest GPU", "max(DCGM_FI_DEV_GPU_TEMP)", "celsius", steps=HOT),
        stat("Alerts firing", 'count by (severity) (ALERTS{alertstate="firing"})',
              no_value="0", steps=t.any_is_bad("orange")),
        stat("Open hints", "sum(dcmon_hint_open)", no_value="0",
              description="Rebalancing hints new or acknowledged (dcmon's query API only: "
              "the hint series are not on /metrics)."),
        stat("Benchmark failures", "sum(dcmon_bench_passed == bool 0)", steps=t.any_is_bad(),
              description="Devices whose latest benchmark run failed (GpuBenchmarkFailed)."),
    ),
)  # fmt: skip

OVER_TIME = Row(
    "Fleet over time",
    (
        Panel("GPU utilisation by node", TIME_SERIES, (
            Query("avg by (instance) (DCGM_FI_DEV_GPU_UTIL)", "{{instance}}"),
            Query("avg(DCGM_FI_DEV_GPU_UTIL)", "fleet"),
        ), "percent", minimum=0, maximum=100, link=NODE_LINK),
        Panel("GPU power by node", TIME_SERIES, (
            Query("sum by (instance) (DCGM_FI_DEV_POWER_USAGE)", "{{instance}}"),
        ), "watt", stack=True, link=NODE_LINK),
        Panel("Hottest GPU by node", TIME_SERIES, (
            Query("max by (instance) (DCGM_FI_DEV_GPU_TEMP)", "{{instance}}"),
        ), "celsius", steps=HOT, link=NODE_LINK),
        Panel("GPU memory used by node", TIME_SERIES, (
            Query(f"sum by (instance) (DCGM_FI_DEV_FB_USED) * {MIB_BYTES}", "{{instance}}"),
        ), "bytes", stack=True, link=NODE_LINK),
        Panel("GPUs by utilisation", TIME_SERIES, (
            Query("sum(DCGM_FI_DEV_GPU_UTIL >= bool 50)", "busy (50 % or more)"),
            Query("sum(DCGM_FI_DEV_GPU_UTIL > bool 0) - sum(DCGM_FI_DEV_GPU_UTIL >= bool 50)",
                  "light (under 50 %)"),
            Query("sum(DCGM_FI_DEV_GPU_UTIL == bool 0)", "idle (0 %)"),
        ), stack=True),
        Panel("Alerts firing by severity", TIME_SERIES, (
            Query('count by (severity) (ALERTS{alertstate="firing"})', "{{severity}}"),
        ), stack=True),
    ),
)  # fmt: skip

TOP = Row(
    "Top GPUs",
    (
        Panel("Hottest GPUs", BAR_GAUGE, (
            Query("topk(10, DCGM_FI_DEV_GPU_TEMP)", "{{instance}} GPU {{gpu}}"),
        ), "celsius", width=12, height=10, steps=HOT, minimum=20, maximum=100, link=GPU_LINK),
        Panel("Most idle GPUs (mean utilisation over the range)", BAR_GAUGE, (
            Query(f"bottomk(10, avg_over_time(DCGM_FI_DEV_GPU_UTIL[{RANGE}]))",
                  "{{instance}} GPU {{gpu}}"),
        ), "percent", width=12, height=10, minimum=0, maximum=100, link=GPU_LINK),
    ),
)  # fmt: skip

NODES = Row(
    "Nodes",
    (
        Panel("Nodes", TABLE, (
            Query("max by (instance) (dcmon_node_up)", column="up", unit="bool_yes_no"),
            Query("count by (instance) (dcmon_gpu_up)", column="GPUs"),
            Query("sum by (instance) (dcmon_gpu_up == bool 0)", column="GPUs lost"),
            Query("avg by (instance) (DCGM_FI_DEV_GPU_UTIL)", column="GPU utilisation",
                  unit="percent"),
            Query("sum by (instance) (DCGM_FI_DEV_POWER_USAGE)", column="GPU power",
                  unit="watt"),
            Query("max by (instance) (DCGM_FI_DEV_GPU_TEMP)", column="hottest GPU",
                  unit="celsius"),
            Query(f'1 - avg by (instance) (rate(node_cpu_seconds_total{{mode="idle"}}[{RATE}])) '
                  "and on (instance) dcmon_node_up", column="CPU busy", unit="percentunit"),
        ), width=24, height=9, columns=(("instance", "node"),), link=NODE_ROW_LINK),
    ),
)  # fmt: skip

ALERTS_HINTS = Row(
    "Alerts, hints and benchmarks",
    (
        Panel("Firing alerts", TABLE, (
            Query('time() - (ALERTS_FOR_STATE and ignoring (alertstate) '
                  'ALERTS{alertstate="firing"})', column="active for"),
        ), "s", width=12, height=8,
            columns=(("alertname", "alert"), ("severity", "severity"), ("instance", "node"),
                     ("gpu", "GPU"))),
        Panel("Open hints by kind", BAR_GAUGE, (
            Query("dcmon_hint_open", "{{kind}}"),
        ), width=6, height=8, description="Open rebalancing hints per kind (dcmon's query "
            "API only: the hint series are not on /metrics)."),
        Panel("Benchmark verdicts", BAR_GAUGE, (
            Query("sum(dcmon_bench_passed)", "passed"),
            Query("sum(dcmon_bench_passed == bool 0)", "failed"),
            Query("sum(dcmon_bench_fleet_outlier)", "fleet outliers"),
        ), width=6, height=8, description="Devices by their latest benchmark run: passed or "
            "failed against their SKU, and slower than their SKU's fleet median."),
        Panel("XIDs in range", TABLE, (
            Query(f"sum by (instance, gpu, xid) (increase(dcmon_gpu_xid_errors_total[{RANGE}]))",
                  column="XIDs"),
        ), width=24, height=6, decimals=0,
            columns=(("instance", "node"), ("gpu", "GPU"), ("xid", "XID")),
            description="GPUs that reported an XID since their agent started, with how many "
            "fell in the range (the agent's XID counter, per code)."),
    ),
)  # fmt: skip

DASHBOARD = Dashboard(
    "fleet",
    "dcmon / Fleet",
    "Every node and GPU dcmon knows: health, utilisation, power, temperature, alerts, hints "
    "and benchmark verdicts.",
    (GLANCE, OVER_TIME, TOP, NODES, ALERTS_HINTS),
)
