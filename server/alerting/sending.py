"""Which alerts of a group go to the notifier after a round, and as what. Pure.

Stage: alerting -> notify. Prometheus' rule (``server.rules.state.needs_sending``): never a
pending alert, a resolution at once, a firing alert every resend delay, after the rule's
``notify_delay``. ``due`` marks each as sent (``mark_sent``: valid for four resend delays or
intervals) so its ``Notification`` carries that validity as ``ends_at``; the caller keeps the
marks only once the notifier took them. ``resend_all`` is for the first round after taking
over: the persisted last-sent times say what the old leader handed to its notifier, not what
that delivered, so every alert sent before (firing, or resolved within the retention) goes
again at once, as Prometheus does after a restart; Alertmanager and the direct receivers'
notification log drop what the receiver was already told.
"""

from __future__ import annotations

from collections.abc import Mapping

from server.alerting.notifier import Notification
from server.promql.values import Labels
from server.rules import state as machine
from server.rules.model import AlertingRule, Group


def due(
    group: Group,
    alerts: Mapping[int, Mapping[Labels, machine.Alert]],
    ts_ms: int,
    resend_delay_ms: int,
    interval_ms: int,
    *,
    resend_all: bool = False,
) -> list[tuple[int, machine.Alert]]:
    """Returns: (rule index, alert as marked sent) for every alert to send at ``ts_ms``."""
    out: list[tuple[int, machine.Alert]] = []
    due_after_ms = 0 if resend_all else resend_delay_ms
    for index, items in alerts.items():
        rule = group.rules[index]
        assert isinstance(rule, AlertingRule)
        for alert in items.values():
            if machine.needs_sending(alert, ts_ms, due_after_ms, rule.dcmon.notify_delay_ms):
                marked = machine.mark_sent(alert, ts_ms, resend_delay_ms, interval_ms)
                out.append((index, marked))
    return out


def notification(
    alert: machine.Alert,
    group_key: str,
    external_labels: Mapping[str, str],
    external_url: str,
) -> Notification:
    """Returns: ``alert`` as sent: starts when it fired, ends when resolved or valid until."""
    resolved = alert.resolved_at_ms
    ends = resolved if resolved is not None else alert.valid_until_ms or 0
    return Notification(
        labels={**external_labels, **dict(alert.labels)},
        annotations=dict(alert.annotations),
        starts_at=(alert.fired_at_ms or alert.active_at_ms) / 1000,
        ends_at=ends / 1000,
        resolved=alert.resolved_at_ms is not None,
        generator_url=external_url,
        rule_group=group_key,
    )
