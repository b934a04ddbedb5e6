"""What ``bench/alerting.py`` evaluates: the rule pack as each system gets it, and the nodes.

The pack is ``alerts/*.yaml`` as shipped. Each system gets a copy with one change: every
group's ``interval`` is the benchmark's (rounds come every few seconds instead of every
minute, so a run takes minutes), and, for dcmon's measured runs, a suffix on every group's name
(``-run2``): a group's state and slot grid are keyed by its name, so each run starts with no
alerts, as a fresh server does, on the same database. Prometheus gets ``dcmon rules export`` of
the same copy (hysteresis and no-data compiled to plain PromQL), checked by ``promtool check
rules``.

The nodes are ``bench/loadgen.py``'s 400-series H100 nodes plus ``RULE_SERIES``: the series the
pack reads that the load generator's profile lacks (clock-event reasons, PCIe link state, row
remapping, power limits, recovery action, NVLink error counters, inode and file-descriptor
counts, interface state and errors, the agent's spool and collectors), with the catalog's names
and labels and a healthy node's values (error counters do not move; a few gauges wander, so
some rules fire on some nodes). Series no rule reads are left out: a selector matches by name
and labels, so they cost loading, not evaluation. NVLink counters cover 4 of each GPU's 18
links, as the load generator's traffic counters do. XID counters are absent, as on a node that
has had no XID (the agent creates them at the first one).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import yaml
from loadgen import ROOT, SeriesSpec, node_series
from loadgen import _gpu_labels as gpu_labels  # the GPU label set, marks replaced per node

from server.rules.export import export_text
from server.rules.load import load_text

PACK_DIR = ROOT / "alerts"
PROMTOOL = "/usr/bin/promtool"
GIB = float(1 << 30)
_REASONS = ("sw_thermal_slowdown", "hw_thermal_slowdown", "hw_slowdown", "hw_power_brake_slowdown")
_FILESYSTEMS = (
    ("/dev/nvme0n1p2", "ext4", "/", 1.2e8),
    ("/dev/nvme0n1p3", "ext4", "/var", 6.5e7),
    ("/dev/md0", "xfs", "/scratch", 2.9e9),
)
_COLLECTORS = ("host", "gpu", "power", "events", "jobs")


def _constant(name: str, labels: dict[str, str], value: float) -> SeriesSpec:
    return SeriesSpec(name, labels, "%d", (value, value), 0.0, max(value, 0.0))


def _gpu_rule_series(gpu: int) -> list[SeriesSpec]:
    labels = gpu_labels(gpu)
    specs = [
        _constant("dcmon_gpu_clocks_event_reason", {**labels, "reason": reason}, 0)
        for reason in _REASONS
    ]
    specs += [
        _constant("DCGM_FI_DEV_PCIE_LINK_WIDTH", labels, 16),
        _constant("DCGM_FI_DEV_PCIE_MAX_LINK_WIDTH", labels, 16),
        _constant("DCGM_FI_DEV_PCIE_LINK_GEN", labels, 5),
        _constant("DCGM_FI_DEV_PCIE_MAX_LINK_GEN", labels, 5),
        _constant("DCGM_FI_DEV_ROW_REMAP_PENDING", labels, 0),
        _constant("DCGM_FI_DEV_ROW_REMAP_FAILURE", labels, 0),
        _constant("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", labels, 0),
        _constant("DCGM_FI_DEV_POWER_MGMT_LIMIT_DEF", labels, 700),
        _constant("DCGM_FI_DEV_ENFORCED_POWER_LIMIT", labels, 700),
        _constant("dcmon_gpu_recovery_action", labels, 0),
        _constant("dcmon_gpu_driver_unresponsive", labels, 0),
    ]
    for name in (
        "dcmon_gpu_nvlink_crc_flit_errors_total",
        "dcmon_gpu_nvlink_crc_data_errors_total",
        "dcmon_gpu_nvlink_replay_errors_total",
        "dcmon_gpu_nvlink_recovery_errors_total",
    ):
        specs += [_constant(name, {**labels, "link": str(link)}, 0) for link in range(4)]
    return specs


def _host_rule_series() -> list[SeriesSpec]:
    specs: list[SeriesSpec] = []
    for device, fstype, mountpoint, files in _FILESYSTEMS:
        labels = {"device": device, "fstype": fstype, "mountpoint": mountpoint}
        specs += [
            _constant("node_filesystem_files", labels, files),
            SeriesSpec(
                "node_filesystem_files_free", labels, "%d", (0.5 * files, 0.95 * files), 0,
                files, 2e3,
            ),
            _constant("node_filesystem_readonly", labels, 0),
            _constant("node_filesystem_device_error", labels, 0),
        ]  # fmt: skip
    specs.append(_constant("node_filefd_maximum", {}, 9.2e18))
    for device in ("eth0", "ib0", "ib1", "lo"):
        labels = {"device": device}
        specs += [
            _constant("node_network_up", labels, 1),
            _constant("node_network_receive_errs_total", labels, 0),
            _constant("node_network_transmit_errs_total", labels, 0),
        ]
    specs += [
        SeriesSpec("node_vmstat_pgmajfault", {}, "%d", (1e4, 1e6), rate_per_second=2.0),
        _constant("node_vmstat_oom_kill", {}, 0),
        _constant("node_memory_HardwareCorrupted_bytes", {}, 0),
    ]
    specs += [
        SeriesSpec(
            "node_disk_io_time_weighted_seconds_total", {"device": device}, "%.3f", (1e4, 1e6),
            rate_per_second=0.8,
        )
        for device in ("nvme0n1", "nvme1n1")
    ]  # fmt: skip
    budget = 2 * GIB
    specs += [
        SeriesSpec("dcmon_agent_spool_bytes", {}, "%d", (0, 4e6), 0, budget, 2e5),
        _constant("dcmon_agent_spool_budget_bytes", {}, budget),
        SeriesSpec("dcmon_agent_spool_oldest_age_seconds", {}, "%.3f", (0, 10), 0, 60, 3),
        _constant("dcmon_agent_spool_degraded", {}, 0),
        _constant("dcmon_agent_spool_dropped_batches_total", {}, 0),
        _constant("dcmon_agent_spool_corrupt_records_total", {}, 0),
        _constant("dcmon_agent_shipper_restarts_total", {}, 0),
        _constant("dcmon_agent_rejected_batches_total", {}, 0),
        _constant("dcmon_agent_poison_batches_total", {}, 0),
    ]
    specs += [_constant("node_scrape_collector_success", {"collector": c}, 1) for c in _COLLECTORS]
    return specs


def rule_series() -> tuple[SeriesSpec, ...]:
    """Returns: ``RULE_SERIES``: what every simulated node adds to the 400-series profile."""
    specs = [spec for gpu in range(8) for spec in _gpu_rule_series(gpu)]
    return tuple(specs + _host_rule_series())


RULE_SERIES = rule_series()


def pack_files() -> list[Path]:
    return sorted(PACK_DIR.glob("*.yaml"))


def pack_copy(
    folder: Path, interval_seconds: float, suffix: str = "", files: list[Path] | None = None
) -> list[Path]:
    """Write the pack into ``folder`` with every group's interval (and name + ``suffix``)
    changed; returns: the files written (one per pack file, the rest of each file as it is)."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for path in files or pack_files():
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in document.get("groups") or []:
            group["interval"] = f"{interval_seconds:g}s"
            group["name"] = f"{group['name']}{suffix}"
        target = folder / path.name
        target.write_text(yaml.safe_dump(document, sort_keys=False, width=200), encoding="utf-8")
        written.append(target)
    return written


def exported(files: list[Path], target: Path) -> Path:
    """Write ``dcmon rules export`` of ``files`` into ``target``; returns it."""
    loaded = [load_text(path.read_text(encoding="utf-8"), str(path)) for path in files]
    target.write_text(export_text(loaded), encoding="utf-8")
    return target


def promtool_check(path: Path) -> str | None:
    """Returns: None when ``promtool check rules`` accepts ``path``, else its complaint."""
    done = subprocess.run(
        [PROMTOOL, "check", "rules", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    return None if done.returncode == 0 else (done.stdout + done.stderr)[-1000:]


def rule_count(files: list[Path]) -> tuple[int, int]:
    """Returns: (groups, rules) in ``files``."""
    groups = rules = 0
    for path in files:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        for group in document.get("groups") or []:
            groups += 1
            rules += len(group.get("rules") or [])
    return groups, rules


def series_per_node() -> int:
    return len(node_series("full", RULE_SERIES))
