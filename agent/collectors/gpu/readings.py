"""What each NVML reading becomes: catalog metric names, units, range checks and cadence.

Stage: part of the GPU collector. Each ``Reading`` is one backend call per GPU (or a few that
belong together, such as one batched field read) and the samples it yields, converted once from
NVML's units to the catalog's: dcgm-exporter's units where the metric has a DCGM name (W, MiB,
MHz, mJ and ns counters, ratios for ``DCGM_FI_PROF_*``), base units for ``dcmon_*``. A value
failing its range check comes back as None and is dropped by the collector, never sent; so is
any driver sentinel (``0xFFFFFFFF`` and friends).

Each reading's ``period`` follows what its call costs on an H100 (reference/gpu.md section 2):
2-10 us calls every tick, 0.1-1 ms calls every 10-30 s, static-ish facts every 60 s, and the
20 ms PCIe throughput sample once a minute, only where GPM cannot give PCIe rates. Facts fixed
by the board (the temperature thresholds) are ``STATIC``: read once per NVML session, at the
GPU's first read, and sent again every tick, so a rule can compare a live reading with them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agent.collectors.gpu.backend import (
    Clock,
    ClocksEventReason,
    FieldId,
    GpmMetric,
    NvmlBackend,
    NvmlError,
    NvmlFunctionNotFound,
    NvmlGpuLost,
    NvmlNotFound,
    NvmlNotSupported,
    NvmlUnavailable,
    PcieCounter,
    TemperatureThreshold,
)

_BYTES_PER_KIB = 1 << 10
_BYTES_PER_MIB = 1 << 20
_MAX_TEMPERATURE_C = 200  # DCGM discards hotter readings as out of range
_MAX_POWER_W = 10_000.0  # no board draws more; larger values are garbage
_MAX_RATE_MIB_S = 16 * 1024 * 1024.0  # 16 TiB/s: beyond any link, so a glitch
_UINT_SENTINEL = 0xFFFFFFFF  # NVML's "not available" in 32-bit fields
_COUNTER_LIMIT = 1 << 63  # 64-bit "not available" values and garbage lie above
_PCIE_WIDTHS = frozenset({1, 2, 4, 8, 12, 16, 32})

GPU_UP = "dcmon_gpu_up"
DRIVER_UNRESPONSIVE = "dcmon_gpu_driver_unresponsive"
DRIVER_VERSION_LABEL = "DCGM_FI_DRIVER_VERSION"
MIG_LABELS = ("GPU_I_ID", "GPU_I_PROFILE")

GPU_UTIL = "DCGM_FI_DEV_GPU_UTIL"
MEM_COPY_UTIL = "DCGM_FI_DEV_MEM_COPY_UTIL"
ENC_UTIL = "DCGM_FI_DEV_ENC_UTIL"
DEC_UTIL = "DCGM_FI_DEV_DEC_UTIL"
FB_USED = "DCGM_FI_DEV_FB_USED"
FB_FREE = "DCGM_FI_DEV_FB_FREE"
FB_RESERVED = "DCGM_FI_DEV_FB_RESERVED"
POWER_USAGE = "DCGM_FI_DEV_POWER_USAGE"
TOTAL_ENERGY = "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION"
GPU_TEMP = "DCGM_FI_DEV_GPU_TEMP"
MEMORY_TEMP = "DCGM_FI_DEV_MEMORY_TEMP"
SLOWDOWN_TEMP = "DCGM_FI_DEV_SLOWDOWN_TEMP"
SHUTDOWN_TEMP = "DCGM_FI_DEV_SHUTDOWN_TEMP"
GPU_MAX_OP_TEMP = "DCGM_FI_DEV_GPU_MAX_OP_TEMP"
MEM_MAX_OP_TEMP = "DCGM_FI_DEV_MEM_MAX_OP_TEMP"
SM_CLOCK = "DCGM_FI_DEV_SM_CLOCK"
MEM_CLOCK = "DCGM_FI_DEV_MEM_CLOCK"
CLOCKS_EVENT_REASONS = "DCGM_FI_DEV_CLOCKS_EVENT_REASONS"
CLOCKS_EVENT_REASON = "dcmon_gpu_clocks_event_reason"
ECC_CURRENT = "DCGM_FI_DEV_ECC_CURRENT"
ECC_PENDING = "DCGM_FI_DEV_ECC_PENDING"
REMAPPED_CORRECTABLE = "DCGM_FI_DEV_CORRECTABLE_REMAPPED_ROWS"
REMAPPED_UNCORRECTABLE = "DCGM_FI_DEV_UNCORRECTABLE_REMAPPED_ROWS"
ROW_REMAP_PENDING = "DCGM_FI_DEV_ROW_REMAP_PENDING"
ROW_REMAP_FAILURE = "DCGM_FI_DEV_ROW_REMAP_FAILURE"
PCIE_LINK_GEN = "DCGM_FI_DEV_PCIE_LINK_GEN"
PCIE_LINK_WIDTH = "DCGM_FI_DEV_PCIE_LINK_WIDTH"
PCIE_MAX_LINK_GEN = "DCGM_FI_DEV_PCIE_MAX_LINK_GEN"
PCIE_MAX_LINK_WIDTH = "DCGM_FI_DEV_PCIE_MAX_LINK_WIDTH"
PCIE_REPLAY = "DCGM_FI_DEV_PCIE_REPLAY_COUNTER"
PCIE_TX_RATE = "dcmon_gpu_pcie_tx_bytes_per_second"
PCIE_RX_RATE = "dcmon_gpu_pcie_rx_bytes_per_second"
NVLINK_UP = "dcmon_gpu_nvlink_up"
NVLINK_BANDWIDTH_TOTAL = "DCGM_FI_DEV_NVLINK_BANDWIDTH_TOTAL"
RECOVERY_ACTION = "dcmon_gpu_recovery_action"
ENFORCED_POWER_LIMIT = "DCGM_FI_DEV_ENFORCED_POWER_LIMIT"
DEFAULT_POWER_LIMIT = "DCGM_FI_DEV_POWER_MGMT_LIMIT_DEF"
PERSISTENCE_MODE = "DCGM_FI_DEV_PERSISTENCE_MODE"
COMPUTE_MODE = "DCGM_FI_DEV_COMPUTE_MODE"
MIG_MODE = "DCGM_FI_DEV_MIG_MODE"
MIG_MODE_PENDING = "dcmon_gpu_mig_mode_pending"
MIG_MEMORY_USED = "dcmon_gpu_mig_memory_used_bytes"
MIG_MEMORY_FREE = "dcmon_gpu_mig_memory_free_bytes"
VGPU_LICENSE_STATUS = "DCGM_FI_DEV_VGPU_LICENSE_STATUS"

Labels = dict[str, str] | None
Values = list[tuple[str, float | None, Labels]]
"""(metric name, value in catalog units, extra labels or None); None values failed a range check.

