"""The webhook receiver: Alertmanager's webhook payload, version 4, POSTed as JSON.

The payload is byte-for-byte the shape Alertmanager sends (``notify/webhook``,
``template.Data``): ``version``, ``groupKey``, ``truncatedAlerts``, ``status``, ``receiver``,
``groupLabels``, ``commonLabels``, ``commonAnnotations``, ``externalURL`` and ``alerts`` with
``status``, ``labels``, ``annotations``, ``startsAt``, ``endsAt`` (the zero time while firing),
``generatorURL`` and ``fingerprint``. ``max_alerts`` > 0 truncates the list and says how many
were left out. 2xx is success; 5xx and network errors are retried, other answers are not
(Alertmanager's ``Retrier``). The URL may hold a token: it is never logged.
"""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from server.notify.delivery import DeliveryError
from server.notify.model import ZERO_TIME, fingerprint, rfc3339
from server.notify.receiver import Message, common

USER_AGENT = "dcmon-notify"


def payload(message: Message, max_alerts: int = 0) -> dict[str, object]:
    """Returns: the webhook v4 body for ``message``."""
    alerts = list(message.alerts)
    truncated = 0
    if max_alerts > 0 and len(alerts) > max_alerts:
        truncated = len(alerts) - max_alerts
        alerts = alerts[:max_alerts]
    items = []
    for alert in alerts:
        resolved = alert.resolved(message.now)
        items.append(
            {
                "status": "resolved" if resolved else "firing",
                "labels": dict(alert.labels),
                "annotations": dict(alert.annotations),
                "startsAt": rfc3339(alert.starts_at),
                "endsAt": rfc3339(alert.ends_at)
                if resolved and alert.ends_at is not None
                else ZERO_TIME,
                "generatorURL": alert.generator_url,
                "fingerprint": fingerprint(alert.labels),
            }
        )
    return {
        "receiver": message.receiver,
        "status": message.status,
        "alerts": items,
        "groupLabels": dict(message.group_labels),
        "commonLabels": common([a.labels for a in message.alerts]),
        "commonAnnotations": common([a.annotations for a in message.alerts]),
        "externalURL": message.external_url,
        "version": "4",
        "groupKey": message.group_key,
        "truncatedAlerts": truncated,
    }


@dataclass(frozen=True)
class Webhook:
    """One ``webhook_configs`` entry."""

    url: str
    client: httpx.Client
    send_resolved: bool = True
    max_alerts: int = 0
    timeout_s: float = 10.0

    @property
    def kind(self) -> str:
        return "webhook"

    def notify(self, message: Message) -> None:
        try:
            answer = self.client.post(
                self.url,
                json=payload(message, self.max_alerts),
                headers={"User-Agent": USER_AGENT},
                timeout=self.timeout_s,
            )
        except httpx.HTTPError as exc:
            raise DeliveryError(f"webhook: {type(exc).__name__}", retryable=True) from None
        if answer.is_success:
            return
        raise DeliveryError(
            f"webhook answered {answer.status_code}", retryable=answer.status_code >= 500
        )
