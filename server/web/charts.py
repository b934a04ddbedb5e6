"""The charts of each page: a title, a PromQL query, a unit and a legend template.

Stage: web. Pure: the pages render each ``Chart`` as ``<div class="chart" data-query=...>``,
and ``static/app.js`` draws it from ``/prometheus/api/v1/query_range``. The names are
node_exporter's and dcgm-exporter's, as dcmon exposes them; a rate's window is four push
intervals of the node (at least a minute), so that it always spans several samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

FB_MIB = 1048576  # DCGM_FI_DEV_FB_* are MiB
FABRIC_METRIC = "node_infiniband_port_data_received_bytes_total"


@dataclass(frozen=True)
class Chart:
    title: str
    query: str
    unit: str = ""  # see static/app.js formatter(): percent, bytes, watts, ...
    legend: str = ""  # "GPU {gpu}": label names in braces; "" = the labels that differ


def quoted(value: str) -> str:
    """Returns: ``value`` as a PromQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def alternatives(values: Sequence[str]) -> str:
    """Returns: a regular expression matching exactly one of ``values`` (for ``=~``)."""
    special = set(r".^$*+?()[]{}|\\")
    escaped = ["".join("\\" + c if c in special else c for c in v) for v in values]
    return quoted("|".join(escaped))


def named(parts: Sequence[tuple[str, str]]) -> str:
    """Returns: one query of several expressions, each marked with a ``series`` label (an
    arithmetic result or a rate has no metric name left to tell them apart by)."""
    return " or ".join(
        f'label_replace({expr}, "series", {quoted(name)}, "", "")' for name, expr in parts
    )


def rate_window(interval_seconds: float) -> str:
    return f"{max(60, round(4 * interval_seconds))}s"


FLEET = (
    Chart("GPU utilization, fleet mean", "avg(DCGM_FI_DEV_GPU_UTIL)", "percent", "mean"),
    Chart("GPU memory used, fleet", f"sum(DCGM_FI_DEV_FB_USED) * {FB_MIB}", "bytes", "used"),
    Chart("GPU power, fleet", "sum(DCGM_FI_DEV_POWER_USAGE)", "watts", "power"),
    Chart(
        "GPU energy, per hour",
        "sum(increase(DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION[1h])) / 1000",
        "joules",
        "energy per hour",
    ),
    Chart("GPUs by utilization", named([
        ("busy (50 % or more)", "count(DCGM_FI_DEV_GPU_UTIL >= 50)"),
        ("light (1 to 50 %)", "count(DCGM_FI_DEV_GPU_UTIL > 0 < 50)"),
        ("idle (0 %)", "count(DCGM_FI_DEV_GPU_UTIL == 0)"),
    ]), "", "{series}"),
    Chart("Nodes reporting", "count(node_load1)", "", "nodes"),
)  # fmt: skip


def node_charts(node: str, interval_seconds: float, has_gpus: bool) -> list[Chart]:
    i = f"instance={quoted(node)}"
    w = rate_window(interval_seconds)
    charts = [
        Chart("CPU busy", f'1 - avg(rate(node_cpu_seconds_total{{{i},mode="idle"}}[{w}]))',
              "ratio", "busy"),
        Chart("CPU by mode (cores)",
              f'sum by (mode) (rate(node_cpu_seconds_total{{{i},mode!="idle"}}[{w}]))', "",
              "{mode}"),
        Chart("Load", named([(f"{m} min", f"node_load{m}{{{i}}}") for m in (1, 5, 15)]), "",
              "{series}"),
        Chart("Memory", named([
            ("used", f"node_memory_MemTotal_bytes{{{i}}} - node_memory_MemAvailable_bytes{{{i}}}"),
            ("total", f"node_memory_MemTotal_bytes{{{i}}}"),
            ("cached", f"node_memory_Cached_bytes{{{i}}}"),
        ]), "bytes", "{series}"),
        Chart("Disk read", f"sum by (device) (rate(node_disk_read_bytes_total{{{i}}}[{w}]))",
              "bytes_per_second", "{device}"),
        Chart("Disk written", f"sum by (device) (rate(node_disk_written_bytes_total{{{i}}}[{w}]))",
              "bytes_per_second", "{device}"),
        Chart("Filesystems used",
              f'1 - node_filesystem_avail_bytes{{{i},fstype!~"tmpfs|overlay|squashfs"}}'
              f' / node_filesystem_size_bytes{{{i},fstype!~"tmpfs|overlay|squashfs"}}',
              "ratio", "{mountpoint}"),
        Chart("Network received",
              f'sum by (device) (rate(node_network_receive_bytes_total{{{i},device!="lo"}}[{w}]))',
              "bytes_per_second", "{device}"),
        Chart("Network sent",
              f'sum by (device) (rate(node_network_transmit_bytes_total{{{i},device!="lo"}}[{w}]))',
              "bytes_per_second", "{device}"),
        Chart("Pressure (share of time stalled)", named([
            (kind, f"rate(node_pressure_{kind}_seconds_total{{{i}}}[{w}])")
            for kind in ("cpu_waiting", "memory_stalled", "io_stalled")
        ]), "ratio", "{series}"),
    ]  # fmt: skip
    if has_gpus:
        charts[:0] = [
            Chart("GPU utilization", f"DCGM_FI_DEV_GPU_UTIL{{{i}}}", "percent", "GPU {gpu}"),
            Chart(
                "GPU memory used", f"DCGM_FI_DEV_FB_USED{{{i}}} * {FB_MIB}", "bytes", "GPU {gpu}"
            ),
            Chart("GPU power", f"DCGM_FI_DEV_POWER_USAGE{{{i}}}", "watts", "GPU {gpu}"),
            Chart("GPU temperature", f"DCGM_FI_DEV_GPU_TEMP{{{i}}}", "celsius", "GPU {gpu}"),
        ]
    return charts