Extra labels are added to the GPU's own (``gpu, UUID, …``): e.g. ``link`` for a per-NVLink
counter, ``reason`` for one clock-event reason, ``GPU_I_ID``/``GPU_I_PROFILE`` for a MIG
instance.
"""

# Field reads: (NVML field, catalog metric); every one a counter unless noted.
_VIOLATION_FIELDS = (
    (FieldId.PERF_POLICY_POWER, "DCGM_FI_DEV_POWER_VIOLATION"),
    (FieldId.PERF_POLICY_THERMAL, "DCGM_FI_DEV_THERMAL_VIOLATION"),
    (FieldId.PERF_POLICY_SYNC_BOOST, "DCGM_FI_DEV_SYNC_BOOST_VIOLATION"),
    (FieldId.PERF_POLICY_BOARD_LIMIT, "DCGM_FI_DEV_BOARD_LIMIT_VIOLATION"),
    (FieldId.PERF_POLICY_LOW_UTILIZATION, "DCGM_FI_DEV_LOW_UTIL_VIOLATION"),
    (FieldId.PERF_POLICY_RELIABILITY, "DCGM_FI_DEV_RELIABILITY_VIOLATION"),
)
_ECC_COUNT_FIELDS = (
    (FieldId.ECC_SBE_VOL_TOTAL, "DCGM_FI_DEV_ECC_SBE_VOL_TOTAL"),
    (FieldId.ECC_DBE_VOL_TOTAL, "DCGM_FI_DEV_ECC_DBE_VOL_TOTAL"),
    (FieldId.ECC_SBE_AGG_TOTAL, "DCGM_FI_DEV_ECC_SBE_AGG_TOTAL"),
    (FieldId.ECC_DBE_AGG_TOTAL, "DCGM_FI_DEV_ECC_DBE_AGG_TOTAL"),
)
_RETIRED_FIELDS = (
    (FieldId.RETIRED_SBE, "DCGM_FI_DEV_RETIRED_SBE"),
    (FieldId.RETIRED_DBE, "DCGM_FI_DEV_RETIRED_DBE"),
    (FieldId.RETIRED_PENDING, "DCGM_FI_DEV_RETIRED_PENDING"),  # a 0/1 gauge
)
# Per NVLink: (field, per-link dcmon counter, GPU-wide DCGM total or None, bytes per unit).
_NVLINK_FIELDS = (
    (
        FieldId.NVLINK_CRC_FLIT_ERROR_COUNT,
        "dcmon_gpu_nvlink_crc_flit_errors_total",
        "DCGM_FI_DEV_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL",
        1,
    ),
    (
        FieldId.NVLINK_CRC_DATA_ERROR_COUNT,
        "dcmon_gpu_nvlink_crc_data_errors_total",
        "DCGM_FI_DEV_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL",
        1,
    ),
    (
        FieldId.NVLINK_REPLAY_ERROR_COUNT,
        "dcmon_gpu_nvlink_replay_errors_total",
        "DCGM_FI_DEV_NVLINK_REPLAY_ERROR_COUNT_TOTAL",
        1,
    ),
    (
        FieldId.NVLINK_RECOVERY_ERROR_COUNT,
        "dcmon_gpu_nvlink_recovery_errors_total",
        "DCGM_FI_DEV_NVLINK_RECOVERY_ERROR_COUNT_TOTAL",
        1,
    ),
    (FieldId.NVLINK_THROUGHPUT_DATA_TX, "dcmon_gpu_nvlink_tx_bytes_total", None, _BYTES_PER_KIB),
    (FieldId.NVLINK_THROUGHPUT_DATA_RX, "dcmon_gpu_nvlink_rx_bytes_total", None, _BYTES_PER_KIB),
)
_NVLINK_THROUGHPUT = (FieldId.NVLINK_THROUGHPUT_DATA_TX, FieldId.NVLINK_THROUGHPUT_DATA_RX)

# GPM metric -> DCGM profiling metric: ratios (GPM percent / 100) and rates (MiB/s -> bytes/s).
_GPM_RATIOS = (
    (GpmMetric.GRAPHICS_UTIL, "DCGM_FI_PROF_GR_ENGINE_ACTIVE"),
    (GpmMetric.SM_UTIL, "DCGM_FI_PROF_SM_ACTIVE"),
    (GpmMetric.SM_OCCUPANCY, "DCGM_FI_PROF_SM_OCCUPANCY"),
    (GpmMetric.ANY_TENSOR_UTIL, "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE"),
    (GpmMetric.DRAM_BW_UTIL, "DCGM_FI_PROF_DRAM_ACTIVE"),
    (GpmMetric.FP64_UTIL, "DCGM_FI_PROF_PIPE_FP64_ACTIVE"),
    (GpmMetric.FP32_UTIL, "DCGM_FI_PROF_PIPE_FP32_ACTIVE"),
    (GpmMetric.FP16_UTIL, "DCGM_FI_PROF_PIPE_FP16_ACTIVE"),
)
_GPM_RATES = (
    (GpmMetric.PCIE_TX_PER_SEC, "DCGM_FI_PROF_PCIE_TX_BYTES"),
    (GpmMetric.PCIE_RX_PER_SEC, "DCGM_FI_PROF_PCIE_RX_BYTES"),
    (GpmMetric.NVLINK_TOTAL_TX_PER_SEC, "DCGM_FI_PROF_NVLINK_TX_BYTES"),
    (GpmMetric.NVLINK_TOTAL_RX_PER_SEC, "DCGM_FI_PROF_NVLINK_RX_BYTES"),
)
_GPM_METRICS = tuple(metric for metric, _ in _GPM_RATIOS + _GPM_RATES)
_MIG_GPM_RATIOS = (
    (GpmMetric.GRAPHICS_UTIL, "dcmon_gpu_mig_graphics_active_ratio"),
    (GpmMetric.SM_UTIL, "dcmon_gpu_mig_sm_active_ratio"),
    (GpmMetric.ANY_TENSOR_UTIL, "dcmon_gpu_mig_tensor_active_ratio"),
    (GpmMetric.DRAM_BW_UTIL, "dcmon_gpu_mig_dram_active_ratio"),
)

# Label values of ``dcmon_gpu_clocks_event_reason{reason=...}``.
CLOCKS_EVENT_REASON_LABELS: dict[ClocksEventReason, str] = {
    ClocksEventReason.GPU_IDLE: "gpu_idle",
    ClocksEventReason.APPLICATIONS_CLOCKS_SETTING: "applications_clocks_setting",
    ClocksEventReason.SW_POWER_CAP: "sw_power_cap",
    ClocksEventReason.HW_SLOWDOWN: "hw_slowdown",
    ClocksEventReason.SYNC_BOOST: "sync_boost",
    ClocksEventReason.SW_THERMAL_SLOWDOWN: "sw_thermal_slowdown",
    ClocksEventReason.HW_THERMAL_SLOWDOWN: "hw_thermal_slowdown",
    ClocksEventReason.HW_POWER_BRAKE_SLOWDOWN: "hw_power_brake_slowdown",
    ClocksEventReason.DISPLAY_CLOCK_SETTING: "display_clock_setting",
}


# Range checks: None marks a glitch or a sentinel.


def _percent(value: float) -> float | None:
    return float(value) if 0 <= value <= 100 else None


def _ratio(percent: float) -> float | None:
    return percent / 100 if math.isfinite(percent) and 0 <= percent <= 100 else None


def _rate(mib_per_s: float) -> float | None:
    ok = math.isfinite(mib_per_s) and 0 <= mib_per_s <= _MAX_RATE_MIB_S
    return mib_per_s * _BYTES_PER_MIB if ok else None


def _temperature(value: int) -> float | None:
    return float(value) if 0 <= value <= _MAX_TEMPERATURE_C else None


def _memory_temperature(value: int) -> float | None:
    # Boards without an HBM sensor may answer 0 instead of NotSupported.
    return float(value) if 0 < value <= _MAX_TEMPERATURE_C else None


def _threshold(value: int) -> float | None:
    # A threshold of 0 C (or below) would mean a GPU that is always too hot: a glitch.
    return float(value) if 0 < value <= _MAX_TEMPERATURE_C else None


def _watts(milliwatts: int) -> float | None:
    watts = milliwatts / 1000
    return watts if 0 < watts <= _MAX_POWER_W else None


def _counter(value: float, limit: float = _COUNTER_LIMIT) -> float | None:
    return float(value) if 0 <= value < limit else None


def _flag(value: float | bool) -> float | None:
    return float(value) if value in (0, 1) else None


def _small_enum(value: float, highest: int) -> float | None:
    return float(value) if value == int(value) and 0 <= value <= highest else None


# Readings


def _read_utilization(backend: NvmlBackend, index: int) -> Values:
    rates = backend.utilization(index)
    return [
        (GPU_UTIL, _percent(rates.gpu_percent), None),
        (MEM_COPY_UTIL, _percent(rates.memory_percent), None),
    ]


def _read_memory(backend: NvmlBackend, index: int) -> Values:
    memory = backend.memory_info(index)
    values: Values = [
        (FB_USED, memory.used_bytes / _BYTES_PER_MIB, None),
        (FB_FREE, memory.free_bytes / _BYTES_PER_MIB, None),
    ]
    if memory.reserved_bytes is not None:  # absent with NVML's v1 memory call
        values.append((FB_RESERVED, memory.reserved_bytes / _BYTES_PER_MIB, None))
    return values


def _read_clocks_event_reason_flags(backend: NvmlBackend, index: int) -> Values:
    supported = backend.supported_clocks_event_reasons(index)
    current = backend.clocks_event_reasons(index)
    return [
        (CLOCKS_EVENT_REASON, 1.0 if current & reason else 0.0, {"reason": label})
        for reason, label in CLOCKS_EVENT_REASON_LABELS.items()
        if supported & reason
    ]


def _read_fields(
    backend: NvmlBackend, index: int, wanted: Sequence[tuple[int, int]]
) -> dict[tuple[int, int], float]:
    """One batched field read. Returns: the entries that answered, by (field, scope).

    Raises:
        NvmlGpuLost, NvmlUnavailable: an entry says the GPU or the driver is gone.
        NvmlNotSupported: no entry is supported (the reading is then never asked again).
        NvmlError: no entry answered, and at least one failed for another reason.
    """
    values: dict[tuple[int, int], float] = {}
    unsupported = 0
    other = None
    for entry in backend.field_values(index, wanted):
        if entry.error is None and entry.value is not None:
            values[(entry.field, entry.scope)] = entry.value
        elif isinstance(entry.error, (NvmlGpuLost, NvmlUnavailable)):
            raise entry.error
        elif isinstance(entry.error, (NvmlNotSupported, NvmlFunctionNotFound)):
            unsupported += 1
        else:
            other = entry.error
    if not values and unsupported == len(wanted):
        raise NvmlNotSupported(f"no field of {sorted({field for field, _ in wanted})} answers")
    if not values and other is not None:
        raise other
    return values


def _field_counters(
    backend: NvmlBackend, index: int, fields: Sequence[tuple[FieldId, str]]
) -> Values:
    values = _read_fields(backend, index, [(int(field), 0) for field, _ in fields])
    return [
        (metric, _counter(values[(field, 0)]), None)
        for field, metric in fields
        if (field, 0) in values
    ]


def _read_violations(backend: NvmlBackend, index: int) -> Values:
    return _field_counters(backend, index, _VIOLATION_FIELDS)


def _read_retired_pages(backend: NvmlBackend, index: int) -> Values:
    """Pages retired for ECC errors (before Ampere; row remapping replaced it)."""
    values = _read_fields(backend, index, [(int(field), 0) for field, _ in _RETIRED_FIELDS])
    out: Values = []
    for field, metric in _RETIRED_FIELDS:
        if (field, 0) in values:
            raw = values[(field, 0)]
            out.append(
                (metric, _flag(raw) if field == FieldId.RETIRED_PENDING else _counter(raw), None)
            )
    return out


def _read_ecc(backend: NvmlBackend, index: int) -> Values:
    """ECC mode, and the error totals while ECC is on (they mean nothing while it is off)."""
    wanted = [FieldId.ECC_CURRENT, FieldId.ECC_PENDING] + [f for f, _ in _ECC_COUNT_FIELDS]
    values = _read_fields(backend, index, [(int(field), 0) for field in wanted])
    current = values.get((FieldId.ECC_CURRENT, 0))
    if current is None:
        raise NvmlNotSupported("the GPU does not report its ECC mode")
    out: Values = [(ECC_CURRENT, _flag(current), None)]
    if (FieldId.ECC_PENDING, 0) in values:
        out.append((ECC_PENDING, _flag(values[(FieldId.ECC_PENDING, 0)]), None))
    if current == 1:
        out += [
            (metric, _counter(values[(field, 0)]), None)
            for field, metric in _ECC_COUNT_FIELDS
            if (field, 0) in values
        ]
    return out


def _read_recovery_action(backend: NvmlBackend, index: int) -> Values:
    values = _read_fields(backend, index, [(int(FieldId.GPU_RECOVERY_ACTION), 0)])
    return [(RECOVERY_ACTION, _small_enum(values[(FieldId.GPU_RECOVERY_ACTION, 0)], 255), None)]


def _read_remapped_rows(backend: NvmlBackend, index: int) -> Values:
    rows = backend.remapped_rows(index)
    return [
        (REMAPPED_CORRECTABLE, _counter(rows.correctable, _UINT_SENTINEL), None),
        (REMAPPED_UNCORRECTABLE, _counter(rows.uncorrectable, _UINT_SENTINEL), None),
        (ROW_REMAP_PENDING, _flag(rows.pending), None),
        (ROW_REMAP_FAILURE, _flag(rows.failure), None),
    ]


def _read_pcie_link(backend: NvmlBackend, index: int) -> Values:
    link = backend.pcie_link(index)

    def generation(value: int) -> float | None:
        return float(value) if 1 <= value <= 8 else None

    def width(value: int) -> float | None:
        return float(value) if value in _PCIE_WIDTHS else None

    return [
        (PCIE_LINK_GEN, generation(link.generation), None),
        (PCIE_LINK_WIDTH, width(link.width), None),
        (PCIE_MAX_LINK_GEN, generation(link.max_generation), None),
        (PCIE_MAX_LINK_WIDTH, width(link.max_width), None),
    ]


def _read_pcie_throughput(backend: NvmlBackend, index: int) -> Values:
    """The 20 ms PCIe sample (~21 ms per direction), only where GPM cannot give PCIe rates."""
    if backend.gpm_supported(index):
        raise NvmlNotSupported("PCIe rates come from GPM on this GPU (DCGM_FI_PROF_PCIE_*)")
    tx = backend.pcie_throughput_kib_per_s(index, PcieCounter.TX)
    rx = backend.pcie_throughput_kib_per_s(index, PcieCounter.RX)
    return [
        (PCIE_TX_RATE, _rate(tx / 1024), None),
        (PCIE_RX_RATE, _rate(rx / 1024), None),
    ]


def _read_nvlink(backend: NvmlBackend, index: int) -> Values:
    """Link state, and per up link its error and traffic counters in one batched read."""
    states = backend.nvlink_states(index)
    out: Values = [(NVLINK_UP, 1.0 if up else 0.0, {"link": str(n)}) for n, up in enumerate(states)]
    links = [n for n, up in enumerate(states) if up]
    if not links:
        return out
    try:
        values = _read_fields(
            backend, index, [(int(field), n) for n in links for field, *_ in _NVLINK_FIELDS]
        )
    except NvmlNotSupported:
        return out  # the state is known; the counters are not offered
    totals: dict[str, float] = {}
    bandwidth_kib = 0.0
    for field, metric, total, unit in _NVLINK_FIELDS:
        for n in links:
            raw = values.get((field, n))
            if raw is None or _counter(raw) is None:
                continue
            out.append((metric, raw * unit, {"link": str(n)}))
            if total is not None:
                totals[total] = totals.get(total, 0.0) + raw
            if field in _NVLINK_THROUGHPUT:
                bandwidth_kib += raw
    out += [(total, value, None) for total, value in totals.items()]
    if any((field, n) in values for field in _NVLINK_THROUGHPUT for n in links):
        out.append((NVLINK_BANDWIDTH_TOTAL, bandwidth_kib, None))
    return out


def _read_gpm(backend: NvmlBackend, index: int) -> Values:
    """Hopper+ profiling metrics, averaged since the previous reading of this GPU."""
    try:
        metrics = backend.gpm_metrics(index, _GPM_METRICS)
    except NvmlNotFound:
        return []  # the first sample of a session: nothing to compare it with yet
    out: Values = [
        (name, _ratio(metrics[metric]), None) for metric, name in _GPM_RATIOS if metric in metrics
    ]
    out += [
        (name, _rate(metrics[metric]), None) for metric, name in _GPM_RATES if metric in metrics
    ]
    return out


def _read_power_limits(backend: NvmlBackend, index: int) -> Values:
    return [
        (ENFORCED_POWER_LIMIT, _watts(backend.enforced_power_limit_mw(index)), None),
        (DEFAULT_POWER_LIMIT, _watts(backend.default_power_limit_mw(index)), None),
    ]


def _read_modes(backend: NvmlBackend, index: int) -> Values:
    return [
        (PERSISTENCE_MODE, _flag(backend.persistence_mode(index)), None),
        (COMPUTE_MODE, _small_enum(backend.compute_mode(index), 3), None),
    ]


def _read_mig(backend: NvmlBackend, index: int) -> Values:
    """MIG mode, and per GPU instance its framebuffer and GPM activity (where offered)."""
    mode = backend.mig_mode(index)
    out: Values = [
        (MIG_MODE, _flag(mode.current), None),
        (MIG_MODE_PENDING, _flag(mode.pending), None),
    ]
    if not mode.current:
        return out
    metrics = tuple(metric for metric, _ in _MIG_GPM_RATIOS)
    for instance in backend.mig_instances(index):
        labels = {"GPU_I_ID": str(instance.gpu_instance_id), "GPU_I_PROFILE": instance.profile}
        if instance.memory is not None:
            out.append((MIG_MEMORY_USED, float(instance.memory.used_bytes), labels))
            out.append((MIG_MEMORY_FREE, float(instance.memory.free_bytes), labels))
        try:
            activity = backend.gpm_metrics(index, metrics, instance.gpu_instance_id)
        except (NvmlGpuLost, NvmlUnavailable):
            raise
        except NvmlError:
            # The first sample of this instance, no GPM for instances, or a failure of this
            # instance alone: its framebuffer and the other instances still count.
            continue
        out += [
            (name, _ratio(activity[metric]), labels)
            for metric, name in _MIG_GPM_RATIOS
            if metric in activity
        ]
    return out


STATIC = math.inf
"""The period of a fact fixed by the board: read once per NVML session (and again after the
GPU was lost and came back); a read that failed for another reason than NotSupported is
retried after ``STATIC_RETRY_SECONDS``."""
STATIC_RETRY_SECONDS = 60.0


@dataclass(frozen=True)
class Reading:
    """One backend call (or a few that belong together) per GPU and the metrics it yields.

    Attributes:
        name: stable snake_case name; the capability probe records unsupported readings by it.
        read: ``(backend, index) -> values``; raises ``NvmlError`` subclasses.
        period: seconds between reads; 0 reads every tick. Between reads the last values are
            sent again, so an expensive call (energy ~3 ms, violation status ~0.7 ms, PCIe
            throughput ~21 ms on an H100) costs its price once per period, not per tick.
            ``STATIC`` reads once per session.
    """

    name: str
    read: Callable[[NvmlBackend, int], Values]
    period: float = 0.0


def _temperature_threshold(which: TemperatureThreshold, metric: str) -> Reading:
    """A reading of one temperature threshold: its own reading, so that a GPU lacking one
    (NotSupported) still reports the others."""

    def read(backend: NvmlBackend, index: int) -> Values:
        return [(metric, _threshold(backend.temperature_threshold_c(index, which)), None)]

    return Reading(f"{which.name.lower()}_temperature_threshold", read, period=STATIC)


READINGS: tuple[Reading, ...] = (
    # Every tick: calls of 2-10 us, and GPM, which averages over the time between its reads.
    Reading("utilization", _read_utilization),
    Reading("memory_info", _read_memory),
    Reading("power_usage", lambda b, i: [(POWER_USAGE, b.power_usage_mw(i) / 1000, None)]),
    Reading("temperature", lambda b, i: [(GPU_TEMP, _temperature(b.temperature_c(i)), None)]),
    Reading(
        "memory_temperature",
        lambda b, i: [(MEMORY_TEMP, _memory_temperature(b.memory_temperature_c(i)), None)],
    ),
    Reading("sm_clock", lambda b, i: [(SM_CLOCK, float(b.clock_mhz(i, Clock.SM)), None)]),
    Reading("mem_clock", lambda b, i: [(MEM_CLOCK, float(b.clock_mhz(i, Clock.MEM)), None)]),
    Reading(
        "clocks_event_reasons",
        lambda b, i: [(CLOCKS_EVENT_REASONS, float(b.clocks_event_reasons(i)), None)],
    ),
    Reading("clocks_event_reason_flags", _read_clocks_event_reason_flags),
    Reading(
        "encoder_utilization",
        lambda b, i: [(ENC_UTIL, _percent(b.encoder_utilization_percent(i)), None)],
    ),
    Reading(
        "decoder_utilization",
        lambda b, i: [(DEC_UTIL, _percent(b.decoder_utilization_percent(i)), None)],
    ),
    Reading("gpm", _read_gpm),
    # Every few seconds to half a minute: calls of 0.1-3 ms, or counters that rarely move.
    Reading(
        "total_energy",
        lambda b, i: [(TOTAL_ENERGY, _counter(b.total_energy_mj(i)), None)],
        period=5.0,
    ),
    Reading("violations", _read_violations, period=10.0),
    Reading("remapped_rows", _read_remapped_rows, period=10.0),
    Reading(
        "pcie_replay",
        lambda b, i: [(PCIE_REPLAY, _counter(b.pcie_replay_count(i), _UINT_SENTINEL), None)],
        period=10.0,
    ),
    Reading("nvlink", _read_nvlink, period=10.0),
    Reading("recovery_action", _read_recovery_action, period=10.0),
    Reading("ecc", _read_ecc, period=30.0),
    Reading("mig", _read_mig, period=30.0),
    # Once a minute: static-ish facts, and the 20 ms PCIe throughput sample.
    Reading("retired_pages", _read_retired_pages, period=60.0),
    Reading("pcie_link", _read_pcie_link, period=60.0),
    Reading("pcie_throughput", _read_pcie_throughput, period=60.0),
    Reading("power_limits", _read_power_limits, period=60.0),
    Reading("modes", _read_modes, period=60.0),
    Reading(
        "vgpu_license",
        lambda b, i: [(VGPU_LICENSE_STATUS, _flag(b.vgpu_license_status(i)), None)],
        period=60.0,
    ),
    # Once per session: thresholds fixed by the board, sent every tick for the rules.
    _temperature_threshold(TemperatureThreshold.SLOWDOWN, SLOWDOWN_TEMP),
    _temperature_threshold(TemperatureThreshold.SHUTDOWN, SHUTDOWN_TEMP),
    _temperature_threshold(TemperatureThreshold.GPU_MAX, GPU_MAX_OP_TEMP),
    _temperature_threshold(TemperatureThreshold.MEM_MAX, MEM_MAX_OP_TEMP),
)

READING_NAMES: tuple[str, ...] = tuple(reading.name for reading in READINGS)
