"""The telemetry half of the live snapshot: per-GPU windows and utilization history, in bulk.

Stage: storage -> promql -> (this) -> ``snapshot.LiveSource``. Every reading is one PromQL
query over all GPUs of the fleet (never one per GPU), evaluated by the server's own engine over
its storage (``server.query.source.StorageSource``), so a round on 1,000 nodes costs a handful
of queries. Series are the catalog's (``agent/wire/catalog/gpu.toml``, ``host.toml``):

- window means ``avg_over_time`` of ``DCGM_FI_DEV_GPU_UTIL`` (percent), ``DCGM_FI_DEV_FB_USED``
  (MiB), ``DCGM_FI_DEV_POWER_USAGE`` (watts); the maximum ``max_over_time`` of
  ``DCGM_FI_DEV_GPU_TEMP`` (°C); the share of the window each slowing clock-event reason held
  (``avg_over_time`` of the 0/1 gauge ``dcmon_gpu_clocks_event_reason{reason}``);
- the node's CPU busy percent over the window, ``100 * (1 - avg by (instance)
  (rate(node_cpu_seconds_total{mode="idle"}[w])))``, which stands in for a job's CPU (see
  ``snapshot``);
- utilization history ``avg_over_time(DCGM_FI_DEV_GPU_UTIL[step])`` on a step grid aligned to
  the step (so closed minutes come from the 1-minute rollups), for per-job activity.

GPUs are keyed by (``instance``, ``UUID``): the node's name and the GPU's NVML UUID.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np

from server.hints.model import ClockEvent
from server.promql.engine import Engine
from server.promql.values import Vector, get_label
from server.rebalancing.activity import FloatArray

GpuKey = tuple[str, str]  # (node name, GPU UUID)

UTIL = "DCGM_FI_DEV_GPU_UTIL"
FB_USED = "DCGM_FI_DEV_FB_USED"
POWER = "DCGM_FI_DEV_POWER_USAGE"
TEMP = "DCGM_FI_DEV_GPU_TEMP"
CLOCK_REASON = "dcmon_gpu_clocks_event_reason"
NODE_CPU = "node_cpu_seconds_total"


@dataclass(frozen=True)
class GpuReadings:
    """One GPU's window: means, maximum temperature, clock-event shares (0..1)."""

    util_pct: float | None = None
    memory_used_mib: float | None = None
    power_watts: float | None = None
    temperature_celsius: float | None = None
    clock_event_share: Mapping[ClockEvent, float] = field(default_factory=dict)


@dataclass(frozen=True)
class History:
    """Utilization of every GPU on one grid: ``ends_s`` step ends, ``step_s`` long."""

    step_s: float
    ends_s: FloatArray
    util_pct: Mapping[GpuKey, FloatArray]  # NaN where the GPU reported nothing


@dataclass(frozen=True)
class Telemetry:
    gpus: Mapping[GpuKey, GpuReadings]
    node_cpu_busy_pct: Mapping[str, float]
    history: History
    queries: int  # how many PromQL queries were evaluated


def read(
    engine_factory: Callable[[], Engine],
    now_s: float,
    window_s: float,
    history_s: float,
    step_s: float,
    node_cpu: bool = True,
) -> Telemetry:
    """Returns: the fleet's GPU windows, node CPU and utilization history at ``now_s``.

    ``engine_factory`` gives a fresh engine (and so a fresh query deadline) per query.
    """
    now_ms = int(now_s * 1000)
    w = f"[{_duration(window_s)}]"
    queries = 0

    def instant(expr: str) -> Vector:
        nonlocal queries
        queries += 1
        value = engine_factory().instant(expr, now_ms).value
        return value if isinstance(value, Vector) else Vector([])

    per_gpu: dict[GpuKey, dict[str, float]] = {}
    for name, expr in (
        ("util_pct", f"avg_over_time({UTIL}{w})"),
        ("memory_used_mib", f"avg_over_time({FB_USED}{w})"),
        ("power_watts", f"avg_over_time({POWER}{w})"),
        ("temperature_celsius", f"max_over_time({TEMP}{w})"),
    ):
        for key, value in _by_gpu(instant(expr)):
            per_gpu.setdefault(key, {})[name] = value
    reasons = "|".join(sorted(event.value for event in ClockEvent))
    shares: dict[GpuKey, dict[ClockEvent, float]] = {}
    for series in instant(f'avg_over_time({CLOCK_REASON}{{reason=~"{reasons}"}}{w})').series:
        at = _gpu_key(series.labels)
        if at is not None and series.present[0]:
            event = ClockEvent(get_label(series.labels, "reason"))
            shares.setdefault(at, {})[event] = float(series.values[0])
    gpus = {
        key: GpuReadings(
            util_pct=values.get("util_pct"),
            memory_used_mib=values.get("memory_used_mib"),
            power_watts=values.get("power_watts"),
            temperature_celsius=values.get("temperature_celsius"),
            clock_event_share=shares.get(key, {}),
        )
        for key, values in per_gpu.items()
    }
    for key, share in shares.items():
        if key not in gpus:
            gpus[key] = GpuReadings(clock_event_share=share)
    cpu: dict[str, float] = {}
    if node_cpu:
        expr = f'100 * (1 - avg by (instance) (rate({NODE_CPU}{{mode="idle"}}{w})))'
        for series in instant(expr).series:
            instance = get_label(series.labels, "instance")
            if instance and series.present[0]:
                cpu[instance] = min(max(float(series.values[0]), 0.0), 100.0)
    history = _history(engine_factory, now_s, history_s, step_s)
    return Telemetry(gpus, cpu, history, queries + 1)


def _history(
    engine_factory: Callable[[], Engine], now_s: float, history_s: float, step_s: float
) -> History:
    step_ms = int(step_s * 1000)
    end_ms = int(now_s * 1000) // step_ms * step_ms
    steps = max(int(history_s // step_s), 1)
    start_ms = end_ms - (steps - 1) * step_ms
    ends_s = np.arange(start_ms, end_ms + 1, step_ms, dtype=np.float64) / 1000
    value = (
        engine_factory()
        .range(f"avg_over_time({UTIL}[{_duration(step_s)}])", start_ms, end_ms, step_ms)
        .value
    )
    util: dict[GpuKey, FloatArray] = {}
    if isinstance(value, Vector):
        for series in value.series:
            where = _gpu_key(series.labels)
            if where is not None:
                util[where] = np.where(series.present, series.values, np.nan)
    return History(step_s, ends_s, util)


def _by_gpu(vector: Vector) -> list[tuple[GpuKey, float]]:
    found = []
    for series in vector.series:
        key = _gpu_key(series.labels)
        if key is not None and series.present[0] and math.isfinite(series.values[0]):
            found.append((key, float(series.values[0])))
    return found


def _gpu_key(labels: tuple[tuple[str, str], ...]) -> GpuKey | None:
    instance, uuid = get_label(labels, "instance"), get_label(labels, "UUID")
    return (instance, uuid) if instance and uuid else None


def _duration(seconds: float) -> str:
    """Returns: ``seconds`` as a PromQL duration in whole milliseconds."""
    return f"{max(round(seconds * 1000), 1)}ms"
