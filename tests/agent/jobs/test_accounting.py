"""GPU-seconds, idle seconds and energy per pairing, against hand-computed ground truth."""

from __future__ import annotations

import logging
import random
from typing import Any

import pytest

from agent.collectors.gpu.snapshot import GpuSnapshot
from agent.jobs.accounting import UsageLedger
from agent.jobs.model import JobPresence, JobRef, JobUsage
from tests.agent.jobs.conftest import snapshot

WALL0 = 1_800_000_000.0


def job(job_id: str, sm: float | None, pid: int = 1) -> JobPresence:
    return JobPresence(JobRef(job_id, "slurm"), (pid,), 1 << 30, sm)


def tick(ledger: UsageLedger, t: float, jobs: list[JobPresence], **gpu: Any) -> dict[str, JobUsage]:
    """One tick at monotonic ``t`` on GPU 0; returns this tick's usage by job id."""
    ledger.advance(WALL0 + t, t, [(snapshot(t, **gpu), jobs)])
    return {usage.job_id: usage for usage in ledger.usage()}


def test_two_jobs_share_energy_by_sm_and_sum_to_the_counter() -> None:
    ledger = UsageLedger()
    counter0 = 9_000_000_000  # mJ since driver load
    usage: dict[str, JobUsage] = {}
    for t in range(21):
        reading = t - t % 5  # energy read every 5 ticks: 1 tick = 1 s, 300 W
        usage = tick(
            ledger,
            float(t),
            [job("a", 60.0, 1), job("b", 20.0, 2)],
            energy_mj=counter0 + 300_000 * reading,
            energy_monotonic=float(reading),
        )
    a, b = usage["a"], usage["b"]
    assert a.energy_joules + b.energy_joules == pytest.approx(300.0 * 20)
    assert a.energy_joules == pytest.approx(3 * b.energy_joules)
    assert a.gpu_seconds == pytest.approx(10.0)
    assert b.gpu_seconds == pytest.approx(10.0)
    assert a.idle_seconds == b.idle_seconds == 0.0
    assert a.since == b.since == WALL0


def test_energy_waits_for_the_reading_and_weights_each_tick() -> None:
    ledger = UsageLedger()
    # 0-4 s: a busy, b idle -> a takes those seconds; 4-8 s: both idle -> equal split.
    plan = [(90.0, 0.0)] * 5 + [(0.0, 0.0)] * 4
    usage: dict[str, JobUsage] = {}
    for t, (sm_a, sm_b) in enumerate(plan):
        energy = 1_000_000 if t < 8 else 1_000_000 + 1_600_000  # one new reading at t=8
        usage = tick(
            ledger,
            float(t),
            [job("a", sm_a, 1), job("b", sm_b, 2)],
            energy_mj=energy,
            energy_monotonic=0.0 if t < 8 else 8.0,
        )
        if t < 8:
            assert usage["a"].energy_joules == usage["b"].energy_joules == 0.0
    # weight-seconds: a = 4 + 4 * 0.5 = 6, b = 4 * 0.5 = 2 -> 1600 J split 3:1.
    assert usage["a"].energy_joules == pytest.approx(1200.0)
    assert usage["b"].energy_joules == pytest.approx(400.0)
    assert usage["a"].idle_seconds == pytest.approx(2.0)
    assert usage["b"].idle_seconds == pytest.approx(4.0)


def test_counter_going_backwards_attributes_nothing_for_that_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ledger = UsageLedger()
    readings = {0: 5_000_000, 5: 5_500_000, 10: 200_000, 15: 700_000}  # driver reload at 10
    with caplog.at_level(logging.WARNING, logger="agent.jobs.accounting"):
        for t in range(16):
            at = t - t % 5
            usage = tick(
                ledger,
                float(t),
                [job("a", 50.0)],
                energy_mj=readings[at],
                energy_monotonic=float(at),
            )
    assert usage["a"].energy_joules == pytest.approx(500.0 + 0.0 + 500.0)
    assert sum("backwards" in record.getMessage() for record in caplog.records) == 1


