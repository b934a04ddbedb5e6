"""The readings table over the scripted twin: catalog names, labels, units, checks, cadence."""

from __future__ import annotations

import threading

import pytest

from agent.collectors.gpu.backend import (
    FieldId,
    GpmMetric,
    MigMode,
    NvmlError,
    NvmlFunctionNotFound,
    NvmlGpuLost,
    NvmlNotFound,
    NvmlNotSupported,
    PcieLink,
    RemappedRows,
)
from agent.collectors.gpu.readings import (
    CLOCKS_EVENT_REASON_LABELS,
    READING_NAMES,
    READINGS,
    STATIC,
    Reading,
    Values,
)
from agent.collectors.gpu.scripted import ScriptedBackend, sequence
from agent.wire.catalog import default_catalog
from tests.fakes.nvml import (
    MIG_INSTANCES,
    call_hangs,
    field_not_supported,
    h100,
    healthy_h100_node,
    mig_enabled,
)

CATALOG = default_catalog()
GPU_LABELS = set(CATALOG["dcmon_gpu_up"].labels)
BY_NAME = {reading.name: reading for reading in READINGS}
# What the probed H100 SXM VM does not offer (reference/gpu.md section 2), and what only other
# GPUs have: pre-Ampere retired pages, NVLink state, vGPU licensing, and the 20 ms PCIe sample
# (GPM gives PCIe rates on Hopper).
THRESHOLD_READINGS = {
    "slowdown_temperature_threshold": "DCGM_FI_DEV_SLOWDOWN_TEMP",
    "shutdown_temperature_threshold": "DCGM_FI_DEV_SHUTDOWN_TEMP",
    "gpu_max_temperature_threshold": "DCGM_FI_DEV_GPU_MAX_OP_TEMP",
    "mem_max_temperature_threshold": "DCGM_FI_DEV_MEM_MAX_OP_TEMP",
}
UNSUPPORTED_ON_H100_VM = {"retired_pages", "nvlink", "vgpu_license", "pcie_throughput"}


def read_all(backend: ScriptedBackend, index: int = 0) -> dict[str, Values | NvmlError]:
    """Every reading of GPU ``index``: its values, or the error it raised."""
    results: dict[str, Values | NvmlError] = {}
    for reading in READINGS:
        try:
            results[reading.name] = reading.read(backend, index)
        except NvmlError as exc:
            results[reading.name] = exc
    return results


def started(backend: ScriptedBackend) -> ScriptedBackend:
    backend.init()
    return backend


def values_of(results: dict[str, Values | NvmlError]) -> Values:
    return [value for result in results.values() if isinstance(result, list) for value in result]


def table(values: Values) -> dict[tuple[str, tuple[tuple[str, str], ...]], float | None]:
    return {(name, tuple(sorted((extra or {}).items()))): value for name, value, extra in values}


def test_every_reading_has_a_unique_name_and_a_sane_period() -> None:
    assert len(set(READING_NAMES)) == len(READINGS)
    for reading in READINGS:
        assert reading.name == reading.name.lower() and " " not in reading.name
        assert 0 <= reading.period <= 60 or reading.period == STATIC, reading.name
    # Only the facts fixed by the board are read once per session.
    assert {r.name for r in READINGS if r.period == STATIC} == set(THRESHOLD_READINGS)
    # Calls measured at 0.1 ms and more on an H100 are not made every tick.
    slow = {
        "total_energy",
        "violations",
        "ecc",
        "pcie_replay",
        "pcie_throughput",
        "mig",
        "nvlink",
        "retired_pages",
        "recovery_action",
    }
    for name in slow:
        assert BY_NAME[name].period >= 5, name
    assert BY_NAME["violations"].period >= 10
    assert BY_NAME["pcie_throughput"].period >= 60


