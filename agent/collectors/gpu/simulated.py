"""A synthetic GPU node: realistic readings without a GPU, for ``dcmon demo`` and benchmarks.

Stage: stands in for the driver behind ``NvmlBackend``. Built on ``ScriptedBackend``: every
call of every device is a step that evaluates a small physical model at the current time, so
the simulated node also counts calls and takes scripted faults (``fail_device``).

The model, per GPU (all of it a pure function of the seed, the GPU index and the time):

- a repeating cycle of work phases (idle, training, inference) with seeded lengths, levels and
  a seeded offset, so GPUs of one node are out of step;
- board power follows the phase's utilization, is capped at the power limit (setting
  SwPowerCap and lowering the SM clock) and carries a ripple that averages out over a phase;
- energy is the exact integral of that power since the simulated driver load, so it is
  monotonic and consistent with power;
- temperatures follow the power averaged over the last minute(s); the temperature thresholds
  are the model's (``GpuSpec.temperature_thresholds_c``: model values, not measured);
- idle phases report the GpuIdle clock-event reason and the idle SM clock;
- counters that accumulate (power-violation time, NVLink traffic) and GPM's averages are exact
  integrals of the phases, like energy: GPM answers the mean activity between two of its reads;
- NVLinks are up on the SXM models (18 on the H100, 12 on the A100), ECC is on and error-free;
  with ``processes=True`` a busy GPU runs one process that holds the used framebuffer;
- GPUs held by a scripted job (``jobs``, ``simulated_jobs.py``) always run its process: an idle
  job's GPUs stay in one idle phase with its model in memory, a working job's keep the model
  in memory through their idle phases.

Values and limits are those of a real probe of an H100 80GB HBM3 (driver 580.159.04; see
``PROBE_MEDIAN_US``), and of the same model read through this collector idle (72 W, 42 C, SM
345 MHz, GpuIdle) and under a bf16 GEMM (700 W cap, SwPowerCap, SM 1320-1395 MHz, ~70 C core,
~62 C HBM). With ``call_latency=True`` each call also takes the median time the same call took
on that probe, for overhead benchmarks. With ``faults`` (``faults.FaultPlan``) the node also
has scripted trouble: a hot GPU reads hot and reports the thermal slowdown reason.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
import uuid as uuid_module
from collections.abc import Callable
from dataclasses import dataclass, replace

from agent.collectors.gpu.backend import (
    Clock,
    ClocksEventReason,
    FieldId,
    GpmMetric,
    GpuProcess,
    MemoryInfo,
    NvmlNotFound,
    NvmlNotSupported,
    PcieCounter,
    ProcessUtilization,
    TemperatureThreshold,
    Utilization,
)
from agent.collectors.gpu.faults import FaultPlan
from agent.collectors.gpu.scripted import (
    H100_FIELDS,
    H100_MAX_MEM_CLOCK_MHZ,
    H100_MAX_SM_CLOCK_MHZ,
    H100_MEMORY_RESERVED_BYTES,
    H100_MEMORY_TOTAL_BYTES,
    H100_MODEL_TEMPERATURE_THRESHOLDS_C,
    H100_NAME,
    H100_POWER_LIMIT_MW,
    DeviceScript,
    ScriptedBackend,
    Step,
)
from agent.collectors.gpu.simulated_jobs import (
    HELD_FB_FRACTION,
    PROCESS_PID,
    SimulatedJob,
    job_of_gpu,
)

SIMULATED_DRIVER_VERSION = "580.159.04 (simulated)"

# Median microseconds per call on one H100 80GB HBM3 SXM (driver 580.159.04, nvidia-ml-py
# 13.610.43; 200 timed calls each), from the project's nvml_probe_h100.json. Keys are the
# ScriptedBackend call names. Calls the probe did not time (init, shutdown, driver_version,
# device_count, minor_number, vbios_version, max_clock_mhz:mem) take no simulated time.
# memory_temperature_c is the probe's 3-field nvmlDeviceGetFieldValues batch.
PROBE_MEDIAN_US: dict[str, float] = {
    "name": 3.237,
    "uuid": 3.3075,
    "serial": 3.3435,
    "pci_bus_id": 2.9635,
    "utilization": 3.148,
    "memory_info": 11.2355,
    "power_usage_mw": 1.99,
    "enforced_power_limit_mw": 1.9675,
    "total_energy_mj": 3050.054,
    "temperature_c": 1.9455,
    "clock_mhz:sm": 1.9325,
    "clock_mhz:mem": 1.9535,
    "max_clock_mhz:sm": 1377.6865,
    "clocks_event_reasons": 2.017,
    "memory_temperature_c": 147.568,
    "field_values": 147.568,
    "remapped_rows": 2.5985,
    "pcie_link": 37.0475,
    "pcie_replay_count": 158.5515,
    "pcie_throughput_kib_per_s:tx": 20892.063,
    "pcie_throughput_kib_per_s:rx": 20892.063,
    "mig_mode": 145.2655,
    "persistence_mode": 5.3745,
    "running_processes": 8.4795,
}


@dataclass(frozen=True)
class GpuSpec:
    """What a model of GPU looks like to NVML: limits, memory, clocks and temperature
    thresholds (degrees C)."""

    name: str
    memory_total_bytes: int
    memory_reserved_bytes: int
    power_limit_mw: int
    idle_power_w: tuple[float, float]
    max_sm_clock_mhz: int
    idle_sm_clock_mhz: int
    mem_clock_mhz: int
    vbios_version: str
    nvlinks: int
    gpm: bool  # Hopper and newer
    temperature_thresholds_c: dict[TemperatureThreshold, int]


H100_SXM = GpuSpec(
    name=H100_NAME,
    memory_total_bytes=H100_MEMORY_TOTAL_BYTES,
    memory_reserved_bytes=H100_MEMORY_RESERVED_BYTES,
    power_limit_mw=H100_POWER_LIMIT_MW,
    idle_power_w=(70.0, 130.0),
    max_sm_clock_mhz=H100_MAX_SM_CLOCK_MHZ,
    idle_sm_clock_mhz=345,
    mem_clock_mhz=H100_MAX_MEM_CLOCK_MHZ,
    vbios_version="96.00.99.00.01",
    nvlinks=18,
    gpm=True,
    # Model values (not measured; see scripted.H100_MODEL_TEMPERATURE_THRESHOLDS_C): slowdown
    # at 89 C, so the demo's overheated GPU (91 C) is past it and a busy one (~73 C) is not
    # near it.
    temperature_thresholds_c=H100_MODEL_TEMPERATURE_THRESHOLDS_C,
)

# Not probed: NVIDIA's A100 SXM4 80GB datasheet limits (400 W, 1410 MHz boost, 80 GiB HBM2e).
A100_SXM_80GB = GpuSpec(
    name="NVIDIA A100-SXM4-80GB",
    memory_total_bytes=85_899_345_920,
    memory_reserved_bytes=503_316_480,
    power_limit_mw=400_000,
    idle_power_w=(50.0, 70.0),
    max_sm_clock_mhz=1410,
    idle_sm_clock_mhz=210,
    mem_clock_mhz=1593,
    vbios_version="92.00.45.00.01",
    nvlinks=12,
    gpm=False,
    # Model values, not measured and not from the datasheet (which gives none).
    temperature_thresholds_c={
        TemperatureThreshold.SHUTDOWN: 92,
        TemperatureThreshold.SLOWDOWN: 89,
        TemperatureThreshold.MEM_MAX: 95,
        TemperatureThreshold.GPU_MAX: 85,
    },
)

GPU_SPECS: dict[str, GpuSpec] = {spec.name: spec for spec in (H100_SXM, A100_SXM_80GB)}

# PCI bus numbers of the eight GPUs of a DGX H100, then made-up ones.
_BUS_NUMBERS = (0x18, 0x2A, 0x3A, 0x5D, 0x9A, 0xAB, 0xBA, 0xDB)

_GPU_TEMP_WINDOW_S = 60.0
_MEMORY_TEMP_WINDOW_S = 180.0
_CAP_FRACTION = 0.98  # power settles just under the enforced limit when capped
# What a saturating kernel would draw uncapped, as a multiple of the limit: a bf16 GEMM on the
# H100 sat at the 700 W cap with SM clocks of 1320-1395 MHz (SwPowerCap), which this reproduces.
_PEAK_DEMAND = 1.6
_NVLINK_PEAK_KIB_S = 20e6  # per link and direction at full utilization (~20 GB/s)
_PCIE_PEAK_MIB_S = 4000.0  # host traffic of a busy training step, each direction
_PROCESS_PID = PROCESS_PID  # the simulated workload of GPU i runs as PID 41000 + i
_HELD_IDLE_PHASE_S = 3600.0
# A working job's pauses (a checkpoint, an evaluation): shorter than the shortest idle bar the
# server accepts (hints_idle_seconds >= 60), so the hint engine never takes one for idleness.
_WORKING_PAUSE_S = 45.0

# GPM activity per unit of GPU utilization, by kind of work (tensor-heavy training, lighter
# inference); DRAM activity follows the memory-controller utilization instead.
_GPM_SHARE: dict[str, dict[GpmMetric, float]] = {
    "idle": {},
    "train": {
        GpmMetric.GRAPHICS_UTIL: 1.0,
        GpmMetric.SM_UTIL: 0.9,
        GpmMetric.SM_OCCUPANCY: 0.45,
        GpmMetric.ANY_TENSOR_UTIL: 0.7,
        GpmMetric.FP32_UTIL: 0.08,
        GpmMetric.FP16_UTIL: 0.05,
    },
    "infer": {
        GpmMetric.GRAPHICS_UTIL: 1.0,
        GpmMetric.SM_UTIL: 0.75,
        GpmMetric.SM_OCCUPANCY: 0.3,
        GpmMetric.ANY_TENSOR_UTIL: 0.4,
        GpmMetric.FP32_UTIL: 0.12,
        GpmMetric.FP16_UTIL: 0.1,
    },
}


@dataclass(frozen=True)
class _Phase:
    start_s: float  # offset into the cycle
    duration_s: float
    kind: str  # idle, train or infer
    idle: bool
    gpu_util: float  # percent
    memory_util: float  # percent
    fb_fraction: float  # of the usable framebuffer
    power_w: float  # mean board power over the phase
    capped: bool
    sm_clock_mhz: int
    ripple_w: float  # amplitude of a ripple that integrates to zero over the phase
    ripple_period_s: float
    energy_before_j: float  # energy of the earlier phases of the cycle


@dataclass(frozen=True)
class GpuState:
    """What one simulated GPU reads at one instant, in NVML's units."""

    utilization: Utilization
    memory_used_bytes: int
    power_mw: int
    sm_clock_mhz: int
    clocks_event_reasons: int