def test_power_stands_in_for_a_missing_counter() -> None:
    ledger = UsageLedger()
    tick(ledger, 0.0, [job("a", 30.0, 1), job("b", 10.0, 2)], power_w=200.0)
    usage = tick(ledger, 2.0, [job("a", 30.0, 1), job("b", 10.0, 2)], power_w=200.0)
    assert usage["a"].energy_joules == pytest.approx(300.0)
    assert usage["b"].energy_joules == pytest.approx(100.0)
    # Unknown SM shares (MIG): equal split, and never counted idle.
    usage = tick(ledger, 4.0, [job("a", None, 1), job("b", None, 2)], power_w=200.0)
    assert usage["a"].energy_joules == pytest.approx(500.0)
    assert usage["b"].energy_joules == pytest.approx(300.0)
    assert usage["a"].idle_seconds == usage["b"].idle_seconds == 0.0


def test_a_stale_counter_falls_back_to_power() -> None:
    ledger = UsageLedger(settle_timeout_s=10.0)
    tick(ledger, 0.0, [job("a", 50.0)], energy_mj=1_000, energy_monotonic=0.0, power_w=100.0)
    for t in range(1, 12):  # the counter is never read again
        usage = tick(ledger, float(t), [job("a", 50.0)], power_w=100.0)
    # Pending seconds are given up when the counter is declared stale (t=11); the tick after
    # that is estimated from power.
    assert usage["a"].energy_joules == 0.0
    usage = tick(ledger, 12.0, [job("a", 50.0)], power_w=100.0)
    assert usage["a"].energy_joules == pytest.approx(100.0)


def test_an_ended_pairing_is_reported_once_more_then_forgotten() -> None:
    ledger = UsageLedger()
    tick(ledger, 0.0, [job("a", 10.0, 1), job("b", 10.0, 2)], power_w=100.0)
    before = tick(ledger, 1.0, [job("a", 10.0, 1), job("b", 10.0, 2)], power_w=100.0)
    after = tick(ledger, 2.0, [job("a", 10.0, 1)], power_w=100.0)
    assert after["b"] == before["b"]  # final values, same since
    assert [u.job_id for u in ledger.usage()] == ["a", "b"]  # present first, ended last
    assert [p.job.job_id for p in ledger.active()] == ["a"]
    later = tick(ledger, 3.0, [job("a", 10.0, 1)], power_w=100.0)
    assert set(later) == {"a"}
    # b comes back later: a new pairing, counting from then.
    again = tick(ledger, 4.0, [job("a", 10.0, 1), job("b", 10.0, 2)], power_w=100.0)
    assert again["b"].since == WALL0 + 4.0
    assert again["b"].gpu_seconds == pytest.approx(0.5)


def test_an_ended_pairing_waits_for_the_energy_that_settles_it() -> None:
    ledger = UsageLedger()
    both = [job("a", 50.0, 1), job("b", 50.0, 2)]
    tick(ledger, 0.0, both, energy_mj=0, energy_monotonic=0.0)
    tick(ledger, 1.0, both, energy_mj=0, energy_monotonic=0.0)
    waiting = tick(ledger, 2.0, [job("a", 50.0, 1)], energy_mj=0, energy_monotonic=0.0)
    assert "b" not in waiting  # its last second's energy is not known yet
    assert [p.job.job_id for p in ledger.active()] == ["a"]
    settled = tick(ledger, 3.0, [job("a", 50.0, 1)], energy_mj=4_000, energy_monotonic=3.0)
    # weight-seconds: a = 0.5 + 1 + 1 = 2.5, b = 0.5 -> 4 J split 5:1.
    assert settled["b"].energy_joules == pytest.approx(4.0 / 6)
    assert settled["b"].gpu_seconds == pytest.approx(0.5)
    assert settled["a"].energy_joules == pytest.approx(4.0 * 5 / 6)
    assert "b" not in tick(ledger, 4.0, [job("a", 50.0, 1)], energy_mj=4_000, energy_monotonic=3.0)


def test_a_job_returning_before_settlement_continues_its_pairing() -> None:
    ledger = UsageLedger()
    tick(ledger, 0.0, [job("a", 50.0)], energy_mj=0, energy_monotonic=0.0)
    tick(ledger, 1.0, [job("a", 50.0)], energy_mj=0, energy_monotonic=0.0)
    tick(ledger, 2.0, [], energy_mj=0, energy_monotonic=0.0)
    usage = tick(ledger, 3.0, [job("a", 50.0)], energy_mj=3_000, energy_monotonic=3.0)
    assert usage["a"].since == WALL0
    assert usage["a"].gpu_seconds == pytest.approx(2.0)
    assert usage["a"].energy_joules == pytest.approx(3.0)


