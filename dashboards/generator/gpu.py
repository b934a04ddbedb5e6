"""The GPU dashboard: every reading dcmon has for one GPU.

Stage: dashboards (build time). Input: none; output: the ``Dashboard`` spec of ``dcmon-gpu``
(variables ``instance`` and ``gpu``): each ``DCGM_FI_*`` series of the catalog
(``agent/wire/catalog/gpu.toml``, ``events.toml``) and dcmon's own GPU series: state and modes,
utilisation and profiling activity, memory, temperatures against the GPU's own limits, power
against its limits, clocks and what holds them down, ECC, remapped rows and retired pages,
XIDs, PCIe and NVLink, the jobs on the GPU and its latest benchmark.
"""

from __future__ import annotations

from dashboards.generator import thresholds as t
from dashboards.generator.common import (
    GPU,
    GPU_INDEX,
    INSTANCE,
    NO_YES,
    RATE,
    UP_DOWN,
)
from dashboards.generator.spec import (
    BAR_GAUGE,
    MIB_BYTES,
    STAT,
    STATE_TIMELINE,
    TABLE,
    TIME_SERIES,
    Dashboard,
    Panel,
    Query,
    Row,
    ValueMap,
    stat,
)

IDENTITY = "modelName, UUID, pci_bus_id, DCGM_FI_DRIVER_VERSION"
OFF_ON = (ValueMap("0", "off", "text"), ValueMap("1", "on", "text"))
RECOVERY = (
    ValueMap("0", "none", "green"),
    ValueMap("1", "GPU reset", "red"),
    ValueMap("2", "node reboot", "red"),
    ValueMap("3", "drain peer-to-peer", "orange"),
    ValueMap("4", "drain and reset", "red"),
    ValueMap("5", "recover IMEX domain", "red"),
    ValueMap("6", "bus reset", "red"),
    ValueMap("7", "system reboot", "red"),
)
COMPUTE_MODES = (
    ValueMap("0", "default", "text"),
    ValueMap("2", "prohibited", "orange"),
    ValueMap("3", "exclusive process", "text"),
)
HOLDING = (ValueMap("0", "-", "transparent"), ValueMap("1", "active", "orange"))
VIOLATIONS = ("POWER", "THERMAL", "SYNC_BOOST", "BOARD_LIMIT", "LOW_UTIL", "RELIABILITY")
PROFILING = ("GR_ENGINE_ACTIVE", "SM_ACTIVE", "SM_OCCUPANCY", "PIPE_TENSOR_ACTIVE",
             "DRAM_ACTIVE", "PIPE_FP64_ACTIVE", "PIPE_FP32_ACTIVE", "PIPE_FP16_ACTIVE")  # fmt: skip


def _gauge(metric: str, legend: str, scale: str = "") -> Query:
    return Query(f"{metric}{{{GPU}}}{scale}", legend)


