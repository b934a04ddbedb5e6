"""The dashboards' thresholds, each taken from the rule (or judging table) that acts on it.

Stage: dashboards (build time). Input: none; output: ``Cited`` numbers and the threshold steps
built from them. Each number names the alert of ``alerts/*.yaml`` whose expression (or
``dcmon.hold``) holds it, the ``[judging]`` key of ``agent/wire/skus.toml``, or the source file
of the fleet judgement, so a panel turns red where the alert fires or the judgement flags;
``tests/deploy/test_grafana.py`` checks that each source still holds its number.
"""

from __future__ import annotations

from dataclasses import dataclass

from dashboards.generator.spec import Step


@dataclass(frozen=True)
class Cited:
    """``value`` as the panel shows it; ``source`` (an alert name, ``skus.toml:<key>`` or a
    repository path) holds ``text``: in the alert's expression, as the key's value, or in the
    file."""

    value: float
    source: str
    text: str


# GPU (gpu.yaml, gpu_perf.yaml)
GPU_TEMP_CLEAR_C = Cited(80, "GpuTemperatureHigh", "> 80")  # hold without a slowdown threshold
GPU_TEMP_HIGH_C = Cited(85, "GpuTemperatureHigh", "> 85")
GPU_TEMP_MARGIN_C = Cited(5, "GpuTemperatureHigh", "- 5")  # below the GPU's own slowdown point
REMAPPED_ROWS_LIMIT = Cited(512, "GpuUncorrectableRemappedRowsHigh", ">= 512")
RETIRED_PAGES_LIMIT = Cited(63, "GpuRetiredPagesLimit", ">= 63")
POWER_VIOLATION_SHARE = Cited(0.5, "GpuPowerViolation", "> 0.5")
NVLINK_CRC_PER_S = Cited(100, "GpuNvlinkCrcErrorRate", ">= 100")
# host (host.yaml)
CPU_BUSY_SHARE = Cited(0.9, "NodeCPUHighUsage", "> 90")
MEMORY_USED_CLEAR_SHARE = Cited(0.85, "NodeMemoryHighUtilization", "> 85")
MEMORY_USED_SHARE = Cited(0.9, "NodeMemoryHighUtilization", "> 90")
FS_FREE_WARN_PERCENT = Cited(5, "NodeFilesystemAlmostOutOfSpace", "< 5")
FS_FREE_CRIT_PERCENT = Cited(3, "NodeFilesystemAlmostOutOfSpace", "< 3")
LOAD_PER_CORE = Cited(2, "NodeSystemSaturation", "> 2")
DISK_QUEUE = Cited(10, "NodeDiskIOSaturation", "> 10")
FILE_HANDLES_WARN_PERCENT = Cited(70, "NodeFileDescriptorLimit", "> 70")
FILE_HANDLES_CRIT_PERCENT = Cited(90, "NodeFileDescriptorLimit", "> 90")
# fabric (fabric.yaml)
IB_SYMBOL_ERRORS_PER_HOUR = Cited(120, "InfiniBandSymbolErrors", "> 120")
IB_CREDIT_WAIT_SHARE = Cited(0.1, "InfiniBandPortCongested", "> 0.1")
ROCE_CNP_PER_S = Cited(1000, "RoceCongestion", "> 1000")
# jobs (jobs.yaml)
JOB_GPU_IDLE_S = Cited(1800, "JobGpuIdle", "for: 30m")
# dcmon itself (dcmon.yaml)
CLOCK_SKEW_WARN_S = Cited(1, "DcmonNodeClockSkew", "> 1")
CLOCK_SKEW_CRIT_S = Cited(300, "DcmonNodeClockSkew", "> 300")
SPOOL_FULL_SHARE = Cited(0.8, "DcmonAgentSpoolNearlyFull", "> 0.8")
BACKLOG_S = Cited(900, "DcmonAgentBacklog", "> 900")
# benchmarks: the fleet judgement (server/bench/fleet.py) and the SKU judging (skus.toml)
FLEET_OUTLIER_RATIO = Cited(0.9, "server/bench/fleet.py", "OUTLIER_FRACTION = 0.90")
SKU_WARN_RATIO = Cited(0.9, "skus.toml:measured_warn", "0.90")
SKU_FAIL_RATIO = Cited(0.75, "skus.toml:measured_fail", "0.75")

ALL = {name: value for name, value in globals().items() if isinstance(value, Cited)}


def rising(warn: Cited | float, crit: Cited | float) -> tuple[Step, ...]:
    """Returns: green below ``warn``, orange from it, red from ``crit``."""
    return (Step(None, "green"), Step(_value(warn), "orange"), Step(_value(crit), "red"))


def falling(warn: Cited | float, crit: Cited | float) -> tuple[Step, ...]:
    """Returns: red below ``crit``, orange below ``warn``, green from it (a ratio to a bar)."""
    return (Step(None, "red"), Step(_value(crit), "orange"), Step(_value(warn), "green"))


def above(limit: Cited | float, color: str = "red") -> tuple[Step, ...]:
    """Returns: green below ``limit``, ``color`` from it."""
    return (Step(None, "green"), Step(_value(limit), color))


def any_is_bad(color: str = "red") -> tuple[Step, ...]:
    """Returns: green at 0, ``color`` from 1 (a count of broken things)."""
    return (Step(None, "green"), Step(1, color))


def _value(threshold: Cited | float) -> float:
    return threshold.value if isinstance(threshold, Cited) else threshold
