"""The real NVML backend and the collector on real GPUs (marker ``gpu``; meant for an H100 node).

Skips, with the reason, where NVML cannot start (no driver, no GPU); with DCMON_REQUIRE_GPU=1
it fails instead, so a GPU CI job cannot pass by skipping. Checks every metric the collector
emits for sanity against NVML's own facts about each GPU.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from agent.collectors.base import Sample
from agent.collectors.gpu import (
    Clock,
    GpuCollector,
    GpuInventory,
    NvmlUnavailable,
    PynvmlBackend,
)
from agent.collectors.gpu.backend import GpmMetric, MigMode, NvmlError
from agent.collectors.gpu.readings import READING_NAMES, READINGS
from agent.collectors.gpu.scripted import ScriptedBackend, sequence
from agent.wire.catalog import default_catalog
from tests.catalog_check import assert_conforms
from tests.fakes.nvml import MIG_INSTANCES, h100

pytestmark = pytest.mark.gpu

HOSTNAME = "gpu-test-node"
BUS_ID = re.compile(r"^[0-9A-Fa-f]{8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7]$")
CATALOG = default_catalog()
GPU_LABELS = set(CATALOG["dcmon_gpu_up"].labels)
GPM_METRICS = {spec.name for spec in CATALOG.from_source("gpu") if "_PROF_" in spec.name}
# Readings a real GPU may lack: by generation or board (HBM sensor, retired pages before
# Ampere, GPM from Hopper, NVLink on SXM boards, vGPU licensing, MIG, video engines, the PCIe
# sample where GPM serves), or by setup (ECC off, MIG mode making some readings unsupported).
SETUP_DEPENDENT = {
    "retired_pages",
    "nvlink",
    "vgpu_license",
    "pcie_throughput",
    "utilization",
    "remapped_rows",
    "ecc",
}
MAY_BE_UNSUPPORTED = SETUP_DEPENDENT | {
    "memory_temperature",
    "gpm",
    "mig",
    "encoder_utilization",
    "decoder_utilization",
    "violations",
    "recovery_action",
    "clocks_event_reason_flags",
    "pcie_replay",
    # Thresholds a board may not report (memory and GPU operating limits, older boards).
    "slowdown_temperature_threshold",
    "shutdown_temperature_threshold",
    "gpu_max_temperature_threshold",
    "mem_max_temperature_threshold",
}
# Metrics whose presence depends on state, not on support: per-instance MIG series, ECC
# counters (only while ECC is on), per-reason flags, and per-field entries of batched reads.
STATE_DEPENDENT = {spec.name for spec in CATALOG.from_source("gpu") if "GPU_I_ID" in spec.labels}
ALWAYS_PRESENT = {
    "DCGM_FI_DEV_GPU_UTIL",
    "DCGM_FI_DEV_MEM_COPY_UTIL",
    "DCGM_FI_DEV_FB_USED",
    "DCGM_FI_DEV_FB_FREE",
    "DCGM_FI_DEV_FB_RESERVED",
    "DCGM_FI_DEV_POWER_USAGE",
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
    "DCGM_FI_DEV_GPU_TEMP",
    "DCGM_FI_DEV_MEMORY_TEMP",
    "DCGM_FI_DEV_SM_CLOCK",
    "DCGM_FI_DEV_MEM_CLOCK",
    "DCGM_FI_DEV_CLOCKS_EVENT_REASONS",
    "DCGM_FI_DEV_ENC_UTIL",
    "DCGM_FI_DEV_DEC_UTIL",
    "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
    "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
    "DCGM_FI_DEV_ROW_REMAP_PENDING",
    "DCGM_FI_DEV_ROW_REMAP_FAILURE",
    "DCGM_FI_DEV_PCIE_LINK_GEN",
    "DCGM_FI_DEV_PCIE_LINK_WIDTH",
    "DCGM_FI_DEV_PCIE_MAX_LINK_GEN",
    "DCGM_FI_DEV_PCIE_MAX_LINK_WIDTH",
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
    "DCGM_FI_DEV_ECC_CURRENT",
    "DCGM_FI_DEV_ENFORCED_POWER_LIMIT",
    "DCGM_FI_DEV_POWER_MGMT_LIMIT_DEF",
    "DCGM_FI_DEV_PERSISTENCE_MODE",
    "DCGM_FI_DEV_COMPUTE_MODE",
    "DCGM_FI_DEV_MIG_MODE",
    "dcmon_gpu_mig_mode_pending",
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
    "DCGM_FI_PROF_SM_ACTIVE",
    "DCGM_FI_PROF_SM_OCCUPANCY",
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
    "DCGM_FI_PROF_DRAM_ACTIVE",
} - STATE_DEPENDENT
UNIT_RANGES: dict[str, tuple[float, float]] = {
    "bool": (0, 1),
    "ratio": (0, 1),
    "percent": (0, 100),
    "celsius": (5, 120),
    "watts": (1, 2_000),
    "megahertz": (1, 5_000),
    "generation": (1, 6),
    "lanes": (1, 32),
    "enum": (0, 255),
    "bitmask": (0, 2**16),
}
# Parts with HBM: everything, memory temperature included, must be supported.
HBM_MODELS = re.compile(r"H100|H200|H800|H20|A100|A800|A30|B100|B200|B300|GB200|GB300|GH200")


@pytest.fixture(scope="module")
def reading_metrics() -> dict[str, set[str]]:
    """Which metrics each reading yields, learned from a scripted GPU with every feature."""
    everything = {metric: 10.0 for metric in GpmMetric}
    script = h100(
        0,
        nvlink_states=[True],
        vgpu_license_status=1,
        mig_mode=MigMode(current=True, pending=True),
        mig_instances=list(MIG_INSTANCES),
        gpm_metrics=sequence(everything),
        mig_gpm_metrics={1: everything, 2: everything},
    )
    for field_id in (29, 30, 31, 138, 139, 38, 45, 52, 59):
        script.fields[(field_id, 0)] = 0
    backend = ScriptedBackend([script])
    backend.init()
    metrics: dict[str, set[str]] = {}
    for reading in READINGS:
        script.gpm_supported = reading.name != "pcie_throughput"
        try:
            metrics[reading.name] = {name for name, _, _ in reading.read(backend, 0)}
        except NvmlError as exc:
            raise AssertionError(f"{reading.name} does not answer a full-featured GPU") from exc
    return metrics


def _unavailable(reason: str) -> None:
    if os.environ.get("DCMON_REQUIRE_GPU") == "1":
        pytest.fail(f"{reason}, and DCMON_REQUIRE_GPU=1")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def nvml() -> Iterator[PynvmlBackend]:
    """A real NVML session, or a skip saying why there is none."""
    backend = PynvmlBackend()
    try:
        backend.init()
    except NvmlUnavailable as exc:
        _unavailable(f"NVML cannot start here: {exc} ({exc.hint})")
    try:
        if backend.device_count() == 0:
            _unavailable("NVML started but sees no GPU")
        yield backend
    finally:
        backend.shutdown()


@dataclass(frozen=True)
class Run:
    """Two collections about one second apart, and what the collector learned."""

    first: list[Sample]
    second: list[Sample]
    elapsed_s: float
    inventory: GpuInventory
    unsupported: dict[int, frozenset[str]]


@pytest.fixture(scope="module")
def run(nvml: PynvmlBackend) -> Iterator[Run]:
    # The collector's clock runs a minute ahead before the second collection, so readings on a
    # slower cadence (energy every 5 s, up to 60 s) are read afresh rather than sent again.
    ahead = [0.0]
    collector = GpuCollector(
        PynvmlBackend(), HOSTNAME, monotonic=lambda: time.monotonic() + ahead[0]
    )
    try:
        started = time.monotonic()
        first = collector.collect(time.time())
        time.sleep(1.0)
        ahead[0] = 60.0
        second = collector.collect(time.time())
        elapsed = time.monotonic() - started
        yield Run(first, second, elapsed, collector.inventory(), collector.unsupported_readings())
    finally:
        collector.close()


def table(samples: list[Sample]) -> dict[tuple[str, int], float]:
    return {(s.name, int(s.labels["gpu"])): s.value for s in samples}


def test_samples_conform_to_the_catalog(run: Run) -> None:
    assert_conforms(run.first, source="gpu")
    assert_conforms(run.second, source="gpu")


def test_every_gpu_is_up_and_reports_every_supported_metric(
    nvml: PynvmlBackend, run: Run, reading_metrics: dict[str, set[str]]
) -> None:
    driver_major = int(nvml.driver_version().split(".")[0])
    for index in range(nvml.device_count()):
        unsupported = run.unsupported[index]
        assert unsupported <= set(READING_NAMES)
        assert unsupported <= MAY_BE_UNSUPPORTED, f"GPU {index}: {sorted(unsupported)}"
        if HBM_MODELS.search(nvml.name(index)):
            # Datacenter parts: only what depends on the board's setup may be missing.
            assert unsupported <= SETUP_DEPENDENT, f"GPU {index} ({nvml.name(index)})"
        for samples in (run.first, run.second):
            names = {s.name for s in samples if s.labels["gpu"] == str(index)}
            expected = {"dcmon_gpu_up", "dcmon_gpu_driver_unresponsive"}
            for reading, metrics in reading_metrics.items():
                if reading not in unsupported:
                    expected |= metrics & ALWAYS_PRESENT
            if driver_major < 515:  # memory info v2 (reserved) may be missing
                expected.discard("DCGM_FI_DEV_FB_RESERVED")
            if samples is run.first:
                expected -= GPM_METRICS  # GPM answers from its second sample on
            assert names >= expected, f"GPU {index} lacks {sorted(expected - names)}"
            assert table(samples)[("dcmon_gpu_up", index)] == 1.0
            assert table(samples)[("dcmon_gpu_driver_unresponsive", index)] == 0.0


def test_every_value_is_in_the_range_its_catalog_unit_allows(run: Run) -> None:
    for samples in (run.first, run.second):
        for sample in samples:
            unit = CATALOG[sample.name].unit
            low, high = UNIT_RANGES.get(unit, (0.0, float("inf")))
            assert low <= sample.value <= high, f"{sample.name}{sample.labels} = {sample.value}"
            if unit in ("bool", "enum", "generation", "lanes", "bitmask"):
                assert sample.value == int(sample.value), f"{sample.name} = {sample.value}"


def test_counters_do_not_go_backwards(run: Run) -> None:
    def key(sample: Sample) -> tuple[str, tuple[tuple[str, str], ...]]:
        return sample.name, tuple(sorted(sample.labels.items()))

    before = {key(s): s.value for s in run.first if CATALOG[s.name].type == "counter"}
    for sample in run.second:
        if key(sample) in before:
            assert sample.value >= before[key(sample)], f"{sample.name}{sample.labels}"


def test_gpm_and_pcie_agree_with_the_gpu(nvml: PynvmlBackend, run: Run) -> None:
    values = table(run.second)
    for index in range(nvml.device_count()):
        link = nvml.pcie_link(index)
        assert 1 <= link.generation <= link.max_generation, f"GPU {index}: {link}"
        assert 1 <= link.width <= link.max_width, f"GPU {index}: {link}"
        if nvml.gpm_supported(index) and ("DCGM_FI_PROF_SM_ACTIVE", index) in values:
            sm_active = values[("DCGM_FI_PROF_SM_ACTIVE", index)]
            occupancy = values[("DCGM_FI_PROF_SM_OCCUPANCY", index)]
            assert 0 <= occupancy <= 1 and 0 <= sm_active <= 1


def test_labels_are_the_gpus_nvml_identity(nvml: PynvmlBackend, run: Run) -> None:
    for sample in run.first:
        index = int(sample.labels["gpu"])
        minor = nvml.minor_number(index)
        extra = set(sample.labels) - GPU_LABELS
        assert extra <= {"reason", "link", "GPU_I_ID", "GPU_I_PROFILE"}, sample.name
        assert {name: sample.labels[name] for name in GPU_LABELS} == {
            "gpu": str(index),
            "UUID": nvml.uuid(index),
            "pci_bus_id": nvml.pci_bus_id(index),
            "device": f"nvidia{minor}",
            "modelName": nvml.name(index),
            "Hostname": HOSTNAME,
            "DCGM_FI_DRIVER_VERSION": nvml.driver_version(),
        }
        assert sample.labels["UUID"].startswith(("GPU-", "MIG-"))
        assert BUS_ID.match(sample.labels["pci_bus_id"]), sample.labels["pci_bus_id"]
        if Path("/dev/nvidiactl").exists():
            assert Path(f"/dev/nvidia{minor}").exists()


def test_inventory_matches_nvml(nvml: PynvmlBackend, run: Run) -> None:
    inventory = run.inventory
    assert inventory.status == ""
    assert inventory.driver_version == nvml.driver_version()
    assert re.match(r"^\d+\.\d+", inventory.driver_version or "")
    assert [facts.index for facts in inventory.gpus] == list(range(nvml.device_count()))
    for facts in inventory.gpus:
        assert facts.uuid == nvml.uuid(facts.index)
        assert facts.model == nvml.name(facts.index)
        assert facts.memory_total_bytes == nvml.memory_info(facts.index).total_bytes > 0


def test_framebuffer_adds_up_to_the_total(run: Run) -> None:
    totals_mib = {
        facts.index: (facts.memory_total_bytes or 0) / 2**20 for facts in run.inventory.gpus
    }
    for samples in (run.first, run.second):
        values = table(samples)
        for index, total in totals_mib.items():
            used = values[("DCGM_FI_DEV_FB_USED", index)]
            free = values[("DCGM_FI_DEV_FB_FREE", index)]
            reserved = values.get(("DCGM_FI_DEV_FB_RESERVED", index), 0.0)
            assert min(used, free, reserved) >= 0
            assert used + free + reserved == pytest.approx(total, abs=1.0), f"GPU {index}"


def test_power_is_positive_and_within_the_enforced_limit(nvml: PynvmlBackend, run: Run) -> None:
    for samples in (run.first, run.second):
        for (name, index), watts in table(samples).items():
            if name == "DCGM_FI_DEV_POWER_USAGE":
                limit_w = nvml.enforced_power_limit_mw(index) / 1000
                assert 0 < watts <= limit_w * 1.10, f"GPU {index}: {watts} W, limit {limit_w} W"


def test_energy_increases_between_collections_at_a_plausible_rate(
    nvml: PynvmlBackend, run: Run
) -> None:
    before, after = table(run.first), table(run.second)
    for index in range(nvml.device_count()):
        key = ("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", index)
        joules = (after[key] - before[key]) / 1000
        assert joules > 0, f"GPU {index}: energy did not increase in {run.elapsed_s:.2f} s"
        limit_w = nvml.enforced_power_limit_mw(index) / 1000
        assert joules / run.elapsed_s <= limit_w * 1.10, f"GPU {index}: {joules} J"


def test_utilization_and_temperatures_are_in_range(run: Run) -> None:
    for samples in (run.first, run.second):
        for (name, index), value in table(samples).items():
            if name in ("DCGM_FI_DEV_GPU_UTIL", "DCGM_FI_DEV_MEM_COPY_UTIL"):
                assert 0 <= value <= 100, f"GPU {index}: {name}={value}"
            elif name == "DCGM_FI_DEV_GPU_TEMP":
                assert 5 <= value <= 110, f"GPU {index}: {name}={value}"
            elif name == "DCGM_FI_DEV_MEMORY_TEMP":
                assert 5 <= value <= 120, f"GPU {index}: {name}={value}"


def test_clocks_are_positive_and_at_most_the_maximum(nvml: PynvmlBackend, run: Run) -> None:
    for samples in (run.first, run.second):
        values = table(samples)
        for index in range(nvml.device_count()):
            for metric, clock in (
                ("DCGM_FI_DEV_SM_CLOCK", Clock.SM),
                ("DCGM_FI_DEV_MEM_CLOCK", Clock.MEM),
            ):
                mhz = values[(metric, index)]
                assert 0 < mhz <= nvml.max_clock_mhz(index, clock) * 1.05, f"GPU {index}: {metric}"


def test_clock_event_reasons_are_a_bitmask(run: Run) -> None:
    for samples in (run.first, run.second):
        for (name, index), value in table(samples).items():
            if name == "DCGM_FI_DEV_CLOCKS_EVENT_REASONS":
                assert value == int(value) and 0 <= value < 2**16, f"GPU {index}: {value}"


def test_real_backend_uses_the_current_apis(nvml: PynvmlBackend) -> None:
    """On a current driver, memory info v2 (with the reserve) and field values work."""
    if int(nvml.driver_version().split(".")[0]) < 515:
        pytest.skip("driver older than R515: memory info v1 fallback expected")
    for index in range(nvml.device_count()):
        memory = nvml.memory_info(index)
        assert memory.reserved_bytes is not None
        assert memory.used_bytes + memory.free_bytes + memory.reserved_bytes == memory.total_bytes
        assert nvml.clocks_event_reasons(index) >= 0
        assert 5 <= nvml.temperature_c(index) <= 110
