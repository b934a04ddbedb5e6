"""Rounds over in-memory twins: held nodes, node down as a rule, reload, notifications."""

from __future__ import annotations

from pathlib import Path

from server.alerting import hold
from server.alerting.ruleset import discover, load
from server.rules.state import State
from tests.server.alerting.helpers import T0, Rig, ruleset

RULES = """
groups:
  - name: g
    interval: 1m
    rules:
      - alert: Hot
        expr: temp > 80
        for: 2m
      - alert: NodeDown
        expr: dcmon_node_up == 0
        for: 2m
"""


def _node(up: bool, newest: float, name: str = "n1") -> hold.NodeStatus:
    return hold.NodeStatus(name, {"rack": "r1"}, up, round(newest * 1000), 10_000)


def _alerts(evaluator, name: str):  # type: ignore[no-untyped-def]
    return [
        a
        for run in evaluator.snapshot()
        for index, items in run.state.alerts.items()
        if run.loaded.group.rules[index].name == name
        for a in items.values()
    ]


def test_a_down_node_holds_its_alerts_and_node_down_fires() -> None:
    rig = Rig()
    evaluator = rig.evaluator(ruleset(RULES))
    base = T0 + evaluator.snapshot()[0].phase_ms / 1000
    t = base
    for _ in range(3):  # the node pushes every 10 s, hot
        for k in range(6):
            rig.add({"__name__": "temp", "instance": "n1"}, t - 60 + 10 * k, 90.0)
        rig.nodes = [_node(True, t)]
        evaluator.tick(t)
        t += 60
    [hot] = _alerts(evaluator, "Hot")
    assert hot.state is State.FIRING
    # The node goes silent: its data ages out of the lookback, yet Hot is held, not resolved.
    for _ in range(8):
        rig.nodes = [_node(False, base + 120)]
        evaluator.tick(t)
        t += 60
    [still] = _alerts(evaluator, "Hot")
    assert still.state is State.FIRING and still.resolved_at_ms is None
    run = evaluator.snapshot()[0]
    assert run.held == {0: {hot.labels}}
    [down] = _alerts(evaluator, "NodeDown")  # the node-down rule itself is never held
    assert down.state is State.FIRING
    assert dict(down.labels) == {"alertname": "NodeDown", "instance": "n1", "rack": "r1"}


def test_without_the_hold_the_alert_would_resolve() -> None:
    rig = Rig()
    evaluator = rig.evaluator(ruleset(RULES))
    base = T0 + evaluator.snapshot()[0].phase_ms / 1000
    rig.add({"__name__": "temp", "instance": "n1"}, base - 5, 90.0)
    rig.nodes = [_node(True, base)]
    evaluator.tick(base)
    rig.nodes = []  # a node unknown to the directory is not held
    evaluator.tick(base + 600)
    assert _alerts(evaluator, "Hot") == []


def test_a_node_catching_up_starts_no_alert_until_current() -> None:
    rig = Rig()
    evaluator = rig.evaluator(ruleset(RULES))
    base = T0 + evaluator.snapshot()[0].phase_ms / 1000
    rig.add({"__name__": "temp", "instance": "n1"}, base - 5, 90.0)  # a replayed old batch
    rig.nodes = [_node(True, base - 300)]  # pushing, but 5 minutes behind
    evaluator.tick(base)
    assert _alerts(evaluator, "Hot") == []
    rig.nodes = [_node(True, base + 60)]  # caught up
    rig.add({"__name__": "temp", "instance": "n1"}, base + 55, 90.0)
    evaluator.tick(base + 60)
    [hot] = _alerts(evaluator, "Hot")
    assert hot.state is State.PENDING and hot.active_at_ms == round((base + 60) * 1000)


def test_reload_keeps_state_of_unchanged_rules_and_broken_files_keep_rules(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    sources = discover([str(tmp_path / "*.yaml")], None)
    rig = Rig()
    evaluator = rig.evaluator(load(sources))
    base = T0 + evaluator.snapshot()[0].phase_ms / 1000
    rig.add({"__name__": "temp", "instance": "n1"}, base - 5, 90.0)
    rig.add({"__name__": "dcmon_node_up", "instance": "n2"}, base - 5, 0.0)
    evaluator.tick(base)
    [hot] = _alerts(evaluator, "Hot")
    # Hot's threshold changes (same name and labels: kept); NodeDown is renamed (dropped).
    path.write_text(RULES.replace("temp > 80", "temp > 85").replace("NodeDown", "Down"))
    evaluator.set_rules(load(sources, evaluator.ruleset))
    assert _alerts(evaluator, "Hot") == [hot]
    assert _alerts(evaluator, "Down") == []
    path.write_text("groups: [{name: g, rules: [{alert: X, expr: 'sum('}]}]")
    broken = load(sources, evaluator.ruleset)
    evaluator.set_rules(broken)
    assert list(broken.errors) == [str(path)]
    assert [r.name for r in broken.groups[0].group.rules] == ["Hot", "Down"]
    assert _alerts(evaluator, "Hot") == [hot]


def test_notifications_follow_prometheus_sending_and_survive_a_failing_notifier() -> None:
    rig = Rig()
    evaluator = rig.evaluator(
        ruleset(
            RULES.replace("for: 2m\n      - alert: NodeDown", "for: 0s\n      - alert: NodeDown")
        )
    )
    base = T0 + evaluator.snapshot()[0].phase_ms / 1000
    rig.add({"__name__": "temp", "instance": "n1"}, base - 5, 90.0)
    evaluator.tick(base)
    [sent] = rig.notifier.sent()
    assert sent.labels == {"alertname": "Hot", "instance": "n1"}
    assert sent.starts_at == base and not sent.resolved
    assert sent.ends_at == base + 4 * 60  # valid for four resend delays
    rig.notifier.fail = True
    rig.add({"__name__": "temp", "instance": "n1"}, base + 115, 90.0)
    evaluator.tick(base + 120)  # due for a resend, but the notifier fails
    assert evaluator.failures["notify"] == 1
    rig.notifier.fail = False
    rig.add({"__name__": "temp", "instance": "n1"}, base + 175, 70.0)
    evaluator.tick(base + 180)  # resolved: sent at once
    last = rig.notifier.sent()[-1]
    assert last.resolved and last.ends_at == base + 180
    [alert] = _alerts(evaluator, "Hot")
    assert alert.last_sent_at_ms == round((base + 180) * 1000)


def test_storage_and_state_failures_are_counted_and_rounds_go_on() -> None:
    rig = Rig()
    evaluator = rig.evaluator(ruleset(RULES))
    base = T0 + evaluator.snapshot()[0].phase_ms / 1000
    rig.writer.fail = True
    rig.states.fail = True
    rig.add({"__name__": "temp", "instance": "n1"}, base - 5, 90.0)
    evaluator.tick(base)
    assert evaluator.failures["write"] == 2 and evaluator.failures["state"] == 1
    rig.writer.fail = rig.states.fail = False
    evaluator.tick(base + 60)
    assert evaluator.snapshot()[0].evaluations == 2
    assert rig.states.load()["alerts/test.yaml;g"]