def test_an_ended_pairing_is_reported_after_the_settle_timeout() -> None:
    ledger = UsageLedger(settle_timeout_s=5.0)
    tick(ledger, 0.0, [job("a", 50.0)], energy_mj=0, energy_monotonic=0.0)
    tick(ledger, 1.0, [job("a", 50.0)], energy_mj=0, energy_monotonic=0.0)
    for t in range(2, 7):
        assert "a" not in tick(ledger, float(t), [], energy_mj=0, energy_monotonic=0.0)
    final = tick(ledger, 7.0, [], energy_mj=0, energy_monotonic=0.0)
    assert final["a"].gpu_seconds == pytest.approx(1.0)
    assert final["a"].energy_joules == 0.0


def test_a_down_gpu_holds_its_pairings_and_the_outage_is_not_credited() -> None:
    ledger = UsageLedger()
    tick(ledger, 0.0, [job("a", 50.0)], power_w=100.0)
    tick(ledger, 1.0, [job("a", 50.0)], power_w=100.0)
    held = tick(ledger, 5.0, [], up=False)
    assert held["a"].gpu_seconds == pytest.approx(1.0)
    assert [p.job.job_id for p in ledger.active()] == ["a"]
    back = tick(ledger, 6.0, [job("a", 50.0)], power_w=100.0)
    assert back["a"].gpu_seconds == pytest.approx(2.0)
    assert back["a"].energy_joules == pytest.approx(200.0)
    assert back["a"].since == WALL0


def test_a_vanished_gpu_ends_its_pairings() -> None:
    ledger = UsageLedger()
    ledger.advance(WALL0, 0.0, [(snapshot(0.0, index=1), [job("a", 0.0)])])
    ledger.advance(WALL0 + 1, 1.0, [(snapshot(1.0, index=1), [job("a", 0.0)])])
    ledger.advance(WALL0 + 2, 2.0, [])
    (final,) = ledger.usage()
    assert (final.job_id, final.gpu_index, final.gpu_seconds) == ("a", 1, 1.0)
    ledger.advance(WALL0 + 3, 3.0, [])
    assert ledger.usage() == []


def test_a_stale_snapshot_adds_nothing() -> None:
    ledger = UsageLedger()
    tick(ledger, 0.0, [job("a", 50.0)], power_w=100.0)
    tick(ledger, 1.0, [job("a", 50.0)], power_w=100.0)
    # The GPU collector did not run: the same snapshot (monotonic 1.0) again.
    ledger.advance(WALL0 + 2, 2.0, [(snapshot(1.0, power_w=100.0), [job("a", 50.0)])])
    (usage,) = ledger.usage()
    assert usage.gpu_seconds == pytest.approx(1.0)
    assert usage.energy_joules == pytest.approx(100.0)