STATE = Row(
    "State",
    (
        stat("NVML", f"max(dcmon_gpu_up{{{GPU}}})", mappings=UP_DOWN, width=3,
             description="Whether the GPU answered NVML on the last tick (GpuLost)."),
        stat("Driver hangs", f"max(dcmon_gpu_driver_unresponsive{{{GPU}}})", mappings=NO_YES,
             width=3, description="An NVML call on the GPU past its deadline "
             "(GpuDriverUnresponsive)."),
        stat("Recovery action", f"max(dcmon_gpu_recovery_action{{{GPU}}})", mappings=RECOVERY,
             width=3, description="What the driver says the GPU needs "
             "(GpuRecoveryActionRequired)."),
        stat("Last XID", f"max(DCGM_FI_DEV_XID_ERRORS{{{GPU}}})", steps=t.any_is_bad(),
             mappings=(ValueMap("0", "none", "green"),), width=3,
             description="Code of the most recent XID since the agent started."),
        stat("Clock-event bitmask", f"max(DCGM_FI_DEV_CLOCKS_EVENT_REASONS{{{GPU}}})", "hex0x",
             width=3, description="NVML's bitmask; one series per reason below."),
        stat("Persistence mode", f"max(DCGM_FI_DEV_PERSISTENCE_MODE{{{GPU}}})", mappings=OFF_ON,
             width=3),
        stat("Compute mode", f"max(DCGM_FI_DEV_COMPUTE_MODE{{{GPU}}})", mappings=COMPUTE_MODES,
             width=3),
        stat("vGPU license", f"max(DCGM_FI_DEV_VGPU_LICENSE_STATUS{{{GPU}}})", width=3,
             mappings=(ValueMap("0", "unlicensed", "red"), ValueMap("1", "licensed", "green")),
             description="Only on vGPUs."),
        Panel("Identity and modes", TABLE, (
            Query(f"max by ({IDENTITY}) (DCGM_FI_DEV_ECC_CURRENT{{{GPU}}})", column="ECC",
                  unit="bool_on_off"),
            Query(f"max by ({IDENTITY}) (DCGM_FI_DEV_ECC_PENDING{{{GPU}}})",
                  column="ECC after reset", unit="bool_on_off"),
            Query(f"max by ({IDENTITY}) (DCGM_FI_DEV_MIG_MODE{{{GPU}}})", column="MIG",
                  unit="bool_on_off"),
            Query(f"max by ({IDENTITY}) (dcmon_gpu_mig_mode_pending{{{GPU}}})",
                  column="MIG after reset", unit="bool_on_off"),
        ), width=24, height=4, columns=(("modelName", "model"), ("UUID", "UUID"),
                                        ("pci_bus_id", "PCI bus id"),
                                        ("DCGM_FI_DRIVER_VERSION", "driver"))),
    ),
)  # fmt: skip

USE = Row(
    "Utilisation and memory",
    (
        Panel("Utilisation", TIME_SERIES, (
            _gauge("DCGM_FI_DEV_GPU_UTIL", "GPU"),
            _gauge("DCGM_FI_DEV_MEM_COPY_UTIL", "memory copy"),
            _gauge("DCGM_FI_DEV_ENC_UTIL", "encoder"),
            _gauge("DCGM_FI_DEV_DEC_UTIL", "decoder"),
        ), "percent", minimum=0, maximum=100),
        Panel("Activity (profiling)", TIME_SERIES, tuple(
            _gauge(f"DCGM_FI_PROF_{name}", name.lower().replace("_", " ")) for name in PROFILING
        ), "percentunit", minimum=0, maximum=1, description="DCGM's profiling ratios (GPM on "
            "Hopper and newer): how much of the GPU the work really uses."),
        Panel("Framebuffer", TIME_SERIES, (
            _gauge("DCGM_FI_DEV_FB_USED", "used", f" * {MIB_BYTES}"),
            _gauge("DCGM_FI_DEV_FB_RESERVED", "reserved", f" * {MIB_BYTES}"),
            _gauge("DCGM_FI_DEV_FB_FREE", "free", f" * {MIB_BYTES}"),
        ), "bytes", stack=True),
    ),
)  # fmt: skip

HEAT = Row(
    "Temperature and power",
    (
        Panel("Temperatures and the GPU's limits", TIME_SERIES, (
            _gauge("DCGM_FI_DEV_GPU_TEMP", "GPU"),
            _gauge("DCGM_FI_DEV_MEMORY_TEMP", "memory"),
            _gauge("DCGM_FI_DEV_SLOWDOWN_TEMP", "slowdown at"),
            _gauge("DCGM_FI_DEV_SHUTDOWN_TEMP", "shutdown at"),
            _gauge("DCGM_FI_DEV_GPU_MAX_OP_TEMP", "GPU max operating"),
            _gauge("DCGM_FI_DEV_MEM_MAX_OP_TEMP", "memory max operating"),
        ), "celsius", description="GpuTemperatureHigh fires 5 °C below the slowdown line (85 °C "
            "where the GPU reports none)."),
        Panel("Power and limits", TIME_SERIES, (
            _gauge("DCGM_FI_DEV_POWER_USAGE", "draw"),
            _gauge("DCGM_FI_DEV_ENFORCED_POWER_LIMIT", "enforced limit"),
            _gauge("DCGM_FI_DEV_POWER_MGMT_LIMIT_DEF", "default limit"),
        ), "watt"),
        Panel("Energy since the driver loaded", TIME_SERIES, (
            _gauge("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", "energy", " / 3.6e9"),
        ), "kwatth"),
    ),
)  # fmt: skip

