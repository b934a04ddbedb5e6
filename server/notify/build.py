"""Builds the notifier from settings: Alertmanager outboxes and the direct receivers.

``build_notifier(settings, silences=..., nflog=..., counts=...)`` returns a ``Notifier`` not yet
started; the caller (the server's alerting wiring) starts and closes it. One ``httpx.Client``
serves every webhook and Alertmanager. ``leading`` fences the direct receivers: the server
passes its leadership check, so only the rule leader sends (``pipeline.py``). Raises
``NotifyConfigError`` for a bad receivers file.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

import httpx

from server.notify.alertmanager import AlertmanagerOutbox
from server.notify.apprise_receiver import AppriseIntegration, AppriseMissingError
from server.notify.config import (
    DirectConfig,
    NotifyConfigError,
    NotifySettings,
    duration_s,
    load_receivers,
)
from server.notify.delivery import Counts
from server.notify.nflog import NotificationLog
from server.notify.pipeline import Pipeline, Receiver
from server.notify.receiver import Integration
from server.notify.service import DirectNotifier, Notifier
from server.notify.silence import Silence
from server.notify.webhook import Webhook


def build_receivers(config: DirectConfig, client: httpx.Client) -> dict[str, Receiver]:
    """Returns: the receivers of ``config``, integrations ready. Raises: NotifyConfigError."""
    out: dict[str, Receiver] = {}
    for name, spec in config.receivers.items():
        integrations: list[Integration] = []
        for index, hook in enumerate(spec.webhook_configs):
            where = f"receiver {name!r} webhook_configs[{index}].timeout"
            integrations.append(
                Webhook(
                    hook.resolved_url(),
                    client,
                    send_resolved=hook.send_resolved,
                    max_alerts=hook.max_alerts,
                    timeout_s=duration_s(hook.timeout, where),
                )
            )
        for index, chat in enumerate(spec.apprise_configs):
            try:
                integrations.append(AppriseIntegration(chat.urls, send_resolved=chat.send_resolved))
            except (AppriseMissingError, ValueError) as exc:
                raise NotifyConfigError(
                    f"receiver {name!r} apprise_configs[{index}]: {exc}"
                ) from None
        out[name] = Receiver(name, tuple(integrations))
    return out


def build_notifier(
    settings: NotifySettings,
    *,
    silences: Callable[[], Sequence[Silence]],
    nflog: NotificationLog,
    counts: Counts,
    clock: Callable[[], float] = time.time,
    client: httpx.Client | None = None,
    leading: Callable[[], bool] = lambda: True,
) -> Notifier:
    client = client or httpx.Client(timeout=settings.alertmanager_timeout_seconds)
    outboxes = [
        AlertmanagerOutbox(url, client, counts, timeout_s=settings.alertmanager_timeout_seconds)
        for url in settings.alertmanager_urls
    ]
    direct = None
    if settings.receivers_file is not None:
        config = load_receivers(settings.receivers_file)
        stop = threading.Event()
        pipeline = Pipeline(
            build_receivers(config, client),
            config.inhibit_rules,
            silences,
            nflog,
            counts,
            external_url=settings.external_url,
            leading=leading,
            clock=clock,
            stop=stop,
        )
        direct = DirectNotifier(config.route, pipeline, nflog, clock=clock, stop=stop)
    return Notifier(outboxes, direct)
