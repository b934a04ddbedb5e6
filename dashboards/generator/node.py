"""The node dashboard: one node's host at a glance, its GPUs, its jobs and its fabric ports.

Stage: dashboards (build time). Input: none; output: the ``Dashboard`` spec of ``dcmon-node``
(variable ``instance``): CPU, memory, disks, filesystems, network and pressure with
node_exporter's names, the agent's own health, every GPU of the node with a drill-down to the
GPU dashboard, the jobs holding them, and the InfiniBand/RoCE ports.
"""

from __future__ import annotations

from dashboards.generator import thresholds as t
from dashboards.generator.common import (
    FABRIC_LINK,
    GPU_LINK,
    GPU_ROW_LINK,
    IB_STATES,
    INSTANCE,
    JOB_ROW_LINK,
    NODE,
    RATE,
    UP_DOWN,
)
from dashboards.generator.spec import (
    BAR_GAUGE,
    MIB_BYTES,
    STATE_TIMELINE,
    TABLE,
    TIME_SERIES,
    Dashboard,
    Panel,
    Query,
    Row,
    stat,
)

REAL_FS = f'{NODE}, fstype!~"tmpfs|overlay|squashfs"'
CORES = f'count by (instance) (node_cpu_seconds_total{{{NODE}, mode="idle"}})'

GLANCE = Row(
    "At a glance",
    (
        stat("Reporting", f"max(dcmon_node_up{{{NODE}}})", mappings=UP_DOWN,
             description="Whether the node pushed within its staleness window."),
        stat("Uptime", f"node_time_seconds{{{NODE}}} - node_boot_time_seconds{{{NODE}}}", "s"),
        stat("CPU busy", f'1 - avg(rate(node_cpu_seconds_total{{{NODE}, mode="idle"}}[{RATE}]))',
             "percentunit", steps=t.above(t.CPU_BUSY_SHARE, "orange")),
        stat("Load per core", f"node_load1{{{NODE}}} / on (instance) {CORES}",
             steps=t.above(t.LOAD_PER_CORE), decimals=2),
        stat("Memory used", f"1 - node_memory_MemAvailable_bytes{{{NODE}}} / "
             f"node_memory_MemTotal_bytes{{{NODE}}}", "percentunit",
             steps=t.rising(t.MEMORY_USED_CLEAR_SHARE, t.MEMORY_USED_SHARE)),
        stat("File handles used", f"node_filefd_allocated{{{NODE}}} * 100 / "
             f"node_filefd_maximum{{{NODE}}}", "percent",
             steps=t.rising(t.FILE_HANDLES_WARN_PERCENT, t.FILE_HANDLES_CRIT_PERCENT)),
        stat("GPUs", f"count(dcmon_gpu_up{{{NODE}}})"),
        stat("GPUs lost", f"sum(dcmon_gpu_up{{{NODE}}} == bool 0)", steps=t.any_is_bad()),
        stat("GPU power", f"sum(DCGM_FI_DEV_POWER_USAGE{{{NODE}}})", "watt"),
        stat("Clock skew", f"max(abs(dcmon_node_clock_skew_seconds{{{NODE}}}))", "s",
             steps=t.rising(t.CLOCK_SKEW_WARN_S, t.CLOCK_SKEW_CRIT_S), decimals=3,
             description="The node's clock against the server's, from its last push."),
        stat("Collectors failing", f"sum(node_scrape_collector_success{{{NODE}}} == bool 0)",
             steps=t.any_is_bad("orange"),
             description="The agent's collectors that failed on its last tick."),
        stat("Unsent backlog", f"max(dcmon_agent_spool_oldest_age_seconds{{{NODE}}})", "s",
             steps=t.above(t.BACKLOG_S, "orange"),
             description="Age of the oldest batch the agent has not delivered yet."),
    ),
)  # fmt: skip

