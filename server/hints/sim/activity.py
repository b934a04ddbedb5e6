"""Per-pod GPU activity for the idle-reclaim scenario, and what the engine may know of it.

Stage: simulator input (activity) and telemetry builder. Input: the Alibaba GenAI duty-cycle
series (``pod_gpu_duty_cycle``: ``value,timestamp_anon,container_ip``, GPU utilization in %
about once a minute for 22.8 h, reference §3.6) or a synthetic ON/OFF model. Output: a
minute grid of utilization per pod (``Activity``), and an ``ActivityTracker`` that walks it
forward and gives each round's ``JobActivity`` from the minutes already seen, never later ones.

Grid: each series starts at minute 0 of the simulation (its own first sample) and ends at its
last sample (the job ends there: NaN afterwards). A minute takes the last sample in it; a
minute without a sample keeps the previous value for up to ``FILL_MINUTES``, after which it
counts as 0 % (a container that reports nothing shows no work).

Synthetic ON/OFF: OFF runs lognormal (median 10 min, sigma 1.5: most pauses are short, some last
hours, so a long pause predicts a longer one), ON runs lognormal with the mean that makes the
long-run OFF share ``p``, utilization 20-95 % while ON and 0 while OFF.
"""

from __future__ import annotations

import csv
import gzip
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from server.hints.model import JobActivity

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

DUTY_CYCLE_FILE = Path("alibaba-genai-v2026/pod_gpu_duty_cycle_subset.csv.gz")
FILL_MINUTES = 5
IDLE_BELOW_PCT = 5.0
OFF_MEDIAN_MIN = 10.0
OFF_SIGMA = 1.5
ON_SIGMA = 1.0


class ActivityError(ValueError):
    """The duty-cycle file is missing or a row does not parse."""


@dataclass(frozen=True, eq=False)
class Activity:
    """Utilization in % per pod (rows) and minute (columns); NaN once the pod's job ended."""

    util: FloatArray
    labels: tuple[str, ...]

    @property
    def minutes(self) -> int:
        return int(self.util.shape[1])

    def take(self, rows: IntArray) -> Activity:
        """Returns: the series of ``rows`` (a row may repeat: several pods, one series)."""
        return Activity(self.util[rows], tuple(self.labels[int(r)] for r in rows))


def load_duty_cycle(path: Path) -> Activity:
    """Reads the GenAI duty-cycle samples into a minute grid, one row per container."""
    samples: dict[str, list[tuple[float, float]]] = {}
    try:
        with gzip.open(path, "rt", newline="") as handle:
            for row in csv.DictReader(handle):
                samples.setdefault(row["container_ip"], []).append(
                    (float(row["timestamp_anon"]), float(row["value"]))
                )
    except (OSError, KeyError, ValueError) as exc:
        raise ActivityError(f"cannot read {path}: {exc}") from exc
    if not samples:
        raise ActivityError(f"{path}: no samples")
    labels = tuple(sorted(samples))
    rows = [_to_minutes(sorted(samples[key])) for key in labels]
    width = max(len(r) for r in rows)
    util = np.full((len(rows), width), np.nan)
    for i, r in enumerate(rows):
        util[i, : len(r)] = r
    return Activity(util, labels)


