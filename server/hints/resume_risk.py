"""How likely an idle job is to resume soon: a Kaplan-Meier estimate over the fleet's idle runs.

Stage: hints core, used by ``reclaim_idle``. Input: the lengths of idle runs that ended in work
(events) and of idle runs still under way (censored: they have lasted at least that long), from
every job in the snapshot, and a job's own earlier runs. Output: the risk that a job idle for
``t`` seconds becomes active within ``horizon`` seconds, ``P(T <= t + h | T > t)``, as a point
estimate and as a one-sided upper bound.

Why a survival estimate: a false reclaim (the job wanted its GPUs back minutes later) is the
costly error, and "idle for 30 minutes" alone is a poor predictor of it (on the GenAI duty-cycle
series four in ten 30-minute idle runs end within the next 10 minutes). The estimate asks the
data directly how often runs that already lasted ``t`` end within the horizon, and the upper
bound keeps a thin tail (few runs that long on record) from looking safe by chance.

The bound counts as evidence only runs whose fate over the window is known, each distinct
length once (``seen_through``), so a fleet idle for the first time, or many copies of one job,
do not pass for proof that the window is safe.

The job's own history is weighed in by shrinkage: ``(d + k q) / (n + k)`` where ``n`` of its
own earlier runs outlasted ``t``, ``d`` of them ended within the horizon, and ``q`` is the
fleet's upper bound with prior weight ``k``. A job that always comes back after an hour of
idling is between phases whatever the fleet does.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cached_property


@dataclass(frozen=True)
class Risk:
    """``estimate`` and ``upper``: P(active within the horizon | idle so far), 0..1;
    ``at_risk``: fleet runs that lasted at least as long (the evidence behind it);
    ``own_runs``: the job's own earlier runs that did."""

    estimate: float
    upper: float
    at_risk: int
    own_runs: int


@dataclass(frozen=True)
class ResumeModel:
    """The fleet's idle-run survival curve, from runs at least ``floor_s`` long.

    ``times``: the distinct lengths at which runs ended in work, ascending; ``log_survival[i]``:
    log S just after ``times[i]``; ``lengths``: every run's length (ended or under way), sorted,
    for at-risk counts.
    """

    times: tuple[float, ...]
    log_survival: tuple[float, ...]
    lengths: tuple[float, ...]
    floor_s: float
    events: tuple[float, ...] = ()
    """Lengths of the runs that ended in work, sorted (with repeats)."""

    @classmethod
    def fit(
        cls, ended_s: Iterable[float], ongoing_s: Iterable[float], floor_s: float
    ) -> ResumeModel:
        """Fits the curve. Runs shorter than ``floor_s`` are left out: the model is asked only
        about jobs idle at least that long, and runs that ended before say nothing of them."""
        events = sorted(x for x in ended_s if x >= floor_s)
        lengths = sorted([*events, *(x for x in ongoing_s if x >= floor_s)])
        times: list[float] = []
        log_s: list[float] = []
        total = 0.0
        i = 0
        while i < len(events):
            x = events[i]
            j = i
            while j < len(events) and events[j] == x:
                j += 1
            at_risk = len(lengths) - bisect.bisect_left(lengths, x)
            ended = j - i
            total += math.log1p(-ended / at_risk) if ended < at_risk else -math.inf
            times.append(x)
            log_s.append(total)
            i = j
        return cls(tuple(times), tuple(log_s), tuple(lengths), floor_s, tuple(events))

    def _upper(self, t_s: float, horizon_s: float, z: float) -> float:
        return wilson_upper(self._estimate(t_s, horizon_s), self.seen_through(t_s, horizon_s), z)

    def seen_through(self, t_s: float, horizon_s: float) -> int:
        """Returns: the runs past ``t_s`` whose fate over the horizon is known: they ended in
        work within it or lasted beyond it. A run still under way inside the window says
        nothing yet, and counting it would make a window nobody has lived through look safe
        (every job of a new fleet is idle for the first time at once).

        Runs are counted by distinct length: runs of the same length are taken for one
        episode (the pods of one service idling together, copies of one job), since copies
        say no more than the original and would make the bound look tight."""
        end = t_s + horizon_s
        events, lengths = self.distinct_events, self.distinct_lengths
        ended_inside = bisect.bisect_right(events, end) - bisect.bisect_right(events, t_s)
        return len(lengths) - bisect.bisect_right(lengths, end) + ended_inside

    def _estimate(self, t_s: float, horizon_s: float) -> float:
        n = self.at_risk(t_s)
        before, after = self._log_s(t_s), self._log_s(t_s + horizon_s)
        if before == -math.inf or n == 0:
            return 1.0 if n else 0.0
        return 1.0 - (math.exp(after - before) if after > -math.inf else 0.0)

    @cached_property
    def distinct_events(self) -> tuple[float, ...]:
        return tuple(sorted(set(self.events)))

    @cached_property
    def distinct_lengths(self) -> tuple[float, ...]:
        return tuple(sorted(set(self.lengths)))

    def runs(self) -> int:
        return len(self.lengths)

    def at_risk(self, t_s: float) -> int:
        """Returns: runs on record that lasted longer than ``t_s``."""
        return len(self.lengths) - bisect.bisect_right(self.lengths, t_s)

    def _log_s(self, t_s: float) -> float:
        i = bisect.bisect_right(self.times, t_s)
        return self.log_survival[i - 1] if i else 0.0

    def risk(
        self,
        idle_s: float,
        horizon_s: float,
        own_runs_s: Iterable[float] = (),
        prior_weight: float = 3.0,
        z: float = 1.645,
    ) -> Risk:
        """Returns: the risk that a job idle for ``idle_s`` resumes within ``horizon_s``: the
        fleet's bound, shrunk towards the job's own runs (never below their own share)."""
        n = self.at_risk(idle_s)
        estimate = self._estimate(idle_s, horizon_s)
        upper = self._upper(idle_s, horizon_s, z)
        own = [x for x in own_runs_s if x > idle_s]
        own_ended = sum(1 for x in own if x <= idle_s + horizon_s)
        if not own:
            return Risk(estimate, upper, n, 0)
        shrunk = (own_ended + prior_weight * upper) / (len(own) + prior_weight)
        return Risk(estimate, max(shrunk, own_ended / len(own)), n, len(own))


def wilson_upper(p: float, n: int, z: float) -> float:
    """Returns: the one-sided Wilson score upper bound of a share ``p`` seen over ``n`` trials
    (1 with no trial)."""
    if n <= 0:
        return 1.0
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(max(p * (1 - p), 0.0) / n + z2 / (4 * n * n))
    return min(1.0, (centre + spread) / (1 + z2 / n))
