"""The notification pipeline of one group flush: mute, deduplicate, send, log.

Alertmanager's stages (``notify/notify.go``), in order: alerts muted by an inhibition rule or
an active silence are taken out (a group left empty sends nothing); then, for each
integration of the route's receiver, the notification log decides whether the remaining
firing/resolved set is news (``nflog.needs_update``); resolved alerts are left out for an
integration with ``send_resolved: false`` (a set left empty is logged, not sent); the message
is delivered with retries until ``group_interval`` has passed; only a success is logged, so a
failed group is tried again at its next interval and a sent one is never sent twice.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from server.notify.delivery import Counts, deliver
from server.notify.dispatch import Flush
from server.notify.inhibit import Inhibitor, InhibitRule
from server.notify.model import Notice, fingerprint
from server.notify.nflog import RETENTION_S, LogEntry, NotificationLog, needs_update
from server.notify.receiver import Integration, Message
from server.notify.silence import Silence, silenced_by


@dataclass(frozen=True)
class Receiver:
    name: str
    integrations: tuple[Integration, ...] = ()


class Pipeline:
    def __init__(
        self,
        receivers: Mapping[str, Receiver],
        inhibit_rules: Sequence[InhibitRule],
        silences: Callable[[], Sequence[Silence]],
        nflog: NotificationLog,
        counts: Counts,
        *,
        external_url: str = "",
        monotonic: Callable[[], float] = time.monotonic,
        stop: threading.Event | None = None,
    ) -> None:
        self._receivers = receivers
        self._rules = inhibit_rules
        self._silences = silences
        self._nflog = nflog
        self._counts = counts
        self._external_url = external_url
        self._monotonic = monotonic
        self._stop = stop

    def run(self, flush: Flush, firing_now: Sequence[Notice]) -> bool:
        """Returns: False when an integration could not be reached (retried next interval)."""
        now = flush.at
        inhibitor = Inhibitor(self._rules, firing_now)
        silences = self._silences()
        alerts = tuple(
            a
            for a in flush.alerts
            if not inhibitor.mutes(a.labels) and not silenced_by(a.labels, silences, now)
        )
        if not alerts:
            return True
        receiver = self._receivers[flush.route.receiver]
        firing = frozenset(fingerprint(a.labels) for a in alerts if not a.resolved(now))
        resolved = frozenset(fingerprint(a.labels) for a in alerts if a.resolved(now))
        ok = True
        for index, integration in enumerate(receiver.integrations):
            log_name = f"{receiver.name}/{integration.kind}/{index}"
            entry = self._nflog.get(log_name, flush.group_key)
            if not needs_update(
                entry,
                firing,
                resolved,
                send_resolved=integration.send_resolved,
                repeat_interval_s=flush.route.repeat_interval_s,
                now=now,
            ):
                continue
            chosen = (
                alerts
                if integration.send_resolved
                else tuple(a for a in alerts if not a.resolved(now))
            )
            sent = True
            if chosen:
                message = Message(
                    receiver.name,
                    flush.group_key,
                    flush.group_labels,
                    chosen,
                    now,
                    self._external_url,
                )
                sent = deliver(
                    receiver.name,
                    partial(integration.notify, message),
                    deadline=self._monotonic() + flush.route.group_interval_s,
                    counts=self._counts,
                    clock=self._monotonic,
                    stop=self._stop,
                )
            if sent:
                self._nflog.log(
                    LogEntry(log_name, flush.group_key, firing, resolved, now, now + RETENTION_S)
                )
            ok = ok and sent
        return ok