def test_idle_h100_yields_catalog_names_labels_and_units() -> None:
    backend = started(healthy_h100_node(1))
    read_all(backend)  # GPM needs a first sample
    results = read_all(backend)
    unsupported = {name for name, result in results.items() if isinstance(result, NvmlError)}
    assert unsupported == UNSUPPORTED_ON_H100_VM
    for name in unsupported:
        assert isinstance(results[name], (NvmlNotSupported, NvmlFunctionNotFound)), name
    values = values_of(results)
    for metric, value, extra in values:
        spec = CATALOG[metric]
        assert spec.source == "gpu"
        assert GPU_LABELS | set(extra or {}) == spec.label_set, metric
        assert value is not None, f"{metric} failed its range check on an idle H100"
    got = table(values)
    assert got[("DCGM_FI_DEV_FB_RESERVED", ())] == 480.0  # MiB, as DCGM reports it
    assert got[("DCGM_FI_DEV_POWER_USAGE", ())] == 100.0  # W
    assert got[("DCGM_FI_DEV_ENFORCED_POWER_LIMIT", ())] == 700.0
    assert got[("DCGM_FI_DEV_POWER_MGMT_LIMIT_DEF", ())] == 700.0
    assert got[("DCGM_FI_DEV_ECC_CURRENT", ())] == 1.0
    assert got[("DCGM_FI_DEV_ECC_DBE_VOL_TOTAL", ())] == 0.0
    assert got[("DCGM_FI_DEV_PCIE_LINK_GEN", ())] == 5.0
    assert got[("DCGM_FI_DEV_PCIE_MAX_LINK_WIDTH", ())] == 16.0
    assert got[("DCGM_FI_DEV_MIG_MODE", ())] == 0.0
    assert got[("dcmon_gpu_recovery_action", ())] == 0.0
    assert got[("DCGM_FI_PROF_PCIE_TX_BYTES", ())] == 0.75 * 2**20  # bytes/s from MiB/s
    assert got[("DCGM_FI_PROF_SM_ACTIVE", ())] == 0.0
    # Every DCGM default the H100 offers is there.
    defaults = {
        "DCGM_FI_DEV_SM_CLOCK",
        "DCGM_FI_DEV_MEM_CLOCK",
        "DCGM_FI_DEV_MEMORY_TEMP",
        "DCGM_FI_DEV_GPU_TEMP",
        "DCGM_FI_DEV_POWER_USAGE",
        "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
        "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
        "DCGM_FI_DEV_GPU_UTIL",
        "DCGM_FI_DEV_MEM_COPY_UTIL",
        "DCGM_FI_DEV_ENC_UTIL",
        "DCGM_FI_DEV_DEC_UTIL",
        "DCGM_FI_DEV_FB_FREE",
        "DCGM_FI_DEV_FB_USED",
        "DCGM_FI_DEV_FB_RESERVED",
        "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS",
        "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS",
        "DCGM_FI_DEV_ROW_REMAP_FAILURE",
        "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
        "DCGM_FI_PROF_DRAM_ACTIVE",
        "DCGM_FI_PROF_PCIE_TX_BYTES",
        "DCGM_FI_PROF_PCIE_RX_BYTES",
    }
    assert defaults <= {metric for metric, _, _ in values}


def test_every_gpu_metric_in_the_catalog_is_produced_by_a_reading_or_the_collector() -> None:
    """A GPU with everything (NVLink, vGPU, MIG, retired pages) covers the whole catalog."""
    everything = {metric: 10.0 for metric in GpmMetric}
    first = NvmlNotFound("no previous GPM sample", code=6)
    script = h100(
        0,
        nvlink_states=[True, False],
        vgpu_license_status=1,
        mig_mode=MigMode(current=True, pending=True),
        mig_instances=list(MIG_INSTANCES),
        gpm_metrics=sequence(first, everything),
        mig_gpm_metrics={1: sequence(first, everything)},
    )
    for field_id in (FieldId.RETIRED_SBE, FieldId.RETIRED_DBE, FieldId.RETIRED_PENDING):
        script.fields[(field_id, 0)] = 0
    for field_id in (138, 139, 38, 45, 52, 59):
        script.fields[(field_id, 0)] = 5
    backend = started(ScriptedBackend([script]))
    emitted = {metric for metric, _, _ in values_of(read_all(backend))}
    emitted |= {metric for metric, _, _ in values_of(read_all(backend))}
    script.gpm_supported = False  # the 20 ms PCIe sample serves GPUs without GPM
    emitted |= {metric for metric, _, _ in BY_NAME["pcie_throughput"].read(backend, 0)}
    emitted |= {"dcmon_gpu_up", "dcmon_gpu_driver_unresponsive"}  # the collector's own
    assert emitted == {spec.name for spec in CATALOG.from_source("gpu")}


