"""The Apprise receiver: chat, e-mail and paging services through the Apprise library.

An ``apprise_configs`` entry lists Apprise URLs (``slack://…``, ``mailtos://…``,
``pagerduty://…``, ``json://host/path``…); each group notification becomes one Apprise
message: a title like Alertmanager's default subject (``[FIRING:2] GpuXid gpu01``) and a body
listing each alert's summary, description and labels. Apprise is an optional dependency (the
``notify`` extra), imported when such a receiver is built. Apprise reports only success or
failure, so a failure is retried. URLs hold credentials: they are never logged.
"""

from __future__ import annotations

import warnings
from typing import Any

from server.notify.delivery import DeliveryError
from server.notify.model import rfc3339
from server.notify.receiver import Message

APPRISE_TIMEOUT_S = 30.0
"""A bound on one ``notify`` call: Apprise's services use their own socket timeouts (a few
seconds each), not one that dcmon sets."""


class AppriseMissingError(RuntimeError):
    """An Apprise receiver is configured but the library is not installed."""


def title(message: Message) -> str:
    """Returns: ``[FIRING:n] <group label values>`` or ``[RESOLVED] …``."""
    firing = len(message.firing)
    head = f"[FIRING:{firing}]" if firing else "[RESOLVED]"
    values = " ".join(value for _, value in message.group_labels)
    return f"{head} {values}".rstrip()


def body(message: Message) -> str:
    """Returns: one paragraph per alert, firing first."""
    lines: list[str] = []
    ordered = sorted(message.alerts, key=lambda a: a.resolved(message.now))
    for alert in ordered:
        notes = dict(alert.annotations)
        state = "RESOLVED" if alert.resolved(message.now) else "FIRING"
        lines.append(f"{state}: {notes.get('summary') or alert.label('alertname')}")
        if notes.get("description"):
            lines.append(notes["description"])
        lines.append("labels: " + ", ".join(f"{k}={v}" for k, v in alert.labels))
        lines.append(f"since: {rfc3339(alert.starts_at)}")
        if alert.generator_url:
            lines.append(f"source: {alert.generator_url}")
        lines.append("")
    return "\n".join(lines).strip()


class AppriseIntegration:
    """One ``apprise_configs`` entry: its URLs, loaded into an ``Apprise`` object once."""

    def __init__(self, urls: list[str], *, send_resolved: bool = True) -> None:
        try:
            import apprise  # noqa: PLC0415 (optional dependency, needed only here)
        except ModuleNotFoundError:
            raise AppriseMissingError(
                "apprise_configs need the Apprise library: pip install 'dcmon[notify]'"
            ) from None
        self._apprise: Any = apprise.Apprise()
        self._types = apprise.NotifyType
        with warnings.catch_warnings():
            # Apprise loads its plugins on the first add; one of them imports the deprecated
            # imghdr module, a warning about Apprise, not about this configuration.
            warnings.simplefilter("ignore", DeprecationWarning)
            for index, url in enumerate(urls):
                if not self._apprise.add(url):
                    raise ValueError(f"URL #{index + 1} is not a valid Apprise URL")
        self._send_resolved = send_resolved

    @property
    def kind(self) -> str:
        return "apprise"

    @property
    def send_resolved(self) -> bool:
        return self._send_resolved

    @property
    def timeout_s(self) -> float:
        return APPRISE_TIMEOUT_S

    def notify(self, message: Message) -> None:
        kind = self._types.FAILURE if message.firing else self._types.SUCCESS
        try:
            ok = self._apprise.notify(body=body(message), title=title(message), notify_type=kind)
        except Exception as exc:  # noqa: BLE001 (a foreign library at its seam)
            raise DeliveryError(f"apprise: {type(exc).__name__}", retryable=True) from None
        if not ok:
            raise DeliveryError("apprise: a service did not accept the message", retryable=True)