HOST = Row(
    "Host",
    (
        Panel("CPU by mode", TIME_SERIES, (
            Query(f'sum by (mode) (rate(node_cpu_seconds_total{{{NODE}, mode!="idle"}}[{RATE}]))',
                  "{{mode}}"),
        ), description="Cores busy in each mode.", stack=True),
        Panel("Load", TIME_SERIES, (
            Query(f"node_load1{{{NODE}}}", "1 min"),
            Query(f"node_load5{{{NODE}}}", "5 min"),
            Query(f"node_load15{{{NODE}}}", "15 min"),
            Query(CORES, "cores"),
        )),
        Panel("Memory", TIME_SERIES, (
            Query(f"node_memory_MemTotal_bytes{{{NODE}}} - "
                  f"node_memory_MemAvailable_bytes{{{NODE}}}", "used"),
            Query(f"node_memory_Cached_bytes{{{NODE}}}", "cached"),
            Query(f"node_memory_Buffers_bytes{{{NODE}}}", "buffers"),
            Query(f"node_memory_MemTotal_bytes{{{NODE}}}", "total"),
        ), "bytes"),
        Panel("Pressure (share of time stalled)", TIME_SERIES, (
            Query(f"rate(node_pressure_cpu_waiting_seconds_total{{{NODE}}}[{RATE}])",
                  "CPU, some waiting"),
            Query(f"rate(node_pressure_memory_stalled_seconds_total{{{NODE}}}[{RATE}])",
                  "memory, all stalled"),
            Query(f"rate(node_pressure_io_stalled_seconds_total{{{NODE}}}[{RATE}])",
                  "I/O, all stalled"),
        ), "percentunit"),
        Panel("Disk throughput", TIME_SERIES, (
            Query(f"sum by (device) (rate(node_disk_read_bytes_total{{{NODE}}}[{RATE}]))",
                  "{{device}} read"),
            Query(f"sum by (device) (rate(node_disk_written_bytes_total{{{NODE}}}[{RATE}]))",
                  "{{device}} written"),
        ), "Bps"),
        Panel("Disk queue depth", TIME_SERIES, (
            Query(f"rate(node_disk_io_time_weighted_seconds_total{{{NODE}}}[{RATE}])",
                  "{{device}}"),
        ), steps=t.above(t.DISK_QUEUE), description="Requests in flight on average "
            "(weighted I/O seconds per second)."),
        Panel("Filesystem space used", BAR_GAUGE, (
            Query(f"100 - node_filesystem_avail_bytes{{{REAL_FS}}} * 100 / "
                  f"node_filesystem_size_bytes{{{REAL_FS}}}", "{{mountpoint}}"),
        ), "percent", minimum=0, maximum=100,
            steps=t.rising(100 - t.FS_FREE_WARN_PERCENT.value, 100 - t.FS_FREE_CRIT_PERCENT.value)),
        Panel("Network throughput", TIME_SERIES, (
            Query(f'sum by (device) (rate(node_network_receive_bytes_total{{{NODE}, device!="lo"}}'
                  f"[{RATE}]))", "{{device}} received"),
            Query(f'sum by (device) (rate(node_network_transmit_bytes_total{{{NODE}, device!="lo"}}'
                  f"[{RATE}]))", "{{device}} sent"),
        ), "Bps"),
        Panel("Network errors and drops", TIME_SERIES, (
            Query(f"sum by (device) (rate(node_network_receive_errs_total{{{NODE}}}[{RATE}]) + "
                  f"rate(node_network_transmit_errs_total{{{NODE}}}[{RATE}]))",
                  "{{device}} errors"),
            Query(f"sum by (device) (rate(node_network_receive_drop_total{{{NODE}}}[{RATE}]) + "
                  f"rate(node_network_transmit_drop_total{{{NODE}}}[{RATE}]))",
                  "{{device}} drops"),
        ), "pps"),
    ),
)  # fmt: skip