def test_clock_event_reasons_one_series_per_supported_reason() -> None:
    supported = 0x1 | 0x4 | 0x40  # idle, SW power cap, HW thermal slowdown
    backend = started(
        ScriptedBackend(
            [h100(0, supported_clocks_event_reasons=supported, clocks_event_reasons=0x4)]
        )
    )
    values = BY_NAME["clocks_event_reason_flags"].read(backend, 0)
    flags = {extra["reason"]: value for _, value, extra in values if extra}
    assert flags == {"gpu_idle": 0.0, "sw_power_cap": 1.0, "hw_thermal_slowdown": 0.0}
    assert set(CLOCKS_EVENT_REASON_LABELS.values()) >= set(flags)


def test_gpm_first_sample_gives_nothing_then_ratios_and_rates() -> None:
    busy = {GpmMetric.SM_UTIL: 87.5, GpmMetric.PCIE_RX_PER_SEC: 2048.0, GpmMetric.DRAM_BW_UTIL: 250}
    first = NvmlNotFound("no previous GPM sample", code=6)
    backend = started(ScriptedBackend([h100(0, gpm_metrics=sequence(first, busy))]))
    gpm = BY_NAME["gpm"]
    assert gpm.read(backend, 0) == []
    got = table(gpm.read(backend, 0))
    assert got[("DCGM_FI_PROF_SM_ACTIVE", ())] == 0.875
    assert got[("DCGM_FI_PROF_PCIE_RX_BYTES", ())] == 2048.0 * 2**20
    assert got[("DCGM_FI_PROF_DRAM_ACTIVE", ())] is None  # 250 % is a glitch
    assert ("DCGM_FI_PROF_PIPE_TENSOR_ACTIVE", ()) not in got  # not offered: not sent


def test_gpm_unsupported_gpu_raises_not_supported_and_uses_the_pcie_sample() -> None:
    backend = started(ScriptedBackend([h100(0, gpm_supported=False)]))
    with pytest.raises(NvmlNotSupported):
        BY_NAME["gpm"].read(backend, 0)
    got = table(BY_NAME["pcie_throughput"].read(backend, 0))
    assert got[("dcmon_gpu_pcie_tx_bytes_per_second", ())] == 768 * 1024
    assert got[("dcmon_gpu_pcie_rx_bytes_per_second", ())] == 1024 * 1024


def test_field_entries_fail_one_by_one() -> None:
    backend = started(field_not_supported())
    violations = table(BY_NAME["violations"].read(backend, 0))
    assert ("DCGM_FI_DEV_POWER_VIOLATION", ()) not in violations
    assert violations[("DCGM_FI_DEV_THERMAL_VIOLATION", ())] == 0.0
    ecc = table(BY_NAME["ecc"].read(backend, 0))
    assert ecc[("DCGM_FI_DEV_ECC_SBE_VOL_TOTAL", ())] == 0.0
    assert ("DCGM_FI_DEV_ECC_SBE_AGG_TOTAL", ()) not in ecc
    assert ("DCGM_FI_DEV_ECC_DBE_AGG_TOTAL", ()) not in ecc
    with pytest.raises(NvmlNotSupported):
        BY_NAME["ecc"].read(backend, 1)
    with pytest.raises(NvmlNotSupported):
        BY_NAME["retired_pages"].read(backend, 0)


