"""Cumulative GPU time, idle time and energy per job-GPU pairing.

Stage: per-GPU ``JobPresence`` lists (attribution) + ``GpuSnapshot`` times and energy ->
(this) -> ``JobUsage`` per pairing (the batch's ``jobs``). Pure: the tick's wall and monotonic
times are arguments.

Per GPU, for the interval since its previous snapshot (monotonic seconds ``dt``):

- GPU-seconds: ``dt`` is split equally among the jobs present in this snapshot.
- Idle seconds: a job's part of ``dt`` counts as idle when its SM share is 0 (an unknown
  share is never counted as idle).
- Energy: each job's fraction of the interval is its SM share over the sum of the shares
  present, or an equal split when that sum is 0 or unknown; fraction * ``dt`` accumulates as
  the job's weight-seconds. The energy counter is read on a slower cadence than the tick;
  when a new reading arrives (``energy_monotonic`` moved), the counter's increase since the
  previous reading (mJ -> J) is divided in proportion to the weight-seconds accumulated in
  between, so the attributed energy sums to the counter's increase. Over an interval in
  which the counter went backwards (driver reload) nothing is attributed. A GPU without an
  energy counter uses ``power_w * dt`` per tick instead, as does the tick that brings the
  counter's first reading, and a GPU whose counter has not been read for ``settle_timeout_s``.
- A GPU that is down (lost, or its driver hangs) accrues nothing; its pairings are held as
  they were, and the outage is not credited when it returns.

Lifecycle of a pairing, identified by (job id, scheduler, GPU index, GPU UUID):

- It starts when the job is first present on the GPU; ``since`` is that tick's wall time, and
  every counter is cumulative from then.
- While present it is reported every tick.
- In the first tick it is absent it is reported once more, with its final values and the
  same ``since``, and then forgotten, so the server always receives the last increment. If
  energy for its last interval waits on the next energy reading, that final report comes
  with that reading instead (or after ``settle_timeout_s`` without one); if the job comes
  back on the GPU meanwhile the pairing simply continues.
- When a GPU disappears from the snapshots, its pairings end at once (final report, no
  energy for the open interval).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from agent.collectors.gpu.snapshot import GpuSnapshot
from agent.jobs._once import LogOnce
from agent.jobs.model import JobPresence, JobRef, JobUsage

_log = logging.getLogger(__name__)

_MJ_PER_J = 1000.0

# A pairing's job within one GPU. The scheduler is part of it so that what a pairing reports
# under one (job id, scheduler) never moves to another: the server keys jobs by both.
_JobKey = tuple[str, str]


def _key(job: JobRef) -> _JobKey:
    return (job.job_id, job.scheduler)


@dataclass(frozen=True, slots=True)
class ActivePairing:
    """A job currently on a GPU: what the info series describes."""

    job: JobRef
    gpu_index: int
    uuid: str
    pci_bus_id: str


@dataclass
class _Pairing:
    job: JobRef
    gpu_index: int
    uuid: str
    pci_bus_id: str
    since: float
    pids: tuple[int, ...] = ()
    memory_used_bytes: int = 0
    sm_percent: float | None = None
    gpu_seconds: float = 0.0
    idle_seconds: float = 0.0
    energy_joules: float = 0.0
    ended_at: float | None = None  # monotonic time it was first absent; None while present

    def usage(self) -> JobUsage:
        return JobUsage(
            job_id=self.job.job_id,
            scheduler=self.job.scheduler,
            user=self.job.user,
            step=self.job.step,
            gpu_index=self.gpu_index,
            uuid=self.uuid,
            since=self.since,
            pids=list(self.pids),
            memory_used_bytes=self.memory_used_bytes,
            sm_percent=self.sm_percent,
            gpu_seconds=self.gpu_seconds,
            idle_seconds=self.idle_seconds,
            energy_joules=self.energy_joules,
        )


@dataclass
class _Gpu:
    last_monotonic: float | None = None
    energy_ref: tuple[int, float] | None = None  # (counter mJ, monotonic time of the reading)
    pending: dict[_JobKey, float] = field(default_factory=dict)  # weight-seconds
    pairings: dict[_JobKey, _Pairing] = field(default_factory=dict)


class UsageLedger:
    """Keeps every job-GPU pairing's counters from tick to tick.

    Args:
        settle_timeout_s: how long an ended pairing may wait for the energy reading that
            settles its last interval before it is reported without it.
    """

    def __init__(self, settle_timeout_s: float = 300.0) -> None:
        self._settle_timeout_s = settle_timeout_s
        self._gpus: dict[tuple[int, str], _Gpu] = {}
        self._final: list[JobUsage] = []
        self._log_once = LogOnce(_log)

    def advance(
        self,
        wall: float,
        monotonic: float,
        gpus: Iterable[tuple[GpuSnapshot, Sequence[JobPresence]]],
    ) -> None:
        """Account one tick.

        Args:
            wall: the tick's wall-clock Unix time (becomes ``since`` of new pairings).
            monotonic: the agent's monotonic time now (for the settle timeout).
            gpus: every GPU's latest snapshot with the jobs present on it.
        """
        final: list[JobUsage] = []
        seen: set[tuple[int, str]] = set()
        for snapshot, present in gpus:
            key = (snapshot.index, snapshot.uuid)
            seen.add(key)
            gpu = self._gpus.setdefault(key, _Gpu())
            if snapshot.up:
                self._advance_gpu(gpu, snapshot, present, wall, monotonic)
            else:
                gpu.last_monotonic = snapshot.monotonic
        for key in [key for key in self._gpus if key not in seen]:
            gone = self._gpus.pop(key)
            final.extend(pairing.usage() for pairing in gone.pairings.values())
        for gpu in self._gpus.values():
            final.extend(self._finish_ended(gpu, monotonic))
        self._final = final

    def usage(self) -> list[JobUsage]:
        """Returns: every pairing present in the last tick, then those that ended in it."""
        active = [
            pairing.usage()
            for gpu in self._gpus.values()
            for pairing in gpu.pairings.values()
            if pairing.ended_at is None
        ]
        active.sort(key=lambda usage: (usage.gpu_index, usage.job_id))
        return active + self._final

    def active(self) -> list[ActivePairing]:
        """Returns: the pairings present in the last tick (held ones on a down GPU included)."""
        found = [
            ActivePairing(pairing.job, pairing.gpu_index, pairing.uuid, pairing.pci_bus_id)
            for gpu in self._gpus.values()
            for pairing in gpu.pairings.values()
            if pairing.ended_at is None
        ]
        return sorted(found, key=lambda item: (item.gpu_index, item.job.job_id))

    # One GPU

    def _advance_gpu(
        self,
        gpu: _Gpu,
        snapshot: GpuSnapshot,
        present: Sequence[JobPresence],
        wall: float,
        monotonic: float,
    ) -> None:
        previous = gpu.last_monotonic
        elapsed = 0.0 if previous is None else max(0.0, snapshot.monotonic - previous)
        gpu.last_monotonic = (
            snapshot.monotonic if previous is None else max(previous, snapshot.monotonic)
        )
        pairings = [self._present(gpu, snapshot, job, wall) for job in present]
        present_keys = {_key(job.job) for job in present}
        for key, pairing in gpu.pairings.items():
            if key not in present_keys and pairing.ended_at is None:
                pairing.ended_at = monotonic
        if elapsed > 0 and pairings:
            self._account_time(gpu, snapshot, pairings, elapsed)
        self._account_energy_reading(gpu, snapshot)

    def _present(
        self, gpu: _Gpu, snapshot: GpuSnapshot, presence: JobPresence, wall: float
    ) -> _Pairing:
        key = _key(presence.job)
        pairing = gpu.pairings.get(key)
        if pairing is None:
            pairing = _Pairing(
                presence.job, snapshot.index, snapshot.uuid, snapshot.pci_bus_id, since=wall
            )
            gpu.pairings[key] = pairing
        pairing.ended_at = None
        pairing.job = presence.job
        pairing.pids = presence.pids
        pairing.memory_used_bytes = presence.memory_used_bytes
        pairing.sm_percent = presence.sm_percent
        return pairing

    def _account_time(
        self, gpu: _Gpu, snapshot: GpuSnapshot, pairings: list[_Pairing], elapsed: float
    ) -> None:
        share = elapsed / len(pairings)
        for pairing in pairings:
            pairing.gpu_seconds += share
            if pairing.sm_percent == 0:
                pairing.idle_seconds += share
        shares = [pairing.sm_percent for pairing in pairings]
        total = sum(value for value in shares if value is not None)
        if None in shares or total <= 0:
            fractions = [1.0 / len(pairings)] * len(pairings)
        else:
            fractions = [(value or 0.0) / total for value in shares]
        if gpu.energy_ref is not None:
            for pairing, fraction in zip(pairings, fractions, strict=True):
                key = _key(pairing.job)
                gpu.pending[key] = gpu.pending.get(key, 0.0) + fraction * elapsed
        elif snapshot.power_w is not None and snapshot.power_w > 0:
            # No counter (or this is its first reading, with nothing earlier to subtract):
            # estimate the interval's energy from the board power.
            joules = snapshot.power_w * elapsed
            for pairing, fraction in zip(pairings, fractions, strict=True):
                pairing.energy_joules += fraction * joules

    def _account_energy_reading(self, gpu: _Gpu, snapshot: GpuSnapshot) -> None:
        reading, read_at = snapshot.energy_mj, snapshot.energy_monotonic
        if reading is None or read_at is None:
            stale = gpu.energy_ref is not None and (
                snapshot.monotonic - gpu.energy_ref[1] > self._settle_timeout_s
            )
            if stale:
                # The counter stopped coming: fall back to power rather than wait forever.
                self._log_once(
                    f"stale:{snapshot.index}",
                    "GPU %d energy counter not read for a long time; using power instead",
                    snapshot.index,
                )
                gpu.energy_ref = None
                gpu.pending.clear()
            return
        if gpu.energy_ref is None:
            gpu.energy_ref = (reading, read_at)
            gpu.pending.clear()
            return
        previous, previous_at = gpu.energy_ref
        if read_at <= previous_at:
            return  # the same reading as before: energy is read on a slower cadence
        delta_mj = reading - previous
        weight_total = sum(gpu.pending.values())
        if delta_mj < 0:
            self._log_once(
                f"backwards:{snapshot.index}",
                "GPU %d energy counter went backwards (driver reload?); interval not attributed",
                snapshot.index,
            )
        elif weight_total > 0:
            joules = delta_mj / _MJ_PER_J
            for key, weight in gpu.pending.items():
                pairing = gpu.pairings.get(key)
                if pairing is not None:
                    pairing.energy_joules += joules * weight / weight_total
        gpu.energy_ref = (reading, read_at)
        gpu.pending.clear()

    def _finish_ended(self, gpu: _Gpu, monotonic: float) -> list[JobUsage]:
        """Report and forget ended pairings whose energy is settled (or waited long enough)."""
        final: list[JobUsage] = []
        for key, pairing in list(gpu.pairings.items()):
            if pairing.ended_at is None:
                continue
            waiting = gpu.energy_ref is not None and gpu.pending.get(key, 0.0) > 0
            if waiting and monotonic - pairing.ended_at < self._settle_timeout_s:
                continue
            final.append(pairing.usage())
            del gpu.pairings[key]
            gpu.pending.pop(key, None)
        return final
