"""Job accounting core: turn cumulative per-(job, GPU) counters into increases.

Stage: ingest -> jobs store. Pure: no web or database imports. The agent reports, for every
active job-GPU pairing, counters that are cumulative within one counting run (``since``) and
restart at zero when the agent restarts. Per pairing the server keeps the newest values of the
current run; a report of the same run adds only what grew, a report of a newer run adds its
full values, and a report of an older run (a late replay) adds nothing. Counters only grow, so
a value below the stored one (an out-of-order or repeated batch) adds nothing either: folding
the same report twice is the same as folding it once.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent.wire.schema import JobGpuUsage


@dataclass(frozen=True)
class RunState:
    """The newest cumulative values seen of one counting run of one job-GPU pairing."""

    since: float
    gpu_seconds: float
    idle_seconds: float
    energy_joules: float


@dataclass(frozen=True)
class Increase:
    """What one report adds to a job's totals.

    ``sm_percent_seconds`` is SM utilization (percent) times the GPU seconds it applies to;
    ``sm_seconds`` is those GPU seconds (zero when the report carried no utilization).
    """

    gpu_seconds: float = 0.0
    idle_seconds: float = 0.0
    energy_joules: float = 0.0
    sm_percent_seconds: float = 0.0
    sm_seconds: float = 0.0

    def __add__(self, other: Increase) -> Increase:
        return Increase(
            self.gpu_seconds + other.gpu_seconds,
            self.idle_seconds + other.idle_seconds,
            self.energy_joules + other.energy_joules,
            self.sm_percent_seconds + other.sm_percent_seconds,
            self.sm_seconds + other.sm_seconds,
        )


NOTHING = Increase()


def advance(run: RunState | None, usage: JobGpuUsage) -> tuple[RunState, Increase]:
    """Fold one report into the pairing's run state.

    Returns:
        The new run state and the increase to add to the totals.
    """
    if run is None or usage.since > run.since:
        new_run = RunState(usage.since, usage.gpu_seconds, usage.idle_seconds, usage.energy_joules)
        return new_run, _increase(usage, usage.gpu_seconds, usage.idle_seconds, usage.energy_joules)
    if usage.since < run.since:
        return run, NOTHING
    gpu = max(usage.gpu_seconds - run.gpu_seconds, 0.0)
    idle = max(usage.idle_seconds - run.idle_seconds, 0.0)
    energy = max(usage.energy_joules - run.energy_joules, 0.0)
    newest = RunState(
        run.since,
        max(run.gpu_seconds, usage.gpu_seconds),
        max(run.idle_seconds, usage.idle_seconds),
        max(run.energy_joules, usage.energy_joules),
    )
    return newest, _increase(usage, gpu, idle, energy)


def _increase(usage: JobGpuUsage, gpu: float, idle: float, energy: float) -> Increase:
    if usage.sm_percent is None:
        return Increase(gpu, idle, energy)
    return Increase(gpu, idle, energy, usage.sm_percent * gpu, gpu)