def test_a_lost_gpu_in_a_field_entry_is_a_lost_gpu() -> None:
    backend = started(healthy_h100_node(1))
    backend.devices[0].fields[(FieldId.PERF_POLICY_THERMAL, 0)] = NvmlGpuLost("lost", code=15)
    with pytest.raises(NvmlGpuLost):
        BY_NAME["violations"].read(backend, 0)


def test_ecc_counts_only_while_ecc_is_enabled() -> None:
    backend = started(healthy_h100_node(1))
    backend.devices[0].fields[(FieldId.ECC_CURRENT, 0)] = 0
    backend.devices[0].fields[(FieldId.ECC_DBE_VOL_TOTAL, 0)] = 3
    got = table(BY_NAME["ecc"].read(backend, 0))
    assert got == {("DCGM_FI_DEV_ECC_CURRENT", ()): 0.0, ("DCGM_FI_DEV_ECC_PENDING", ()): 1.0}


def test_retired_pages_on_a_pre_ampere_gpu() -> None:
    backend = started(healthy_h100_node(1))
    fields = backend.devices[0].fields
    fields[(FieldId.RETIRED_SBE, 0)] = 2
    fields[(FieldId.RETIRED_DBE, 0)] = 1
    fields[(FieldId.RETIRED_PENDING, 0)] = 1
    got = table(BY_NAME["retired_pages"].read(backend, 0))
    assert got == {
        ("DCGM_FI_DEV_RETIRED_SBE", ()): 2.0,
        ("DCGM_FI_DEV_RETIRED_DBE", ()): 1.0,
        ("DCGM_FI_DEV_RETIRED_PENDING", ()): 1.0,
    }


def test_sentinels_and_glitches_are_dropped() -> None:
    backend = started(
        ScriptedBackend(
            [
                h100(
                    0,
                    remapped_rows=RemappedRows(0xFFFFFFFF, 2, pending=True, failure=False),
                    pcie_replay_count=0xFFFFFFFF,
                    pcie_link=PcieLink(generation=0, width=16, max_generation=5, max_width=7),
                    encoder_utilization_percent=4_294_967_295,
                    default_power_limit_mw=0,
                    compute_mode=9,
                )
            ]
        )
    )
    backend.devices[0].fields[(FieldId.GPU_RECOVERY_ACTION, 0)] = 1e12
    results = read_all(backend)
    got = table(values_of(results))
    assert got[("DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS", ())] is None
    assert got[("DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS", ())] == 2.0
    assert got[("DCGM_FI_DEV_ROW_REMAP_PENDING", ())] == 1.0
    assert got[("DCGM_FI_DEV_PCIE_REPLAY_COUNTER", ())] is None
    assert got[("DCGM_FI_DEV_PCIE_LINK_GEN", ())] is None
    assert got[("DCGM_FI_DEV_PCIE_MAX_LINK_WIDTH", ())] is None
    assert got[("DCGM_FI_DEV_ENC_UTIL", ())] is None
    assert got[("DCGM_FI_DEV_POWER_MGMT_LIMIT_DEF", ())] is None
    assert got[("DCGM_FI_DEV_COMPUTE_MODE", ())] is None
    assert got[("dcmon_gpu_recovery_action", ())] is None


def test_recovery_action_is_reported() -> None:
    backend = started(healthy_h100_node(1))
    backend.devices[0].fields[(FieldId.GPU_RECOVERY_ACTION, 0)] = 2  # node reboot
    assert BY_NAME["recovery_action"].read(backend, 0) == [("dcmon_gpu_recovery_action", 2.0, None)]