def _to_minutes(samples: list[tuple[float, float]]) -> FloatArray:
    start = samples[0][0]
    minutes = int((samples[-1][0] - start) // 60) + 1
    out = np.full(minutes, np.nan)
    for t, value in samples:
        out[int((t - start) // 60)] = value
    last, since = 0.0, FILL_MINUTES + 1
    for m in range(minutes):
        if math.isnan(out[m]):
            since += 1
            out[m] = last if since <= FILL_MINUTES else 0.0
        else:
            last, since = float(out[m]), 0
    return out


def on_off(count: int, minutes: int, idle_share: float, rng: np.random.Generator) -> Activity:
    """Returns: ``count`` synthetic ON/OFF series of ``minutes``, OFF ``idle_share`` of the time."""
    if not 0 < idle_share < 1:
        raise ValueError("idle_share is a share in (0, 1)")
    off_mean = OFF_MEDIAN_MIN * math.exp(OFF_SIGMA**2 / 2)
    on_mean = off_mean * (1 - idle_share) / idle_share
    on_median = on_mean / math.exp(ON_SIGMA**2 / 2)
    util = np.zeros((count, minutes))
    for i in range(count):
        m, on = 0, bool(rng.random() >= idle_share)
        while m < minutes:
            median, sigma = (on_median, ON_SIGMA) if on else (OFF_MEDIAN_MIN, OFF_SIGMA)
            length = max(1, round(float(rng.lognormal(math.log(median), sigma))))
            if on:
                util[i, m : m + length] = rng.uniform(20.0, 95.0)
            m += length
            on = not on
    return Activity(util, tuple(f"onoff-{idle_share:g}-{i}" for i in range(count)))


def long_idle(util: FloatArray, min_minutes: int, below_pct: float = IDLE_BELOW_PCT) -> BoolArray:
    """Returns: per pod and minute, whether the minute lies in a run of at least
    ``min_minutes`` minutes below ``below_pct`` (the scenario's idle-allocated time)."""
    idle = np.zeros((util.shape[0], util.shape[1] + 2), dtype=np.int8)
    with np.errstate(invalid="ignore"):
        idle[:, 1:-1] = util < below_pct  # NaN (ended) is not idle
    flat = idle.ravel()
    edges = np.diff(flat)
    starts, ends = np.flatnonzero(edges == 1) + 1, np.flatnonzero(edges == -1) + 1
    out = np.zeros(flat.shape, dtype=np.int8)
    long_runs = (ends - starts) >= min_minutes
    np.add.at(out, starts[long_runs], 1)
    np.add.at(out, ends[long_runs], -1)
    mask = np.cumsum(out).reshape(idle.shape).astype(np.bool_)
    result: BoolArray = mask[:, 1:-1]
    return result


class ActivityTracker:
    """Walks the grid forward a minute at a time and keeps, per pod, what has been seen:
    minutes run and active, the idle run under way and the idle runs that ended in activity.

    It reads minute ``m`` only when advanced past it, so ``job_activity`` at minute ``t``
    depends on minutes ``< t`` alone.
    """

    def __init__(
        self, activity: Activity, below_pct: float = IDLE_BELOW_PCT, report_gaps_from_min: int = 0
    ) -> None:
        """``report_gaps_from_min``: ``job_activity`` lists only resumed gaps at least this
        long (the scenario passes the engine's idle threshold: its estimate reads no shorter
        run, and the lists of every pod are rebuilt each round); ``gaps`` keeps them all."""
        self.activity = activity
        self.below_pct = below_pct
        self.report_gaps_from_min = report_gaps_from_min
        count = activity.util.shape[0]
        self.minute = 0
        self.running = np.zeros(count, dtype=np.int64)
        self.active = np.zeros(count, dtype=np.int64)
        self.idle_run = np.zeros(count, dtype=np.int64)  # minutes below ``below_pct`` so far
        self.ended = np.zeros(count, dtype=np.bool_)
        self.gaps: list[list[int]] = [[] for _ in range(count)]
        self._gaps_s: list[tuple[float, ...]] = [()] * count  # ``gaps`` in seconds, kept in step
        self.last_util = np.zeros(count)
        self.window_sum = np.zeros(count)
        self.window_minutes = np.zeros(count, dtype=np.int64)

    def advance(self, to_minute: int) -> IntArray:
        """Reads minutes up to ``to_minute`` (exclusive). Returns: per pod, the first minute
        read in which it was active (at or above ``below_pct``), -1 if none."""
        count = self.activity.util.shape[0]
        first_active = np.full(count, -1, dtype=np.int64)
        self.window_sum[:] = 0.0
        self.window_minutes[:] = 0
        while self.minute < min(to_minute, self.activity.minutes):
            column = self.activity.util[:, self.minute]
            live = ~np.isnan(column) & ~self.ended
            self.ended |= np.isnan(column)
            value = np.where(live, column, 0.0)
            active = live & (value >= self.below_pct)
            for pod in np.flatnonzero(active & (self.idle_run > 0)):
                self.gaps[pod].append(int(self.idle_run[pod]))  # an idle run that resumed
                if self.idle_run[pod] >= self.report_gaps_from_min:
                    self._gaps_s[pod] = (*self._gaps_s[pod], 60.0 * float(self.idle_run[pod]))
            self.idle_run = np.where(active, 0, np.where(live, self.idle_run + 1, self.idle_run))
            self.running += live
            self.active += active
            self.last_util = np.where(live, value, self.last_util)
            self.window_sum += value
            self.window_minutes += live
            first_active[active & (first_active < 0)] = self.minute
            self.minute += 1
        if to_minute > self.activity.minutes:
            self.ended[:] = True
            self.minute = to_minute
        return first_active

    def job_activity(self, pod: int, pod_id: str) -> JobActivity:
        """Returns: the engine's view of pod ``pod`` (row) from the minutes read so far."""
        window = int(self.window_minutes[pod])
        mean = float(self.window_sum[pod]) / window if window else float(self.last_util[pod])
        running = int(self.running[pod])
        return JobActivity(
            pod=pod_id,
            window_s=60.0 * max(window, 1),
            gpu_util_pct=mean,
            cpu_util_pct=0.0,  # not in the trace: taken as idle (see the scenario's notes)
            idle_s=60.0 * float(self.idle_run[pod]),
            running_s=60.0 * running,
            resumed_gaps_s=self._gaps_s[pod],
            duty_cycle=float(self.active[pod]) / running if running else None,
        )