def fabric_charts(node: str, interval_seconds: float) -> list[Chart]:
    """The node's InfiniBand/RoCE ports (node_exporter's infiniband names), where collected."""
    i = f"instance={quoted(node)}"
    w = rate_window(interval_seconds)
    return [
        Chart("Fabric received", f"rate({FABRIC_METRIC}{{{i}}}[{w}])",
              "bytes_per_second", "{device} port {port}"),
        Chart("Fabric sent", f"rate(node_infiniband_port_data_transmitted_bytes_total{{{i}}}[{w}])",
              "bytes_per_second", "{device} port {port}"),
    ]  # fmt: skip


def gpu_charts(node: str, uuid: str, interval_seconds: float) -> list[Chart]:
    g = f"instance={quoted(node)},UUID={quoted(uuid)}"
    w = rate_window(interval_seconds)
    return [
        Chart("Utilization", named([
            ("GPU", f"DCGM_FI_DEV_GPU_UTIL{{{g}}}"),
            ("memory copy", f"DCGM_FI_DEV_MEM_COPY_UTIL{{{g}}}"),
        ]), "percent", "{series}"),
        Chart("Memory", named([
            ("used", f"DCGM_FI_DEV_FB_USED{{{g}}} * {FB_MIB}"),
            ("free", f"DCGM_FI_DEV_FB_FREE{{{g}}} * {FB_MIB}"),
        ]), "bytes", "{series}"),
        Chart("Temperature", named([
            ("GPU", f"DCGM_FI_DEV_GPU_TEMP{{{g}}}"), ("memory", f"DCGM_FI_DEV_MEMORY_TEMP{{{g}}}"),
            ("slowdown at", f"DCGM_FI_DEV_SLOWDOWN_TEMP{{{g}}}"),
        ]), "celsius", "{series}"),
        Chart("Power", named([
            ("draw", f"DCGM_FI_DEV_POWER_USAGE{{{g}}}"),
            ("limit", f"DCGM_FI_DEV_ENFORCED_POWER_LIMIT{{{g}}}"),
        ]), "watts", "{series}"),
        Chart("Clocks", named([
            ("SM", f"DCGM_FI_DEV_SM_CLOCK{{{g}}}"), ("memory", f"DCGM_FI_DEV_MEM_CLOCK{{{g}}}"),
        ]), "mhz", "{series}"),
        Chart("Clock-event reasons (1 = active)", f"dcmon_gpu_clocks_event_reason{{{g}}}", "",
              "{reason}"),
        Chart("ECC errors and remapped rows", named([
            ("ECC corrected (volatile)", f"DCGM_FI_DEV_ECC_SBE_VOL_TOTAL{{{g}}}"),
            ("ECC uncorrectable (volatile)", f"DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{{{g}}}"),
            ("rows remapped, correctable", f"DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS{{{g}}}"),
            ("rows remapped, uncorrectable", f"DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS{{{g}}}"),
        ]), "", "{series}"),
        Chart("PCIe", named([
            ("sent", f"DCGM_FI_PROF_PCIE_TX_BYTES{{{g}}}"),
            ("received", f"DCGM_FI_PROF_PCIE_RX_BYTES{{{g}}}"),
        ]), "bytes_per_second", "{series}"),
        Chart("NVLink", named([
            ("sent", f"sum(rate(dcmon_gpu_nvlink_tx_bytes_total{{{g}}}[{w}]))"),
            ("received", f"sum(rate(dcmon_gpu_nvlink_rx_bytes_total{{{g}}}[{w}]))"),
        ]), "bytes_per_second", "{series}"),
        Chart("XIDs seen, by code (events below)",
              f"sum by (xid) (dcmon_gpu_xid_errors_total{{{g}}})"
              ' or label_replace(vector(0), "xid", "none", "", "")', "", "XID {xid}"),
    ]  # fmt: skip


def job_charts(uuids: Sequence[str]) -> list[Chart]:
    u = f"UUID=~{alternatives(uuids)}"
    return [
        Chart("GPU utilization", f"DCGM_FI_DEV_GPU_UTIL{{{u}}}", "percent", "{instance} GPU {gpu}"),
        Chart("GPU memory used", f"DCGM_FI_DEV_FB_USED{{{u}}} * {FB_MIB}", "bytes",
              "{instance} GPU {gpu}"),
        Chart("GPU power, job total", f"sum(DCGM_FI_DEV_POWER_USAGE{{{u}}})", "watts", "power"),
        Chart("SM activity", f"DCGM_FI_PROF_SM_ACTIVE{{{u}}}", "ratio", "{instance} GPU {gpu}"),
    ]  # fmt: skip