CLOCKS = Row(
    "Clocks and throttling",
    (
        Panel("Clocks", TIME_SERIES, (
            _gauge("DCGM_FI_DEV_SM_CLOCK", "SM"),
            _gauge("DCGM_FI_DEV_MEM_CLOCK", "memory"),
        ), "rotmhz"),
        Panel("Clock-event reasons", STATE_TIMELINE, (
            Query(f"dcmon_gpu_clocks_event_reason{{{GPU}}}", "{{reason}}"),
        ), width=16, mappings=HOLDING,
            description="What holds the clocks down, reason by reason (GpuThermalSlowdown, "
            "GpuHardwareSlowdown)."),
        Panel("Time held down, by limiter", TIME_SERIES, tuple(
            Query(f"rate(DCGM_FI_DEV_{name}_VIOLATION{{{GPU}}}[{RATE}]) / 1e9",
                  name.lower().replace("_", " ")) for name in VIOLATIONS
        ), "percentunit", width=24, steps=t.above(t.POWER_VIOLATION_SHARE, "orange"),
            description="Share of time each limiter held the clocks down (DCGM's violation "
            "counters); GpuPowerViolation fires past half of the time under a lowered limit."),
    ),
)  # fmt: skip

ERRORS = Row(
    "Memory errors and XIDs",
    (
        Panel("ECC errors", TIME_SERIES, (
            _gauge("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", "correctable, since driver load"),
            _gauge("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", "uncorrectable, since driver load"),
            _gauge("DCGM_FI_DEV_ECC_SBE_AGG_TOTAL", "correctable, lifetime"),
            _gauge("DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", "uncorrectable, lifetime"),
        ), width=6, decimals=0, description="GpuEccDoubleBitErrors fires when the "
            "uncorrectable count rises."),
        Panel("Remapped rows", TIME_SERIES, (
            _gauge("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", "correctable"),
            _gauge("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", "uncorrectable"),
        ), width=6, decimals=0, steps=t.above(t.REMAPPED_ROWS_LIMIT)),
        Panel("Row remapping", STATE_TIMELINE, (
            _gauge("DCGM_FI_DEV_ROW_REMAP_PENDING", "remap pending"),
            _gauge("DCGM_FI_DEV_ROW_REMAP_FAILURE", "remap failed"),
        ), width=6, mappings=NO_YES),
        Panel("Retired pages", TIME_SERIES, (
            _gauge("DCGM_FI_DEV_RETIRED_SBE", "single-bit"),
            _gauge("DCGM_FI_DEV_RETIRED_DBE", "double-bit"),
            _gauge("DCGM_FI_DEV_RETIRED_PENDING", "retirement pending"),
        ), width=6, decimals=0, steps=t.above(t.RETIRED_PAGES_LIMIT),
            description="GPUs before Ampere retire pages; newer ones remap rows instead."),
    ),
)  # fmt: skip

