"""The rules and alerts as JSON: Prometheus' API shape and dcmon's own. Pure.

Stage: alerting -> API. ``prometheus_rules``/``prometheus_alerts`` give what Prometheus'
``/api/v1/rules`` and ``/api/v1/alerts`` put in ``data`` (groups[].rules[] of type alerting or
recording, with state, health, lastError, evaluationTime, lastEvaluation and alerts[]), so
Grafana's alert list and rule views read dcmon as they read Prometheus. A rule's ``query`` is
its expression as written. ``dcmon_rules``/``dcmon_alerts`` are dcmon's API: the same facts in
plain numbers (Unix seconds; a rule's expression as ``expr``, an alerting rule's ``state`` as
Prometheus words it, a recording rule's null), plus missed iterations, file errors, failure
counts and whether an alert is held (``hold.py``).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

import numpy as np

from server.alerting.runs import GroupRun
from server.rules.model import AlertingRule, RecordingRule
from server.rules.state import Alert, State

ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339(seconds: float | None) -> str:
    if seconds is None:
        return ZERO_TIME
    text = datetime.fromtimestamp(seconds, UTC).isoformat()
    return text.replace("+00:00", "Z")


def go_float(value: float) -> str:
    """Returns: ``value`` as Go's ``strconv.FormatFloat(v, 'e', -1, 64)`` (alerts' value)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return np.format_float_scientific(value, unique=True, exp_digits=2).replace(".e", "e")


def _state_name(alert: Alert) -> str:
    return "inactive" if alert.state is State.INACTIVE else alert.state.value


def _prom_alert(alert: Alert) -> dict[str, Any]:
    out: dict[str, Any] = {
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "state": _state_name(alert),
        "activeAt": rfc3339(alert.active_at_ms / 1000),
        "value": go_float(alert.value),
    }
    if alert.keep_firing_since_ms is not None:
        out["keepFiringSince"] = rfc3339(alert.keep_firing_since_ms / 1000)
    return out


def _active(alerts: Iterable[Alert]) -> list[Alert]:
    return sorted((a for a in alerts if a.state is not State.INACTIVE), key=lambda a: a.labels)


def _rule_state(alerts: list[Alert]) -> str:
    if any(a.state is State.FIRING for a in alerts):
        return "firing"
    return "pending" if alerts else "inactive"


def prometheus_rules(
    runs: Iterable[GroupRun], kind: str | None = None, exclude_alerts: bool = False
) -> dict[str, Any]:
    """Returns: ``data`` of ``/api/v1/rules``; ``kind`` "alert" or "record" filters."""
    groups = []
    for run in runs:
        group = run.loaded.group
        rules: list[dict[str, Any]] = []
        for index, rule in enumerate(group.rules):
            status = run.rules[index]
            common = {
                "health": status.health,
                "evaluationTime": status.evaluation_seconds,
                "lastEvaluation": rfc3339(status.last_evaluation_s),
            }
            if status.last_error:
                common["lastError"] = status.last_error
            if isinstance(rule, RecordingRule):
                if kind == "alert":
                    continue
                item: dict[str, Any] = {"name": rule.record, "query": rule.expr}
                if rule.labels:
                    item["labels"] = dict(rule.labels)
                rules.append({**item, **common, "type": "recording"})
                continue
            if kind == "record":
                continue
            assert isinstance(rule, AlertingRule)
            active = _active(run.state.alerts.get(index, {}).values())
            item = {
                "state": _rule_state(active),
                "name": rule.alert,
                "query": rule.expr,
                "duration": rule.for_ms / 1000,
                "keepFiringFor": rule.keep_firing_for_ms / 1000,
                "labels": dict(rule.labels),
                "annotations": dict(rule.annotations),
            }
            if not exclude_alerts:
                item["alerts"] = [_prom_alert(a) for a in active]
            rules.append({**item, **common, "type": "alerting"})
        if kind is not None and not rules:
            continue
        groups.append(
            {
                "name": group.name,
                "file": run.loaded.file,
                "rules": rules,
                "interval": run.interval_ms / 1000,
                "limit": group.limit,
                "evaluationTime": run.evaluation_seconds,
                "lastEvaluation": rfc3339(run.last_evaluation_s),
            }
        )
    return {"groups": groups}


def prometheus_alerts(runs: Iterable[GroupRun]) -> dict[str, Any]:
    """Returns: ``data`` of ``/api/v1/alerts``: every pending and firing alert."""
    alerts = [
        _prom_alert(alert)
        for run in runs
        for items in run.state.alerts.values()
        for alert in _active(items.values())
    ]
    return {"alerts": alerts}


def _dcmon_state(alert: Alert) -> str:
    return "resolved" if alert.state is State.INACTIVE else alert.state.value


def _seconds(ms: int | None) -> float | None:
    return None if ms is None else ms / 1000


def dcmon_alerts(runs: Iterable[GroupRun], include_resolved: bool = False) -> dict[str, Any]:
    """Returns: the body of dcmon's ``GET /api/v1/alerts``."""
    out = []
    for run in runs:
        for index, items in sorted(run.state.alerts.items()):
            held = run.held.get(index, set())
            for alert in sorted(items.values(), key=lambda a: a.labels):
                if alert.state is State.INACTIVE and not include_resolved:
                    continue
                out.append(
                    {
                        "group": run.loaded.key,
                        "rule": run.loaded.group.rules[index].name,
                        "state": "resolved"
                        if alert.state is State.INACTIVE
                        else _state_name(alert),
                        "labels": dict(alert.labels),
                        "annotations": dict(alert.annotations),
                        "value": alert.value if math.isfinite(alert.value) else None,
                        "active_at": alert.active_at_ms / 1000,
                        "fired_at": _seconds(alert.fired_at_ms),
                        "resolved_at": _seconds(alert.resolved_at_ms),
                        "keep_firing_since": _seconds(alert.keep_firing_since_ms),
                        "last_sent_at": _seconds(alert.last_sent_at_ms),
                        "held": alert.labels in held,
                    }
                )
    return {"alerts": out}


def dcmon_rules(
    runs: Iterable[GroupRun],
    errors: Mapping[str, list[str]],
    leading: bool,
    failures: Mapping[str, int],
) -> dict[str, Any]:
    """Returns: the body of dcmon's ``GET /api/v1/rules``."""
    groups = []
    for run in runs:
        rules = []
        for index, rule in enumerate(run.loaded.group.rules):
            status = run.rules[index]
            active = _active(run.state.alerts.get(index, {}).values())
            recording = isinstance(rule, RecordingRule)
            rules.append(
                {
                    "name": rule.name,
                    "type": "recording" if recording else "alerting",
                    "expr": rule.expr,
                    "state": None if recording else _rule_state(active),
                    "health": status.health,
                    "last_error": status.last_error or None,
                    "last_evaluation": status.last_evaluation_s,
                    "evaluation_seconds": status.evaluation_seconds,
                    "alerts": len(active),
                }
            )
        groups.append(
            {
                "key": run.loaded.key,
                "name": run.loaded.group.name,
                "file": run.loaded.file,
                "interval_seconds": run.interval_ms / 1000,
                "last_evaluation": run.last_evaluation_s,
                "evaluation_seconds": run.evaluation_seconds,
                "evaluations": run.evaluations,
                "missed_iterations": run.missed,
                "rules": rules,
            }
        )
    return {
        "leader": leading,
        "groups": groups,
        "file_errors": {name: list(problems) for name, problems in errors.items()},
        "failures": dict(failures),
    }