def test_nvlink_counters_per_up_link_and_totals() -> None:
    backend = started(ScriptedBackend([h100(0, nvlink_states=[True, False, True])]))
    fields = backend.devices[0].fields
    for link, (flit, tx_kib) in {0: (3, 100), 2: (4, 50)}.items():
        fields[(FieldId.NVLINK_CRC_FLIT_ERROR_COUNT, link)] = flit
        fields[(FieldId.NVLINK_THROUGHPUT_DATA_TX, link)] = tx_kib
        fields[(FieldId.NVLINK_THROUGHPUT_DATA_RX, link)] = 1
    fields[(FieldId.NVLINK_CRC_FLIT_ERROR_COUNT, 1)] = 999  # link 1 is down: never asked
    got = table(BY_NAME["nvlink"].read(backend, 0))
    assert got[("dcmon_gpu_nvlink_up", (("link", "1"),))] == 0.0
    assert got[("dcmon_gpu_nvlink_up", (("link", "2"),))] == 1.0
    assert got[("dcmon_gpu_nvlink_crc_flit_errors_total", (("link", "0"),))] == 3.0
    assert ("dcmon_gpu_nvlink_crc_flit_errors_total", (("link", "1"),)) not in got
    assert got[("dcmon_gpu_nvlink_tx_bytes_total", (("link", "2"),))] == 50 * 1024
    assert got[("DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL", ())] == 7.0
    assert got[("DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL", ())] == 100 + 50 + 1 + 1  # KiB
    assert backend.call_count("field:38:1", 0) == 0
    assert backend.call_count("field_values", 0) == 1, "one batched call per GPU"


def test_nvlink_unsupported_is_not_supported() -> None:
    backend = started(healthy_h100_node(1))
    with pytest.raises(NvmlNotSupported):
        BY_NAME["nvlink"].read(backend, 0)


def test_mig_instances_carry_dcgm_exporter_labels() -> None:
    backend = started(mig_enabled())
    results = read_all(backend)
    assert isinstance(results["utilization"], NvmlNotSupported)
    assert isinstance(results["remapped_rows"], NvmlNotSupported)
    mig = results["mig"]
    assert isinstance(mig, list)
    first = table(mig)
    three_g = (("GPU_I_ID", "1"), ("GPU_I_PROFILE", "3g.40gb"))
    assert first[("DCGM_FI_DEV_MIG_MODE", ())] == 1.0
    assert first[("dcmon_gpu_mig_mode_pending", ())] == 1.0
    assert first[("dcmon_gpu_mig_memory_used_bytes", three_g)] == float(8 << 30)
    assert ("dcmon_gpu_mig_sm_active_ratio", three_g) not in first  # first GPM sample
    second = table(BY_NAME["mig"].read(backend, 0))
    assert second[("dcmon_gpu_mig_sm_active_ratio", three_g)] == 0.815
    assert second[("dcmon_gpu_mig_graphics_active_ratio", three_g)] == 0.93
    two_g = (("GPU_I_ID", "2"), ("GPU_I_PROFILE", "2g.20gb"))
    assert second[("dcmon_gpu_mig_sm_active_ratio", two_g)] == 0.0
    for metric, _, extra in BY_NAME["mig"].read(backend, 0):
        assert GPU_LABELS | set(extra or {}) == CATALOG[metric].label_set


def test_mig_mode_off_reads_no_instances() -> None:
    backend = started(healthy_h100_node(1))
    assert table(BY_NAME["mig"].read(backend, 0)) == {
        ("DCGM_FI_DEV_MIG_MODE", ()): 0.0,
        ("dcmon_gpu_mig_mode_pending", ()): 0.0,
    }
    assert backend.call_count("mig_instances", 0) == 0


def test_a_hung_call_blocks_only_its_reading_until_released() -> None:
    release = threading.Event()
    backend = started(call_hangs(release, call="power_usage_mw", index=0))
    reading: Reading = BY_NAME["power_usage"]
    done: list[Values] = []
    worker = threading.Thread(target=lambda: done.append(reading.read(backend, 0)))
    worker.start()
    worker.join(0.2)
    assert worker.is_alive() and not done, "the call should hang"
    assert BY_NAME["temperature"].read(backend, 0) == [("DCGM_FI_DEV_GPU_TEMP", 40.0, None)]
    release.set()
    worker.join(5)
    assert done == [[("DCGM_FI_DEV_POWER_USAGE", 100.0, None)]]