LINKS = Row(
    "PCIe and NVLink",
    (
        Panel("PCIe throughput", TIME_SERIES, (
            _gauge("DCGM_FI_PROF_PCIE_TX_BYTES", "sent"),
            _gauge("DCGM_FI_PROF_PCIE_RX_BYTES", "received"),
        ), "Bps"),
        Panel("PCIe link", STAT, (
            _gauge("DCGM_FI_DEV_PCIE_LINK_GEN", "generation"),
            _gauge("DCGM_FI_DEV_PCIE_MAX_LINK_GEN", "max generation"),
            _gauge("DCGM_FI_DEV_PCIE_LINK_WIDTH", "lanes"),
            _gauge("DCGM_FI_DEV_PCIE_MAX_LINK_WIDTH", "max lanes"),
        ), width=4, description="GpuPcieLinkWidthDegraded and GpuPcieLinkGenDegraded fire "
            "below the maximum."),
        Panel("PCIe replays a minute", TIME_SERIES, (
            Query(f"rate(DCGM_FI_DEV_PCIE_REPLAY_COUNTER{{{GPU}}}[{RATE}]) * 60", "replays"),
        ), width=4, description="GpuPcieReplayRate fires above DCGM's limit for the link's "
            "speed and width (31 a minute at Gen5 x16)."),
        Panel("NVLink throughput", TIME_SERIES, (
            _gauge("DCGM_FI_PROF_NVLINK_TX_BYTES", "sent"),
            _gauge("DCGM_FI_PROF_NVLINK_RX_BYTES", "received"),
            Query(f"rate(DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL{{{GPU}}}[{RATE}]) * 1024",
                  "all links, both ways"),
        ), "Bps"),
        Panel("NVLink throughput per link", TIME_SERIES, (
            Query(f"rate(dcmon_gpu_nvlink_tx_bytes_total{{{GPU}}}[{RATE}])", "link {{link}} sent"),
            Query(f"rate(dcmon_gpu_nvlink_rx_bytes_total{{{GPU}}}[{RATE}])",
                  "link {{link}} received"),
        ), "Bps"),
        Panel("NVLink errors a second", TIME_SERIES, tuple(
            Query(f"rate(DCGM_FI_DEV_NVLINK_{name}_ERROR_COUNT_TOTAL{{{GPU}}}[{RATE}])",
                  name.lower().replace("_", " ")) for name in ("CRC_FLIT", "CRC_DATA", "REPLAY",
                                                               "RECOVERY")
        ), steps=t.above(t.NVLINK_CRC_PER_S), description="All up links; GpuNvlinkCrcErrorRate "
            "fires at 100 CRC errors a second on a link, GpuNvlinkRecoveryErrors at any "
            "recovery."),
        Panel("NVLink state", STATE_TIMELINE, (
            Query(f"dcmon_gpu_nvlink_up{{{GPU}}}", "link {{link}}"),
        ), width=16, mappings=UP_DOWN),
    ),
)  # fmt: skip

WORK = Row(
    "Jobs and benchmark",
    (
        Panel("Jobs on this GPU", TABLE, (
            Query(f"count by (job_id, user, scheduler) (dcmon_job_gpu_info and on (job_id) "
                  f"dcmon_job_gpu_info{{{GPU}}})", column="GPUs of the job"),
        ), width=12, columns=(("job_id", "job_id"), ("user", "user"),
                              ("scheduler", "scheduler"))),
        Panel("Latest benchmark against its SKU and fleet", BAR_GAUGE, (
            Query(f"dcmon_bench_ratio{{{GPU}}}", "{{test}} vs SKU reference"),
            Query(f"dcmon_bench_fleet_ratio{{{GPU}}}", "{{test}} vs fleet median"),
        ), "percentunit", width=12, minimum=0.5, maximum=1.2,
            steps=t.falling(t.SKU_WARN_RATIO, t.SKU_FAIL_RATIO)),
    ),
)  # fmt: skip

DASHBOARD = Dashboard(
    "gpu",
    "dcmon / GPU",
    "One GPU: every DCGM field dcmon collects, dcmon's own health series, its jobs and its "
    "latest benchmark.",
    (STATE, USE, HEAT, CLOCKS, ERRORS, LINKS, WORK),
    (INSTANCE, GPU_INDEX),
)
