"""The rule thread: leadership drives lead/follow, a failing pass is counted and the loop goes
on, stop ends it."""

from __future__ import annotations

import time

from server.alerting.runner import Runner
from server.storage.leader import InMemoryLeader, LockTable
from tests.server.alerting.helpers import T0, Rig, ruleset

RULES = """
groups:
  - name: g
    interval: 1m
    rules:
      - record: r
        expr: vector(1)
"""


class FlakyLeader(InMemoryLeader):
    """Raises on its first two checks (a database error the loop must survive)."""

    def check(self) -> bool:
        if self.checks < 2:
            self.checks += 1
            raise RuntimeError("lock connection broke")
        return super().check()


def test_leadership_moves_between_replicas_and_state_follows() -> None:
    table = LockTable()
    rig = Rig()
    rules = ruleset(RULES)
    first = rig.evaluator(rules, lead=False)
    second = rig.evaluator(rules, lead=False)
    clock = [T0]
    lead_a, lead_b = InMemoryLeader(table), InMemoryLeader(table)
    a = Runner(first, lead_a, lambda: clock[0], 1.0, monotonic=lambda: clock[0])
    b = Runner(second, lead_b, lambda: clock[0], 1.0, monotonic=lambda: clock[0])
    a.step()
    b.step()
    assert first.leading and not second.leading
    lead_a.lose_session()
    clock[0] += 2
    a.step()  # notices the lost session: follows
    b.step()  # takes the lock: leads
    assert not first.leading and second.leading


def test_a_failing_pass_is_counted_and_the_thread_keeps_going() -> None:
    rig = Rig()
    evaluator = rig.evaluator(ruleset(RULES), lead=False)
    leader = FlakyLeader(LockTable())
    runner = Runner(evaluator, leader, time.time, 0.05)
    runner.start()
    try:
        deadline = time.monotonic() + 10
        while not evaluator.leading and time.monotonic() < deadline:
            time.sleep(0.02)
        assert evaluator.leading
        assert runner.failures == 2 and runner.alive
    finally:
        runner.stop(5)
    assert not runner.alive
