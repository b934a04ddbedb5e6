"""The differential test's PromQL queries: hand-written ones and Grafana dashboards' targets.

Placeholders, filled by ``fill``: ``$node`` (node_exporter's ``instance``), ``$job`` (its
job, ``node``), ``$__rate_interval``, ``$instance`` and ``$gpu`` (dashboard 12239's variables:
the agent's node and all GPUs as Grafana writes "All" for a regex). Every query is asked as an
instant query and as a range query. Ranges and steps are whole seconds and the evaluation times
sit off every sample's millisecond, which keeps Prometheus 2.42's closed window edges (range
selectors, lookback, subquery grids) from meeting a sample: the only way 2.42 and Prometheus 3
(dcmon) differ on these queries.

Queries whose answers Prometheus 2.42 and Prometheus 3 define differently are left out, each
with its reason next to where it would be (see the reference's section 0).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

RATE_INTERVAL = "4s"  # Grafana's $__rate_interval at a 1 s scrape interval: 4 x scrape interval
GPU_ALL = "(0|1)"  # Grafana's regex for "All" of the agent's two simulated GPUs

N = 'instance="$node",job="$job"'  # node_exporter's series
CPU = f"node_cpu_seconds_total{{{N}}}"
# Selectors -----------------------------------------------------------------------------------
SELECTORS = (
    f'node_load1{{{N}}}',
    'up',
    'up{job=~"node|prometheus"}',
    'up{job!~"node|prometheus"}',
    'up{job!="node"}',
    f'node_cpu_seconds_total{{{N},mode=~"i.*"}}',
    f'node_cpu_seconds_total{{{N},mode!~"idle|iowait",cpu="0"}}',
    f'{{__name__=~"node_load(1|5|15)",{N}}}',
    '{__name__=~"node_memory_Mem.*_bytes",job="node"}',
    f'node_network_receive_bytes_total{{{N},device!="lo"}}',
    'DCGM_FI_DEV_GPU_TEMP',
    'DCGM_FI_DEV_GPU_TEMP{gpu="1",modelName=~"NVIDIA.*"}',
    'DCGM_FI_DEV_POWER_USAGE{UUID=~"GPU-.*"}',
    'dcmon_gpu_nvlink_up{link=~"1[0-7]?"}',
    'node_filesystem_avail_bytes{fstype=~"ext4|xfs"}',
    'prometheus_http_requests_total{handler=~"/-/.*|/api/v1/query.*"}',
    f'node_load1{{{N}}} offset 20s',
    f'node_load1{{{N}}} @ start()',
    f'node_load1{{{N}}} @ end()',
    f'node_load1{{{N}}} @ end() offset 10s',
    'scrape_samples_scraped',
    f'timestamp(node_load1{{{N}}})',
    f'timestamp(node_load1{{{N}}} offset 15s)',
    'count({__name__=~"node_.+",job="node"})',
)  # fmt: skip
# Range functions -----------------------------------------------------------------------------
RANGE = (
    f'rate({CPU}[10s])',
    f'rate({CPU}[4s])',
    f'irate({CPU}[10s])',
    f'increase({CPU}[20s])',
    f'rate(node_network_receive_bytes_total{{{N}}}[15s])',
    f'irate(node_network_transmit_packets_total{{{N}}}[5s])',
    'rate(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION[10s])',
    'increase(prometheus_http_requests_total[30s])',
    'rate(node_context_switches_total[10s] offset 10s)',
    'rate(node_intr_total[10s] @ end())',
    f'delta(node_memory_MemFree_bytes{{{N}}}[20s])',
    f'idelta(node_memory_Active_bytes{{{N}}}[10s])',
    'delta(DCGM_FI_DEV_GPU_TEMP[15s])',
    f'deriv(node_memory_MemFree_bytes{{{N}}}[20s])',
    'deriv(DCGM_FI_DEV_POWER_USAGE[20s])',
    f'predict_linear(node_memory_MemFree_bytes{{{N}}}[20s], 60)',
    'predict_linear(DCGM_FI_DEV_FB_USED[15s], 3600)',
    f'avg_over_time(node_load1{{{N}}}[20s])',
    'min_over_time(DCGM_FI_DEV_GPU_TEMP[20s])',
    'max_over_time(DCGM_FI_DEV_GPU_TEMP[20s])',
    'sum_over_time(DCGM_FI_DEV_POWER_USAGE[10s])',
    'count_over_time(DCGM_FI_DEV_POWER_USAGE[10s])',
    f'count_over_time(node_load1{{{N}}}[30s])',
    f'last_over_time(node_memory_MemFree_bytes{{{N}}}[10s])',
    'stddev_over_time(DCGM_FI_DEV_POWER_USAGE[20s])',
    'stdvar_over_time(DCGM_FI_DEV_GPU_TEMP[20s])',
    'quantile_over_time(0.9, DCGM_FI_DEV_POWER_USAGE[20s])',
    'quantile_over_time(0.25, DCGM_FI_DEV_GPU_UTIL[20s])',
    'present_over_time(DCGM_FI_DEV_GPU_UTIL[10s])',
    f'changes(node_memory_MemFree_bytes{{{N}}}[20s])',
    'changes(DCGM_FI_DEV_GPU_TEMP[20s])',
    f'resets({CPU}[20s])',
    'resets(DCGM_FI_DEV_GPU_UTIL[20s])',
    # Not holt_winters: 2.42's name for what Prometheus 3 (so dcmon) calls the experimental
    # double_exponential_smoothing, which 2.42 does not know; neither name works on both.
    f'absent_over_time(node_load1{{{N}}}[10s])',
    'absent_over_time(nonexistent_metric{job="x"}[10s])',
    'rate(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION[1s])',  # one sample per window: nothing
    'last_over_time(DCGM_FI_DEV_GPU_TEMP[1s])',
    'avg_over_time(DCGM_FI_DEV_GPU_TEMP[10s] offset 5s)',
    'present_over_time(nonexistent_metric[5s])',
)  # fmt: skip
# Aggregations --------------------------------------------------------------------------------
AGGREGATIONS = (
    f'sum(rate({CPU}[10s]))',
    f'sum by (mode) (rate({CPU}[10s]))',
    f'sum without (cpu) (rate({CPU}[10s]))',
    f'avg by (mode) (rate({CPU}[10s]))',
    'avg(DCGM_FI_DEV_GPU_TEMP)',
    'min(DCGM_FI_DEV_GPU_TEMP)',
    'max by (modelName) (DCGM_FI_DEV_POWER_USAGE)',
    f'count by (cpu) ({CPU})',
    f'count(count by (cpu) ({CPU}))',
    'count without (link) (dcmon_gpu_nvlink_up)',
    'group by (job) (up)',
    'group(DCGM_FI_DEV_GPU_TEMP)',
    'stddev(DCGM_FI_DEV_GPU_TEMP)',
    'stdvar by (job) (scrape_samples_scraped)',
    f'stddev without (cpu) (rate({CPU}[10s]))',
    # topk/bottomk break ties by input order, which is each engine's own: the inputs here
    # are counters of distinct values (CPU rates over 10 s tie often, at 10 ms resolution).
    f'topk(3, {CPU})',
    f'topk by (cpu) (1, {CPU})',
    f'bottomk(1, node_cpu_seconds_total{{{N},mode="idle"}})',
    'bottomk(1, DCGM_FI_DEV_POWER_USAGE)',  # temperatures are whole degrees: ties
    f'quantile(0.5, rate({CPU}[10s]))',
    f'quantile by (mode) (0.9, rate({CPU}[10s]))',
    'count_values("value", up)',
    'count_values by (job) ("samples", scrape_series_added)',
    'count_values("gpu_temp", DCGM_FI_DEV_GPU_TEMP)',
    'count_values("watts", DCGM_FI_DEV_POWER_USAGE)',  # float values as label text
    f'count_values("rate", rate({CPU}[10s]))',
    'count_values("ratio", DCGM_FI_DEV_POWER_USAGE / 7)',
    'quantile(1.5, DCGM_FI_DEV_GPU_TEMP)',
    'quantile(-0.5, DCGM_FI_DEV_GPU_TEMP)',
    'topk(scalar(count(up)) - 2, DCGM_FI_DEV_POWER_USAGE)',
    'stdvar(DCGM_FI_DEV_GPU_TEMP{gpu="0"})',
    'topk(2.7, DCGM_FI_DEV_POWER_USAGE)',
    'topk(0, DCGM_FI_DEV_POWER_USAGE)',
    'bottomk by (gpu) (1, dcmon_gpu_nvlink_rx_bytes_total)',
    'quantile without (gpu, UUID, pci_bus_id, device) (0.5, DCGM_FI_DEV_GPU_TEMP)',
    'sum by (nonexistent_label) (up)',
    'sum by (job) (rate({__name__=~"prometheus_http_requests_total|'
    'promhttp_metric_handler_requests_total"}[10s]))',
    'sum by (job) (scrape_samples_scraped)',
    'max without (le) (prometheus_http_request_duration_seconds_bucket)',
    'sum(sum_over_time(DCGM_FI_DEV_POWER_USAGE[10s])) by (gpu)',
)  # fmt: skip
# Binary operations and set operations ---------------------------------------------------------
BINARY = (
    f'node_memory_MemAvailable_bytes{{{N}}} / node_memory_MemTotal_bytes{{{N}}}',
    f'1 - node_memory_MemFree_bytes{{{N}}} / node_memory_MemTotal_bytes{{{N}}}',
    f'node_filesystem_size_bytes{{{N}}} - node_filesystem_avail_bytes{{{N}}}',
    'DCGM_FI_DEV_SM_CLOCK * 1000000',
    'DCGM_FI_DEV_FB_USED / (DCGM_FI_DEV_FB_USED + DCGM_FI_DEV_FB_FREE) * 100',
    '2 ^ (DCGM_FI_DEV_GPU_TEMP / 20)',
    'DCGM_FI_DEV_GPU_TEMP % 7',
    '-DCGM_FI_DEV_GPU_TEMP',
    # Filters keep both GPUs or one by its label: simulated temperatures wander with the load,
    # and a threshold between them could leave nothing.
    'DCGM_FI_DEV_GPU_TEMP > 20',
    'DCGM_FI_DEV_GPU_TEMP > bool 50',
    'DCGM_FI_DEV_GPU_TEMP < bool 60',
    'DCGM_FI_DEV_GPU_TEMP <= bool DCGM_FI_DEV_MEMORY_TEMP',
    'DCGM_FI_DEV_GPU_TEMP == bool on(gpu) DCGM_FI_DEV_GPU_TEMP',
    'up == 1',
    'up != bool 0',
    f'rate({CPU}[10s]) > 0.01',
    'DCGM_FI_DEV_POWER_USAGE / on(gpu) DCGM_FI_DEV_ENFORCED_POWER_LIMIT',
    'DCGM_FI_DEV_POWER_USAGE / ignoring(UUID, pci_bus_id) DCGM_FI_DEV_ENFORCED_POWER_LIMIT',
    'dcmon_gpu_nvlink_up * on(gpu) group_left(modelName) DCGM_FI_DEV_GPU_UTIL',
    'dcmon_gpu_nvlink_up + ignoring(link) group_left DCGM_FI_DEV_GPU_TEMP',
    'DCGM_FI_DEV_GPU_TEMP - on(gpu) group_right dcmon_gpu_nvlink_up',
    f'rate({CPU}[10s]) / on(instance, cpu) group_left '
    f'sum by (instance, cpu) (rate({CPU}[10s]))',
    f'node_uname_info{{{N}}} * on(instance) group_right(release) node_load1',
    'up and on(job) scrape_samples_scraped > 100',
    'up or DCGM_FI_DEV_GPU_TEMP',
    'DCGM_FI_DEV_GPU_TEMP unless DCGM_FI_DEV_GPU_TEMP{gpu="1"} > 20',
    'DCGM_FI_DEV_GPU_TEMP and DCGM_FI_DEV_GPU_UTIL >= 0',
    'scrape_duration_seconds unless on(job) up{job="node"}',
    # atan2 keeps __name__ in 2.42 and drops it in Prometheus 3: "* 1" drops it in both.
    '(DCGM_FI_DEV_GPU_TEMP atan2 DCGM_FI_DEV_MEMORY_TEMP) * 1',
    'vector(1) + on() group_left sum(up)',
    'scalar(sum(up)) * DCGM_FI_DEV_GPU_TEMP',
    '(DCGM_FI_DEV_GPU_TEMP > 0) * 0 + 1',
)  # fmt: skip
# Subqueries ----------------------------------------------------------------------------------
SUBQUERIES = (
    f'max_over_time(rate({CPU}[5s])[30s:5s])',
    'avg_over_time(DCGM_FI_DEV_GPU_TEMP[20s:2s])',
    # [20s:] steps at the global evaluation interval, 1m in both (promql_stack's config)
    f'min_over_time(sum(rate({CPU}[4s]))[20s:])',
    'rate(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION[10s:1s])',
    'deriv(avg(DCGM_FI_DEV_POWER_USAGE)[30s:3s])',
    f'sum_over_time(node_load1{{{N}}}[20s:5s] offset 10s)',
    'max_over_time(max_over_time(DCGM_FI_DEV_GPU_TEMP[4s])[20s:4s])',
    'count_over_time(up[15s:5s] @ end())',
)  # fmt: skip
# Functions: labels, histograms, time, math, absent, sort, clamp ------------------------------
FUNCTIONS = (
    'label_replace(up, "port", "$1", "instance", ".*:(.*)")',
    'label_replace(DCGM_FI_DEV_GPU_TEMP, "gpu_name", "gpu-$1", "gpu", "(.*)")',
    'label_replace(up, "nothing", "x", "instance", "no-match")',
    'label_join(DCGM_FI_DEV_GPU_TEMP, "where", "/", "instance", "gpu", "device")',
    'histogram_quantile(0.9, rate(prometheus_http_request_duration_seconds_bucket[20s]))',
    'histogram_quantile(0.5, sum by (le) (rate(prometheus_http_request_duration_seconds_bucket'
    '[20s])))',
    'histogram_quantile(0.99, sum by (le, handler) (prometheus_http_response_size_bytes_bucket))',
    'histogram_quantile(0.75, dcmon_server_ingest_duration_seconds_bucket)',
    'histogram_quantile(0.5, rate(dcmon_server_ingest_duration_seconds_bucket[15s]))',
    'histogram_quantile(0.9, prometheus_tsdb_compaction_chunk_range_seconds_bucket)',
    'histogram_quantile(0, rate(prometheus_http_request_duration_seconds_bucket[20s]))',
    'histogram_quantile(1, rate(prometheus_http_request_duration_seconds_bucket[20s]))',
    'histogram_quantile(1.5, dcmon_server_ingest_duration_seconds_bucket)',
    'histogram_quantile(-1, dcmon_server_ingest_duration_seconds_bucket)',
    'histogram_quantile(0.5, sum without (instance) (dcmon_server_ingest_duration_seconds_bucket))',
    'label_replace(DCGM_FI_DEV_GPU_TEMP, "x", "$2-$1", "UUID", "GPU-([0-9a-f]+)-(.*)")',
    'label_replace(up, "instance", "", "instance", ".*")',
    'label_replace(up, "job", "${1}_x", "job", "(n.*)")',
    'label_join(up, "copy", "", "job")',
    'round(DCGM_FI_DEV_GPU_TEMP / 2)',
    'round(-DCGM_FI_DEV_GPU_TEMP / 2)',
    'exp(DCGM_FI_DEV_GPU_TEMP * 100)',
    'ln(DCGM_FI_DEV_GPU_TEMP * 0)',
    'sqrt(-DCGM_FI_DEV_GPU_TEMP)',
    'DCGM_FI_DEV_GPU_TEMP / 0',
    '(DCGM_FI_DEV_GPU_TEMP - DCGM_FI_DEV_GPU_TEMP) / 0',
    'asin(DCGM_FI_DEV_GPU_UTIL / 100)',
    'acosh(DCGM_FI_DEV_GPU_TEMP)',
    'atanh(DCGM_FI_DEV_GPU_UTIL / 200)',
    f'time() - node_boot_time_seconds{{{N}}}',
    f'timestamp(timestamp(node_load1{{{N}}}))',
    # a negative offset inside a subquery ten seconds back: reads nothing after the eval time
    f'max_over_time((node_load1{{{N}}} offset -5s)[30s:5s] offset 10s)',
    f'predict_linear(node_memory_Active_bytes{{{N}}}[20s], -30)',
    'time()',
    'timestamp(up) - time()',
    f'minute(node_time_seconds{{{N}}})',
    f'hour(node_boot_time_seconds{{{N}}})',
    f'day_of_week(node_time_seconds{{{N}}})',
    f'days_in_month(node_time_seconds{{{N}}})',
    'year()',
    'month(vector(time()))',
    'abs(-DCGM_FI_DEV_GPU_TEMP)',
    'ceil(DCGM_FI_DEV_POWER_USAGE)',
    'floor(DCGM_FI_DEV_POWER_USAGE)',
    'round(DCGM_FI_DEV_POWER_USAGE, 0.5)',
    'sqrt(DCGM_FI_DEV_POWER_USAGE)',
    'exp(DCGM_FI_DEV_GPU_TEMP / 100)',
    'ln(DCGM_FI_DEV_POWER_USAGE)',
    'log2(DCGM_FI_DEV_FB_USED + 1)',
    'log10(DCGM_FI_DEV_FB_USED + 1)',
    'sgn(DCGM_FI_DEV_GPU_TEMP - 50)',
    'sin(DCGM_FI_DEV_GPU_TEMP)',
    'cos(DCGM_FI_DEV_GPU_TEMP)',
    'tanh(DCGM_FI_DEV_GPU_TEMP / 100)',
    'deg(rad(DCGM_FI_DEV_GPU_TEMP))',
    'clamp(DCGM_FI_DEV_GPU_TEMP, 40, 60)',
    'clamp_min(DCGM_FI_DEV_GPU_TEMP, 55)',
    'clamp_max(DCGM_FI_DEV_GPU_TEMP, 55)',
    'absent(nonexistent_metric{job="x"})',
    'absent(up{job="node"})',
    'sort(DCGM_FI_DEV_POWER_USAGE)',  # instant answers of sort* are compared in order too
    'sort_desc(scrape_samples_scraped)',
    'sort_desc(count_values("temp", DCGM_FI_DEV_GPU_TEMP))',
    'sort(rate(prometheus_http_requests_total[20s]) > 0)',
    'absent(nonexistent_metric{job="x",instance=~"y.*"})',
    'absent(sum(nonexistent_metric))',
    'absent_over_time(nonexistent_metric{a="b",c!="d"}[5s])',
    'scalar(DCGM_FI_DEV_GPU_TEMP)',
    'DCGM_FI_DEV_GPU_TEMP * 0 + Inf',
    '-Inf * scalar(up{job="node"})',
    'NaN',
    'minute()',
    'day_of_month()',
    'day_of_year(vector(time()))',
    'clamp(DCGM_FI_DEV_GPU_TEMP, 60, 40)',
    'DCGM_FI_DEV_GPU_TEMP + on() DCGM_FI_DEV_POWER_USAGE',  # many-to-many: an error in both
    'scalar(up{job="node"})',
    'vector(scalar(count(up)))',
    'pi() * 2',
    '1 + 2 * 3',
)  # fmt: skip
# Staleness: recording rules of tests/e2e/promql_stack.py, remote-written with their stale markers
STALENESS = (
    "diff_test_blinking",
    "count_over_time(diff_test_blinking[15s])",
    "diff_test_steady + on(instance) group_left diff_test_blinking",
    "absent(diff_test_blinking)",
)

SUBQUERIES_WITH_INNER_RANGES = frozenset(
    {
        f"max_over_time(rate({CPU}[5s])[30s:5s])",
        f"min_over_time(sum(rate({CPU}[4s]))[20s:])",
        "max_over_time(max_over_time(DCGM_FI_DEV_GPU_TEMP[4s])[20s:4s])",
    }
)
"""Subqueries whose inner steps sit on whole seconds and read range windows there: a sample
exactly on a whole second (a target whose scrape offset is 0 ms, once in a few hundred runs)
would meet their left-closed (2.42) or left-open (Prometheus 3) window edges."""

EXPECTED_EMPTY = frozenset(
    {
        f"absent_over_time(node_load1{{{N}}}[10s])",
        'absent(up{job="node"})',
        "rate(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION[1s])",
        "present_over_time(nonexistent_metric[5s])",
        "clamp(DCGM_FI_DEV_GPU_TEMP, 60, 40)",
        "topk(0, DCGM_FI_DEV_POWER_USAGE)",
        "DCGM_FI_DEV_GPU_TEMP + on() DCGM_FI_DEV_POWER_USAGE",
    }
)
"""Hand-written queries that answer nothing, by design; every other one must answer something
on Prometheus, so that no comparison is vacuous."""


@dataclass(frozen=True)
class KnownDifference:
    """A query dcmon answers differently from Prometheus, for a reason outside the engine."""

    query: str
    reason: str
    metric: str  # the recording rule's series it reads
    stored_differently: bool  # dcmon holds other samples or labels for it (not only answers)


# Each must still differ: the test fails once one agrees, so the list cannot go stale. A query
# removed from here is compared as every other one (``RULE_QUERIES``).
KNOWN_DIFFERENCES: tuple[KnownDifference, ...] = ()
RULE_QUERIES = (
    "diff_test_nan",
    "diff_test_inf",
    "diff_test_no_instance",
    "count_over_time(diff_test_intermittent[20s:1s])",
)
"""Queries of the rule series that exist for the known differences, compared as usual unless
they are known to differ."""


_KNOWN = {k.query for k in KNOWN_DIFFERENCES}
HAND_WRITTEN: tuple[str, ...] = (
    SELECTORS + RANGE + AGGREGATIONS + BINARY + SUBQUERIES + FUNCTIONS + STALENESS
) + tuple(q for q in RULE_QUERIES if q not in _KNOWN)


def fill(expr: str, node: str) -> str:
    """Returns: ``expr`` with the dashboards' variables replaced by the test's values."""
    return (
        expr.replace("$__rate_interval", RATE_INTERVAL)
        .replace("${__rate_interval}", RATE_INTERVAL)
        .replace("$node", node)
        .replace("$job", "node")
        .replace("$instance", "diff-node")
        .replace("$gpu", GPU_ALL)
    )


def dashboard_targets(path: Path) -> list[str]:
    """Returns: every panel target's ``expr`` of a Grafana dashboard (nested rows included),
    distinct, in the dashboard's order."""
    dashboard = json.loads(path.read_text())
    found: list[str] = []

    def walk(panel: dict[str, object]) -> None:
        targets = panel.get("targets")
        for target in targets if isinstance(targets, list) else []:
            expr = target.get("expr") if isinstance(target, dict) else None
            if isinstance(expr, str) and expr.strip() and expr not in found:
                found.append(expr)
        panels = panel.get("panels")
        for inner in panels if isinstance(panels, list) else []:
            if isinstance(inner, dict):
                walk(inner)

    for panel in dashboard.get("panels", []):
        walk(panel)
    return found