def test_many_ticks_against_ground_truth() -> None:
    """Irregular ticks, jobs coming and going, energy read every 7th tick on two GPUs."""
    rng = random.Random(20261123)
    ledger = UsageLedger(settle_timeout_s=1e9)
    names = ["j1", "j2", "j3", "j4"]
    truth_seconds: dict[tuple[int, str], float] = {}
    truth_idle: dict[tuple[int, str], float] = {}
    truth_energy: dict[tuple[int, str], float] = {}
    weights: dict[int, dict[str, float]] = {0: {}, 1: {}}
    counter = {0: 7_000_000_000, 1: 3_000_000}
    first_reading: dict[int, int] = {}
    reading: dict[int, tuple[int, float]] = {}
    last_t: dict[int, float] = {}
    final: dict[tuple[int, str, float], JobUsage] = {}
    t = 100.0
    for n in range(400):
        t += rng.choice([0.5, 1.0, 1.0, 1.5, 2.0])
        gpus: list[tuple[GpuSnapshot, list[JobPresence]]] = []
        for gpu in (0, 1):
            present = [
                job(name, float(rng.choice([0, 0, 10, 35, 80])), pid)
                for pid, name in enumerate(names)
                if rng.random() < 0.6
            ]
            counter[gpu] += rng.randrange(50_000, 400_000)
            new_reading = n % 7 == 0
            if new_reading:
                reading[gpu] = (counter[gpu], t)
                first_reading.setdefault(gpu, counter[gpu])
            energy_mj, energy_at = reading[gpu]
            dt = t - last_t[gpu] if gpu in last_t else 0.0
            last_t[gpu] = t
            if dt and present:
                shares = [p.sm_percent or 0.0 for p in present]
                total = sum(shares)
                for p, share in zip(present, shares, strict=True):
                    key = (gpu, p.job.job_id)
                    truth_seconds[key] = truth_seconds.get(key, 0.0) + dt / len(present)
                    if share == 0:
                        truth_idle[key] = truth_idle.get(key, 0.0) + dt / len(present)
                    fraction = share / total if total else 1 / len(present)
                    weights[gpu][p.job.job_id] = weights[gpu].get(p.job.job_id, 0.0) + fraction * dt
            if new_reading:
                previous = truth_energy.get((gpu, "_counter"))
                if previous is not None:
                    delta_j = (energy_mj - previous) / 1000
                    total_w = sum(weights[gpu].values())
                    for name, weight in weights[gpu].items():
                        key = (gpu, name)
                        truth_energy[key] = truth_energy.get(key, 0.0) + delta_j * weight / total_w
                weights[gpu] = {}
                truth_energy[(gpu, "_counter")] = energy_mj
            gpus.append(
                (
                    snapshot(t, index=gpu, energy_mj=energy_mj, energy_monotonic=energy_at),
                    present,
                )
            )
        ledger.advance(WALL0 + t, t, gpus)
        for usage in ledger.usage():
            final[(usage.gpu_index, usage.job_id, usage.since)] = usage
    # Per (GPU, job), add up the pairings (a job that left and came back has several).
    got_seconds: dict[tuple[int, str], float] = {}
    got_idle: dict[tuple[int, str], float] = {}
    got_energy: dict[tuple[int, str], float] = {}
    for (gpu, name, _), usage in final.items():
        got_seconds[(gpu, name)] = got_seconds.get((gpu, name), 0.0) + usage.gpu_seconds
        got_idle[(gpu, name)] = got_idle.get((gpu, name), 0.0) + usage.idle_seconds
        got_energy[(gpu, name)] = got_energy.get((gpu, name), 0.0) + usage.energy_joules
    assert got_seconds == pytest.approx(truth_seconds)
    assert got_idle == pytest.approx(truth_idle)
    assert {k: v for k, v in got_energy.items() if v} == pytest.approx(
        {k: v for k, v in truth_energy.items() if k[1] != "_counter" and v}
    )
    # The energy counter's whole increase is attributed, nothing more.
    for gpu in (0, 1):
        attributed = sum(v for (g, _), v in got_energy.items() if g == gpu)
        assert attributed == pytest.approx((reading[gpu][0] - first_reading[gpu]) / 1000)
    # Every GPU-second of wall time is attributed while someone was present.
    assert sum(got_seconds.values()) > 0.9 * 2 * (t - 100.0)


def test_allocated_idle_then_busy_is_two_pairings_and_nothing_counts_twice() -> None:
    ledger = UsageLedger()
    allocated = JobPresence(JobRef("123", "mapping"), (), 0, 0.0)
    tick(ledger, 0.0, [allocated], power_w=60.0)
    idle = tick(ledger, 10.0, [allocated], power_w=60.0)
    assert idle["123"].idle_seconds == idle["123"].gpu_seconds == pytest.approx(10.0)
    busy = JobPresence(JobRef("123", "slurm", step="0"), (5,), 1 << 30, 90.0)
    ledger.advance(WALL0 + 12.0, 12.0, [(snapshot(12.0, power_w=300.0), [busy])])
    usage = ledger.usage()
    assert [(u.scheduler, u.since, u.gpu_seconds) for u in usage] == [
        ("slurm", WALL0 + 12.0, pytest.approx(2.0)),
        ("mapping", WALL0, pytest.approx(10.0)),  # final report of the idle allocation
    ]
    assert usage[1].energy_joules == pytest.approx(600.0)
    assert usage[0].energy_joules == pytest.approx(600.0)
