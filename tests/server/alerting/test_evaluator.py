"""The evaluation loop's core over in-memory twins: slots, state across restarts, write-back,
missed iterations, notifications and failures that degrade."""

from __future__ import annotations

from server.alerting import hold
from server.alerting.evaluator import Config, Evaluator
from server.promql.engine import Engine
from server.promql.values import Vector
from server.rules.state import State
from tests.server.alerting.helpers import T0, Rig, ruleset

RULES = """
groups:
  - name: g
    interval: 1m
    rules:
      - record: job:load:sum
        expr: sum(load)
      - alert: LoadHigh
        expr: job:load:sum > 5
        for: 3m
        labels: {severity: warning}
        annotations: {summary: "load {{ $value }}"}
"""


def _feed(rig: Rig, start: float, end: float, value: float) -> None:
    t = start
    while t <= end:
        rig.add({"__name__": "load", "instance": "n1"}, t, value)
        t += 15


def _run(evaluator: Evaluator, start: float, end: float) -> None:
    t = start
    while t <= end:
        evaluator.tick(t)
        t += 60


def _alert(evaluator: Evaluator):
    runs = evaluator.snapshot()
    alerts = [a for run in runs for items in run.state.alerts.values() for a in items.values()]
    assert len(alerts) <= 1
    return alerts[0] if alerts else None


def _phase(evaluator: Evaluator) -> float:
    return evaluator.snapshot()[0].phase_ms / 1000


def test_for_timer_continues_across_a_restart() -> None:
    rules = ruleset(RULES)
    control = Rig()
    first = control.evaluator(rules)
    base = T0 + _phase(first)
    _feed(control, T0 - 60, T0 + 600, 10.0)
    _run(first, base, base + 300)
    fired = _alert(first)
    assert fired is not None and fired.state is State.FIRING
    assert fired.fired_at_ms == round((base + 180) * 1000)

    rig = Rig()
    before = rig.evaluator(rules)
    _feed(rig, T0 - 60, T0 + 600, 10.0)
    _run(before, base, base + 120)  # pending for 2 of the 3 minutes
    pending = _alert(before)
    assert pending is not None and pending.state is State.PENDING
    after = rig.evaluator(rules)  # a restart: a new process, the same database
    _run(after, base + 180, base + 300)
    alert = _alert(after)
    assert alert is not None
    assert alert.active_at_ms == pending.active_at_ms
    assert alert.fired_at_ms == fired.fired_at_ms


def test_results_are_written_back_and_read_in_the_same_round() -> None:
    rig = Rig()
    evaluator = rig.evaluator(ruleset(RULES))
    base = T0 + _phase(evaluator)
    rig.add({"__name__": "load", "instance": "n1"}, base - 10, 4.0)
    rig.add({"__name__": "load", "instance": "n2"}, base - 10, 3.0)
    evaluator.tick(base)
    # the alert read the recording rule's result of this very round
    alert = _alert(evaluator)
    assert alert is not None and alert.state is State.PENDING and alert.value == 7.0
    engine = Engine(rig.writer.series)
    ts = round(base * 1000)
    recorded = engine.instant("job:load:sum", ts).value
    assert isinstance(recorded, Vector)
    assert [(s.labels, float(s.values[0])) for s in recorded.series] == [
        ((("__name__", "job:load:sum"),), 7.0)
    ]
    alerts = engine.instant("ALERTS", ts).value
    assert isinstance(alerts, Vector)
    assert [s.labels for s in alerts.series] == [
        (
            ("__name__", "ALERTS"),
            ("alertname", "LoadHigh"),
            ("alertstate", "pending"),
            ("severity", "warning"),
        )
    ]
    for_state = engine.instant("ALERTS_FOR_STATE", ts).value
    assert isinstance(for_state, Vector)
    assert float(for_state.series[0].values[0]) == ts // 1000


def test_evaluation_times_follow_the_slots_and_late_rounds_count_as_missed() -> None:
    rig = Rig()
    evaluator = rig.evaluator(ruleset(RULES))
    base = T0 + _phase(evaluator)
    evaluator.tick(base - 1)  # before the first slot: nothing
    assert rig.writer.batches == [("dcmon-server", round((base - 1) * 1000), 0)]
    wait = evaluator.tick(base)
    assert 0 < wait <= 60
    evaluator.tick(base + 30)  # not due
    evaluator.tick(base + 5 * 60 + 7)  # four slots skipped, evaluated once at the latest
    run = evaluator.snapshot()[0]
    assert run.evaluations == 2
    assert run.missed == 4
    group_batches = [b for b in rig.writer.batches if b[0] != "dcmon-server"]
    assert [ts for _, ts, _ in group_batches] == [round(base * 1000), round((base + 300) * 1000)]
    assert all(r.health == "ok" and r.last_evaluation_s == base + 307 for r in run.rules)


def test_query_offset_defaults_to_the_largest_push_interval() -> None:
    rig = Rig(config=Config())
    rig.nodes = [hold.NodeStatus("n1", {}, True, round(T0 * 1000), 20_000)]
    evaluator = rig.evaluator(ruleset(RULES))
    base = T0 + _phase(evaluator)
    evaluator.tick(base)
    group_batches = [b for b in rig.writer.batches if b[0] != "dcmon-server"]
    assert [ts for _, ts, _ in group_batches] == [round(base * 1000) - 20_000]


def test_a_failing_rule_keeps_its_state_and_reports_its_error() -> None:
    rig = Rig()
    text = """
groups:
  - name: g
    rules:
      - alert: Loaded
        expr: label_replace(load, "instance", "same", "", "") > 0
        for: 5m
"""
    evaluator = rig.evaluator(ruleset(text))
    base = T0 + _phase(evaluator)
    rig.add({"__name__": "load", "instance": "n1"}, base - 10, 9.0)
    evaluator.tick(base)
    pending = _alert(evaluator)
    assert pending is not None and pending.state is State.PENDING
    rig.add({"__name__": "load", "instance": "n2"}, base + 50, 9.0)  # now two, same labels
    rig.add({"__name__": "load", "instance": "n1"}, base + 50, 9.0)
    evaluator.tick(base + 60)
    run = evaluator.snapshot()[0]
    assert run.rules[0].health == "err"
    assert "same labelset" in run.rules[0].last_error
    assert _alert(evaluator) == pending  # kept, not reset by the failed round
    assert evaluator.rounds == 2