class SimulatedGpu:
    """The model of one GPU: deterministic readings as a function of time (Unix seconds)."""

    def __init__(
        self,
        spec: GpuSpec,
        seed: int,
        index: int,
        boot_time_s: float,
        held_by: SimulatedJob | None = None,
    ) -> None:
        self.spec = spec
        self.index = index
        self.boot_time_s = boot_time_s
        self.held_by = held_by
        rng = random.Random(f"dcmon-simulated:{seed}:{index}")  # noqa: S311 (not security)
        self._seed = seed
        self._idle_power_w = rng.uniform(*spec.idle_power_w)
        self._temp_offset_c = rng.uniform(-3.0, 3.0)
        self._phases = _held(self._build_phases(rng), held_by)
        self.cycle_s = sum(phase.duration_s for phase in self._phases)
        self._cycle_energy_j = sum(phase.power_w * phase.duration_s for phase in self._phases)
        self._offset_s = rng.uniform(0.0, self.cycle_s)
        self._last_state: tuple[float, GpuState] | None = None

    def state(self, t: float) -> GpuState:
        """Returns: the instantaneous readings at Unix time ``t``.

        The calls of one read of the GPU (utilization, memory, power, clocks, ...) come within
        ``STATE_REUSE_S`` of each other and share one state, computed once: the simulation's
        arithmetic is not what NVML costs (``call_latency`` replays that), and computing it
        per call made it most of the simulated agent's GPU cost.
        """
        last = self._last_state
        if last is not None and 0.0 <= t - last[0] < STATE_REUSE_S:
            return last[1]
        state = self._state(t)
        self._last_state = (t, state)
        return state

    def _state(self, t: float) -> GpuState:
        phase, into = self._phase_at(t)
        power_w = phase.power_w
        if phase.ripple_w:
            power_w += phase.ripple_w * math.sin(2 * math.pi * into / phase.ripple_period_s)
        gpu_util, memory_util = phase.gpu_util, phase.memory_util
        if not phase.idle:
            jitter = _noise(self._seed, self.index, int(t))
            gpu_util = min(100.0, max(0.0, gpu_util + 3.0 * jitter))
            memory_util = min(100.0, max(0.0, memory_util + 2.0 * jitter))
        reasons = ClocksEventReason(0)
        if phase.idle:
            reasons |= ClocksEventReason.GPU_IDLE
        if phase.capped:
            reasons |= ClocksEventReason.SW_POWER_CAP
        usable = self.spec.memory_total_bytes - self.spec.memory_reserved_bytes
        return GpuState(
            utilization=Utilization(round(gpu_util), round(memory_util)),
            memory_used_bytes=int(usable * phase.fb_fraction) // (2 << 20) * (2 << 20),
            power_mw=round(power_w * 1000),
            sm_clock_mhz=phase.sm_clock_mhz,
            clocks_event_reasons=int(reasons),
        )

    def energy_j(self, t: float) -> float:
        """Returns: energy used since the simulated driver load, in joules (0 before it)."""
        if t <= self.boot_time_s:
            return 0.0
        cycles_now, energy_now = self._cycle_position(t)
        cycles_boot, energy_boot = self._cycle_position(self.boot_time_s)
        return (cycles_now - cycles_boot) * self._cycle_energy_j + energy_now - energy_boot

    def mean_power_w(self, t: float, window_s: float) -> float:
        """Returns: mean board power over ``[t - window_s, t]``, in watts."""
        start = t - window_s
        cycles_end, energy_end = self._cycle_position(t)
        cycles_start, energy_start = self._cycle_position(start)
        joules = (cycles_end - cycles_start) * self._cycle_energy_j + energy_end - energy_start
        return joules / window_s

    def temperature_c(self, t: float) -> int:
        """Returns: core temperature in degrees C, following the last minute's power."""
        power = self.mean_power_w(t, _GPU_TEMP_WINDOW_S)
        return round(39.0 + self._temp_offset_c + 0.045 * power)

    def memory_temperature_c(self, t: float) -> int:
        """Returns: HBM temperature in degrees C, following the last three minutes' power."""
        power = self.mean_power_w(t, _MEMORY_TEMP_WINDOW_S)
        return round(43.0 + self._temp_offset_c + 0.032 * power)

    def integral(self, t0: float, t1: float, rate: Callable[[_Phase], float]) -> float:
        """Returns: the integral over ``[t0, t1]`` of a quantity constant within each phase."""
        per_cycle = sum(rate(phase) * phase.duration_s for phase in self._phases)

        def position(t: float) -> float:
            cycles, phase, into = self._locate(t)
            before = sum(rate(p) * p.duration_s for p in self._phases if p.start_s < phase.start_s)
            return cycles * per_cycle + before + rate(phase) * into

        return position(t1) - position(t0)

    def power_violation_ns(self, t: float) -> int:
        """Returns: time held at the power cap since the simulated driver load, in ns."""
        if t <= self.boot_time_s:
            return 0
        return round(self.integral(self.boot_time_s, t, lambda p: float(p.capped)) * 1e9)

    def nvlink_kib(self, t: float) -> int:
        """Returns: data moved over one NVLink in one direction since the driver load, in KiB."""
        if t <= self.boot_time_s:
            return 0
        return math.floor(self.integral(self.boot_time_s, t, _nvlink_kib_s))

    def gpm(self, t0: float, t1: float) -> dict[GpmMetric, float]:
        """Returns: GPM's metrics averaged over ``[t0, t1]`` (percent, and MiB/s for rates)."""
        span = max(t1 - t0, 1e-9)
        return {
            metric: self.integral(t0, t1, _gpm_rate(metric, self.spec.nvlinks)) / span
            for metric in GpmMetric
        }

    # Internals

    def _build_phases(self, rng: random.Random) -> tuple[_Phase, ...]:
        kinds = ["idle", "train", *rng.choices(["idle", "train", "infer"], [2, 3, 3], k=4)]
        rng.shuffle(kinds)
        limit_w = self.spec.power_limit_mw / 1000
        phases: list[_Phase] = []
        start = energy = 0.0
        for kind in kinds:
            duration = rng.uniform(120.0, 900.0)
            if kind == "idle":
                util, memory_util, fb_fraction = 0.0, 0.0, 0.0
            elif kind == "train":
                util = rng.uniform(88.0, 100.0)
                memory_util, fb_fraction = util * rng.uniform(0.35, 0.55), rng.uniform(0.6, 0.97)
            else:
                util = rng.uniform(25.0, 65.0)
                memory_util, fb_fraction = util * rng.uniform(0.2, 0.4), rng.uniform(0.2, 0.6)
            demand_w = (
                self._idle_power_w
                + (limit_w * _PEAK_DEMAND - self._idle_power_w) * (util / 100) ** 1.3
            )
            cap_w = limit_w * _CAP_FRACTION
            capped = demand_w > cap_w
            power_w = min(demand_w, cap_w)
            if kind == "idle":
                sm_clock = self.spec.idle_sm_clock_mhz
            elif capped:
                # The SM clock drops with the power shortfall; clocks come in 15 MHz bins.
                scaled = self.spec.max_sm_clock_mhz * (cap_w / demand_w) ** 0.75
                sm_clock = int(scaled // 15 * 15)
            else:
                sm_clock = self.spec.max_sm_clock_mhz
            ripple_cycles = max(1, round(duration / rng.uniform(5.0, 20.0)))
            ripple_w = 1.0 if kind == "idle" else power_w * 0.02
            if capped:
                ripple_w = min(ripple_w, limit_w - power_w)
            phases.append(
                _Phase(
                    start_s=start,
                    duration_s=duration,
                    kind=kind,
                    idle=kind == "idle",
                    gpu_util=util,
                    memory_util=memory_util,
                    fb_fraction=fb_fraction,
                    power_w=power_w,
                    capped=capped,
                    sm_clock_mhz=sm_clock,
                    ripple_w=ripple_w,
                    ripple_period_s=duration / ripple_cycles,
                    energy_before_j=energy,
                )
            )
            start += duration
            energy += power_w * duration
        return tuple(phases)

    def _phase_at(self, t: float) -> tuple[_Phase, float]:
        """Returns: the phase at time ``t`` and the seconds since it began."""
        _, phase, into = self._locate(t)
        return phase, into

    def _cycle_position(self, t: float) -> tuple[int, float]:
        """Returns: (whole cycles since the model's time zero, joules used so far this cycle)."""
        cycles, phase, into = self._locate(t)
        ripple = 0.0
        if phase.ripple_w:
            angle = 2 * math.pi * into / phase.ripple_period_s
            ripple = phase.ripple_w * phase.ripple_period_s / (2 * math.pi) * (1 - math.cos(angle))
        return cycles, phase.energy_before_j + phase.power_w * into + ripple

    def _locate(self, t: float) -> tuple[int, _Phase, float]:
        """Returns: whole cycles before ``t``, the phase at ``t`` and the seconds into it."""
        cycles, into_cycle = divmod(t + self._offset_s, self.cycle_s)
        for phase in self._phases:
            if into_cycle < phase.start_s + phase.duration_s:
                return int(cycles), phase, into_cycle - phase.start_s
        last = self._phases[-1]
        return int(cycles), last, last.duration_s


def _held(phases: tuple[_Phase, ...], job: SimulatedJob | None) -> tuple[_Phase, ...]:
    """Returns: the phases of a GPU a scripted job holds: one long idle phase with the job's
    model in memory (idle job), or the seeded cycle with its idle phases cut to short pauses
    (at most ``_WORKING_PAUSE_S``, adjacent ones merged) and the model kept through them
    (working job); unchanged when no job holds it."""
    if job is None:
        return phases
    if job.activity == "idle":
        idle = next(p for p in phases if p.idle)
        return (
            replace(
                idle,
                start_s=0.0,
                duration_s=_HELD_IDLE_PHASE_S,
                fb_fraction=HELD_FB_FRACTION,
                ripple_w=0.0,
                energy_before_j=0.0,
            ),
        )
    kept = [p for i, p in enumerate(phases) if not (i and p.idle and phases[i - 1].idle)]
    if len(kept) > 1 and kept[0].idle and kept[-1].idle:
        kept.pop()  # the cycle wraps: the last pause runs into the first
    return _restarted(
        tuple(
            replace(
                p,
                duration_s=min(p.duration_s, _WORKING_PAUSE_S),
                fb_fraction=HELD_FB_FRACTION,
                ripple_period_s=min(p.duration_s, _WORKING_PAUSE_S),
            )
            if p.idle
            else p
            for p in kept
        )
    )


def _restarted(phases: tuple[_Phase, ...]) -> tuple[_Phase, ...]:
    """Returns: ``phases`` with their cycle offsets and energies before them recomputed."""
    restarted, start, energy = [], 0.0, 0.0
    for phase in phases:
        restarted.append(replace(phase, start_s=start, energy_before_j=energy))
        start += phase.duration_s
        energy += phase.power_w * phase.duration_s
    return tuple(restarted)


def _nvlink_kib_s(phase: _Phase) -> float:
    """Returns: data rate of one NVLink, one direction, during a phase (training only)."""
    return _NVLINK_PEAK_KIB_S * phase.gpu_util / 100 * (phase.kind == "train")


def _gpm_rate(metric: GpmMetric, nvlinks: int) -> Callable[[_Phase], float]:
    """Returns: the value GPM reports for ``metric`` during a phase."""
    if metric == GpmMetric.DRAM_BW_UTIL:
        return lambda phase: phase.memory_util
    if metric in (GpmMetric.PCIE_TX_PER_SEC, GpmMetric.PCIE_RX_PER_SEC):
        return lambda phase: 0.5 + _PCIE_PEAK_MIB_S * phase.gpu_util / 100
    if metric in (GpmMetric.NVLINK_TOTAL_TX_PER_SEC, GpmMetric.NVLINK_TOTAL_RX_PER_SEC):
        peak_mib_s = nvlinks * _NVLINK_PEAK_KIB_S / 1024
        return lambda phase: peak_mib_s * phase.gpu_util / 100 * (phase.kind == "train")
    return lambda phase: phase.gpu_util * _GPM_SHARE[phase.kind].get(metric, 0.0)


STATE_REUSE_S = 0.01
"""Calls this close after a computed state (seconds, forward only) get that state again."""


def _noise(*keys: int) -> float:
    """Returns: a deterministic pseudo-random number in [-1, 1) for the given integers."""
    digest = hashlib.blake2b(repr(keys).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**63 - 1.0


def _pause(seconds: float) -> None:
    """Wait ``seconds``: spin for microsecond waits (sleep is too coarse), sleep otherwise."""
    if seconds >= 0.002:
        time.sleep(seconds)
        return
    deadline = time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        pass


class SimulatedBackend(ScriptedBackend):
    """``NvmlBackend`` for a node of ``count`` simulated GPUs of one model.

    Args:
        count: number of GPUs.
        model: a key of ``GPU_SPECS`` (default: the probed H100 80GB HBM3).
        seed: varies phases, idle power and identities; same seed and time, same readings.
        clock: wall-clock Unix time in seconds, read on every call.
        boot_time_s: when the simulated driver loaded (energy counts from there); default:
            the clock's reading when the backend is built.
        call_latency: make each call take its median cost from the H100 probe.
        sleep: how to wait for the simulated latency (tests pass a recorder).
        processes: run one simulated process on each busy GPU (default: no processes).
        faults: scripted trouble (``faults.FaultPlan``): hot GPUs read hot and slowed; its
            XIDs come through ``SimulatedXidSource``.
        jobs: scripted jobs (``simulated_jobs.plan``): their GPUs always run their process.
    """

    def __init__(
        self,
        count: int = 8,
        *,
        model: str | None = None,
        seed: int = 0,
        clock: Callable[[], float] = time.time,
        boot_time_s: float | None = None,
        call_latency: bool = False,
        sleep: Callable[[float], None] = _pause,
        processes: bool = False,
        faults: FaultPlan | None = None,
        jobs: tuple[SimulatedJob, ...] = (),
    ) -> None:
        if count < 0:
            raise ValueError("count must be >= 0")
        spec_name = model or H100_SXM.name
        if spec_name not in GPU_SPECS:
            known = ", ".join(sorted(GPU_SPECS))
            raise ValueError(f"unknown simulated GPU model {spec_name!r}; known: {known}")
        spec = GPU_SPECS[spec_name]
        boot = clock() if boot_time_s is None else boot_time_s
        self.clock = clock
        self.jobs = jobs
        self.gpus = [
            SimulatedGpu(spec, seed, index, boot, job_of_gpu(jobs, index)) for index in range(count)
        ]
        self._sleep = sleep
        self._processes = processes
        self.faults = faults
        super().__init__(
            [self._device_script(gpu, seed) for gpu in self.gpus],
            # Shown wherever the driver version is (inventory, dashboard, API), so simulated
            # GPUs can never pass for real ones.
            driver_version=SIMULATED_DRIVER_VERSION,
            before_call=self._latency if call_latency else None,
        )

    def _latency(self, call: str) -> None:
        micros = PROBE_MEDIAN_US.get(call, 0.0)
        if micros:
            self._sleep(micros / 1e6)

    def _temperature_c(self, gpu: SimulatedGpu, t: float) -> int:
        base = gpu.temperature_c(t)
        return base if self.faults is None else self.faults.temperature_c(gpu.index, t, base)

    def _clocks_event_reasons(self, gpu: SimulatedGpu, t: float) -> int:
        base = gpu.state(t).clocks_event_reasons
        if self.faults is None or not self.faults.overheated(gpu.index, t):
            return base
        # a hot GPU is slowed for heat, and is not idle
        return (base | ClocksEventReason.SW_THERMAL_SLOWDOWN) & ~ClocksEventReason.GPU_IDLE

    def _device_script(self, gpu: SimulatedGpu, seed: int) -> DeviceScript:
        spec, index, now = gpu.spec, gpu.index, self.clock
        domain, bus = divmod(index, len(_BUS_NUMBERS))
        identity = uuid_module.uuid5(uuid_module.NAMESPACE_OID, f"dcmon-simulated:{seed}:{index}")
        usable = spec.memory_total_bytes - spec.memory_reserved_bytes

        def memory(_: int) -> MemoryInfo:
            used = gpu.state(now()).memory_used_bytes
            return MemoryInfo(
                spec.memory_total_bytes, used, usable - used, spec.memory_reserved_bytes
            )

        def fields() -> dict[tuple[int, int], Step[float]]:
            table: dict[tuple[int, int], Step[float]] = dict(H100_FIELDS)
            table[(FieldId.MEMORY_TEMP, 0)] = lambda _: gpu.memory_temperature_c(now())
            table[(FieldId.PERF_POLICY_POWER, 0)] = lambda _: gpu.power_violation_ns(now())
            for link in range(spec.nvlinks):
                for counter in (
                    FieldId.NVLINK_CRC_FLIT_ERROR_COUNT,
                    FieldId.NVLINK_CRC_DATA_ERROR_COUNT,
                    FieldId.NVLINK_REPLAY_ERROR_COUNT,
                    FieldId.NVLINK_RECOVERY_ERROR_COUNT,
                ):
                    table[(counter, link)] = 0
                table[(FieldId.NVLINK_THROUGHPUT_DATA_TX, link)] = lambda _: gpu.nvlink_kib(now())
                table[(FieldId.NVLINK_THROUGHPUT_DATA_RX, link)] = lambda _: gpu.nvlink_kib(now())
            return table

        last_gpm: list[float] = []  # time of the previous GPM sample, as the driver keeps it

        def gpm(_: int) -> object:
            t = now()
            if not last_gpm:
                last_gpm.append(t)
                return NvmlNotFound("no previous GPM sample to compare with", code=6)
            previous, last_gpm[0] = last_gpm[0], t
            return gpu.gpm(previous, t)

        def pcie_kib_s(_: int) -> int:
            busy = gpu.state(now()).utilization.gpu_percent / 100
            return round((0.5 + _PCIE_PEAK_MIB_S * busy) * 1024)

        runs_process = self._processes or gpu.held_by is not None

        def running(_: int) -> list[GpuProcess]:
            used = gpu.state(now()).memory_used_bytes
            if not runs_process or used == 0:
                return []
            return [GpuProcess(_PROCESS_PID + index, used)]

        def process_samples(_: int) -> list[ProcessUtilization]:
            state = gpu.state(now())
            if not runs_process or state.memory_used_bytes == 0:
                return []
            rates = state.utilization
            stamp = int(now() * 1e6)
            return [
                ProcessUtilization(
                    _PROCESS_PID + index, rates.gpu_percent, rates.memory_percent, stamp
                )
            ]

        nvlink: Step[list[bool]] = [True] * spec.nvlinks
        if not spec.nvlinks:
            nvlink = NvmlNotSupported("nvmlDeviceGetNvLinkState: Not Supported", code=3)
        return DeviceScript(
            uuid=f"GPU-{identity}",
            pci_bus_id=f"{domain:08X}:{_BUS_NUMBERS[bus]:02X}:00.0",
            minor_number=index,
            name=spec.name,
            serial=f"{1650923000000 + (seed * 131 + index) % 10**6:013d}",
            vbios_version=spec.vbios_version,
            enforced_power_limit_mw=spec.power_limit_mw,
            temperature_thresholds_c=dict(spec.temperature_thresholds_c),
            memory_info=memory,
            utilization=lambda _: gpu.state(now()).utilization,
            power_usage_mw=lambda _: gpu.state(now()).power_mw,
            total_energy_mj=lambda _: math.floor(gpu.energy_j(now()) * 1000),
            temperature_c=lambda _: self._temperature_c(gpu, now()),
            memory_temperature_c=lambda _: gpu.memory_temperature_c(now()),
            clocks_mhz={
                Clock.SM: lambda _: gpu.state(now()).sm_clock_mhz,
                Clock.MEM: spec.mem_clock_mhz,
            },
            max_clocks_mhz={Clock.SM: spec.max_sm_clock_mhz, Clock.MEM: spec.mem_clock_mhz},
            clocks_event_reasons=lambda _: self._clocks_event_reasons(gpu, now()),
            fields=fields(),
            pcie_throughput_kib_per_s={PcieCounter.TX: pcie_kib_s, PcieCounter.RX: pcie_kib_s},
            nvlink_states=nvlink,
            gpm_supported=spec.gpm,
            gpm_metrics=gpm,
            default_power_limit_mw=spec.power_limit_mw,
            running_processes=running,
            process_utilization=process_samples,
        )
