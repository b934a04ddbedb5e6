"""The alerts the pages show: the leader's last evaluation round, as ``GET /api/v1/alerts``
gives it, firing first, then pending, then those resolved in the last 15 minutes.

Stage: alerting -> (this) -> the fleet, node, GPU and alerts pages.
"""

from __future__ import annotations

from dataclasses import dataclass

from server.alerting import views
from server.alerting.service import AlertingService

_STATE_ORDER = {"firing": 0, "pending": 1, "resolved": 2}


@dataclass(frozen=True)
class AlertRow:
    name: str
    state: str  # firing, pending or resolved
    severity: str
    where: str  # instance, GPU
    node: str  # the instance label ("" when none)
    gpu: str  # the gpu label ("" when none)
    summary: str
    since_seconds: float  # since it became active (resolved: since it resolved)
    held: bool
    labels: dict[str, str]


def alert_rows(alerting: AlertingService | None, now: float) -> list[AlertRow]:
    """Returns: the alerts, firing first, then pending, then resolved, newest first in each."""
    if alerting is None:
        return []
    body = views.dcmon_alerts(alerting.evaluator.snapshot(), include_resolved=True)
    rows = []
    for alert in body["alerts"]:
        labels: dict[str, str] = alert["labels"]
        node = labels.get("instance") or labels.get("Hostname", "")
        gpu = labels.get("gpu", "")
        where = f"{node} GPU {gpu}".strip() if gpu else node
        since = alert["resolved_at"] if alert["state"] == "resolved" else alert["active_at"]
        rows.append(
            AlertRow(
                name=labels.get("alertname", alert["rule"]),
                state=alert["state"],
                severity=labels.get("severity", ""),
                where=where,
                node=node,
                gpu=gpu if gpu.isdigit() else "",
                summary=alert["annotations"].get("summary", ""),
                since_seconds=max(0.0, now - (since or now)),
                held=alert["held"],
                labels=labels,
            )
        )
    rows.sort(key=lambda r: (_STATE_ORDER.get(r.state, 3), r.since_seconds, r.name, r.where))
    return rows


def active(rows: list[AlertRow]) -> list[AlertRow]:
    return [row for row in rows if row.state in ("firing", "pending")]


def of_node(rows: list[AlertRow], node: str, gpu: str | None = None) -> list[AlertRow]:
    """Returns: the node's alerts (and only the GPU's, when ``gpu`` is given)."""
    return [r for r in rows if r.node == node and (gpu is None or r.gpu in ("", gpu))]
