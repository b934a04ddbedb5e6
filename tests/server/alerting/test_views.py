"""The rules and alerts JSON: Prometheus' shape (what Grafana reads) and dcmon's own."""

from __future__ import annotations

from server.alerting import views
from tests.server.alerting.helpers import T0, Rig, ruleset

RULES = """
groups:
  - name: g
    interval: 1m
    rules:
      - record: job:load:sum
        expr: sum(load)
      - alert: LoadHigh
        expr: load > 5
        for: 1m
        keep_firing_for: 2m
        labels: {severity: warning}
        annotations: {summary: "load {{ $value }} on {{ $labels.instance }}"}
"""


def test_prometheus_rules_and_alerts_have_prometheus_shape() -> None:
    rig = Rig()
    evaluator = rig.evaluator(ruleset(RULES))
    base = T0 + evaluator.snapshot()[0].phase_ms / 1000
    for step in range(3):
        rig.add({"__name__": "load", "instance": "n1"}, base + 60 * step - 5, 7.0)
        evaluator.tick(base + 60 * step)
    data = views.prometheus_rules(evaluator.snapshot())
    [group] = data["groups"]
    assert group["name"] == "g" and group["file"] == "alerts/test.yaml"
    assert group["interval"] == 60 and group["limit"] == 0
    assert group["lastEvaluation"].endswith("Z")
    recording, alerting = group["rules"]
    assert recording["type"] == "recording" and recording["health"] == "ok"
    assert recording["name"] == "job:load:sum" and recording["query"] == "sum(load)"
    assert alerting["type"] == "alerting" and alerting["state"] == "firing"
    assert alerting["duration"] == 60 and alerting["keepFiringFor"] == 120
    assert alerting["labels"] == {"severity": "warning"}
    [alert] = alerting["alerts"]
    assert alert["labels"] == {"alertname": "LoadHigh", "instance": "n1", "severity": "warning"}
    assert alert["annotations"] == {"summary": "load 7 on n1"}
    assert alert["state"] == "firing" and alert["value"] == "7e+00"
    assert alert["activeAt"] == views.rfc3339(base)
    assert views.prometheus_alerts(evaluator.snapshot()) == {"alerts": [alert]}
    only_records = views.prometheus_rules(evaluator.snapshot(), "record")
    assert [r["type"] for r in only_records["groups"][0]["rules"]] == ["recording"]
    bare = views.prometheus_rules(evaluator.snapshot(), exclude_alerts=True)
    assert "alerts" not in bare["groups"][0]["rules"][1]


def test_go_float_matches_go_formatting() -> None:
    assert views.go_float(1.0) == "1e+00"
    assert views.go_float(1234.5) == "1.2345e+03"
    assert views.go_float(0.1) == "1e-01"
    assert views.go_float(float("nan")) == "NaN"
    assert views.go_float(float("-inf")) == "-Inf"


def test_dcmon_views_carry_times_missed_rounds_and_errors() -> None:
    rig = Rig()
    rules = ruleset(RULES)
    evaluator = rig.evaluator(rules)
    base = T0 + evaluator.snapshot()[0].phase_ms / 1000
    rig.add({"__name__": "load", "instance": "n1"}, base - 5, 7.0)
    evaluator.tick(base)
    evaluator.tick(base + 180)
    body = views.dcmon_rules(evaluator.snapshot(), {"bad.yaml": ["bad"]}, True, {"write": 1})
    [group] = body["groups"]
    assert group["missed_iterations"] == 2 and group["evaluations"] == 2
    assert body["file_errors"] == {"bad.yaml": ["bad"]} and body["leader"] is True
    alerts = views.dcmon_alerts(evaluator.snapshot())["alerts"]
    assert [(a["rule"], a["state"], a["active_at"]) for a in alerts] == [
        ("LoadHigh", "firing", base)
    ]