GPUS = Row(
    "GPUs",
    (
        Panel("GPU utilisation by GPU", TIME_SERIES, (
            Query(f"DCGM_FI_DEV_GPU_UTIL{{{NODE}}}", "GPU {{gpu}}"),
        ), "percent", width=6, minimum=0, maximum=100, link=GPU_LINK),
        Panel("GPU memory used by GPU", TIME_SERIES, (
            Query(f"DCGM_FI_DEV_FB_USED{{{NODE}}} * {MIB_BYTES}", "GPU {{gpu}}"),
        ), "bytes", width=6, link=GPU_LINK),
        Panel("GPU power by GPU", TIME_SERIES, (
            Query(f"DCGM_FI_DEV_POWER_USAGE{{{NODE}}}", "GPU {{gpu}}"),
        ), "watt", width=6, link=GPU_LINK),
        Panel("GPU temperature by GPU", TIME_SERIES, (
            Query(f"DCGM_FI_DEV_GPU_TEMP{{{NODE}}}", "GPU {{gpu}}"),
        ), "celsius", width=6, steps=t.rising(t.GPU_TEMP_CLEAR_C, t.GPU_TEMP_HIGH_C),
            link=GPU_LINK),
        Panel("GPU health", TABLE, (
            Query(f"max by (instance, gpu) (dcmon_gpu_up{{{NODE}}})", column="answers",
                  unit="bool_yes_no"),
            Query(f"max by (instance, gpu) (DCGM_FI_DEV_GPU_UTIL{{{NODE}}})",
                  column="utilisation", unit="percent"),
            Query(f"max by (instance, gpu) (DCGM_FI_DEV_GPU_TEMP{{{NODE}}})",
                  column="temperature", unit="celsius"),
            Query(f"max by (instance, gpu) (DCGM_FI_DEV_POWER_USAGE{{{NODE}}})", column="power",
                  unit="watt"),
            Query(f"max by (instance, gpu) (DCGM_FI_DEV_XID_ERRORS{{{NODE}}})",
                  column="last XID"),
            Query(f"max by (instance, gpu) (DCGM_FI_DEV_ECC_DBE_VOL_TOTAL{{{NODE}}})",
                  column="uncorrectable ECC"),
            Query(f"max by (instance, gpu) (DCGM_FI_DEV_ROW_REMAP_PENDING{{{NODE}}})",
                  column="row remap pending", unit="bool_yes_no"),
        ), width=16, height=9, columns=(("instance", "node"), ("gpu", "GPU")),
            link=GPU_ROW_LINK),
        Panel("Jobs on this node", TABLE, (
            Query(f"count by (job_id, user, scheduler) (dcmon_job_gpu_info{{{NODE}}})",
                  column="GPUs"),
        ), width=8, height=9,
            columns=(("job_id", "job_id"), ("user", "user"), ("scheduler", "scheduler")),
            link=JOB_ROW_LINK),
    ),
)  # fmt: skip

FABRIC = Row(
    "Fabric (InfiniBand / RoCE)",
    (
        Panel("Fabric received", TIME_SERIES, (
            Query(f"rate(node_infiniband_port_data_received_bytes_total{{{NODE}}}[{RATE}])",
                  "{{device}} port {{port}}"),
        ), "Bps", link=FABRIC_LINK),
        Panel("Fabric sent", TIME_SERIES, (
            Query(f"rate(node_infiniband_port_data_transmitted_bytes_total{{{NODE}}}[{RATE}])",
                  "{{device}} port {{port}}"),
        ), "Bps", link=FABRIC_LINK),
        Panel("Port state", STATE_TIMELINE, (
            Query(f"node_infiniband_state_id{{{NODE}}}", "{{device}} port {{port}}"),
        ), mappings=IB_STATES, link=FABRIC_LINK),
    ),
)  # fmt: skip

DASHBOARD = Dashboard(
    "node",
    "dcmon / Node",
    "One node: its host (node_exporter's names), the dcmon agent's health, its GPUs and jobs, "
    "and its fabric ports.",
    (GLANCE, HOST, GPUS, FABRIC),
    (INSTANCE,),
)
