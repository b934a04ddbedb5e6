"""The notification pipeline of one group flush: mute, deduplicate, claim, send, log.

Alertmanager's stages (``notify/notify.go``), in order: alerts muted by an inhibition rule or
an active silence are taken out (a group left empty sends nothing); then, for each
integration of the route's receiver, the notification log decides whether the remaining
firing/resolved set is news (``nflog.needs_update``); resolved alerts are left out for an
integration with ``send_resolved: false`` (a set left empty is logged, not sent); the message
is delivered with retries until ``group_interval`` has passed; only a success is logged, so a
failed group is tried again at its next interval and a sent one is not sent again.

Several server processes share the log (replicas on one PostgreSQL), and during a leadership
change two of them may flush the same group: the old leader's dispatcher still holds it in
memory while the new leader builds it from the alerts it re-sends. Two fences keep that to
one notification:

- **leadership**: a flush that has news, before it claims, and every delivery attempt first
  ask ``leading()`` (the advisory lock, checked on its own connection); a process that no
  longer leads sends nothing more, and abandons a retry loop at its next attempt
  (``Fenced``).
- **a claim** on (receiver, group key) taken before sending (``nflog.Claim``): one holder at
  a time, the log read after winning it, so a second sender of the same set finds it logged
  and skips it, and one with another set waits for the next interval. The claim lasts one
  attempt (``lease_s``: twice the integration's timeout, which httpx applies per network
  operation, plus ``CLAIM_MARGIN_S``) and is renewed before each retry; after that it is
  stale and the next flush of any replica takes it over.

What remains is a crash of the sender with its claim held, and here the choice is
**at-least-once**, as Alertmanager's clustering (each peer sends unless the gossiped log says
a peer did) and a webhook's own retries are. A sender that dies after the claim and before
the receiver accepted loses nothing: its claim goes stale and the new leader sends the set,
one lease late. A sender that dies after the receiver accepted and before its log row
committed (the time of an HTTP answer and one commit, milliseconds) has its set sent again
by the new leader: one duplicate, logged as a warning naming the claim taken over. The
other choice, a stale claim counted as sent, would turn that millisecond window into a lost
page and widen it to the whole delivery with its retries (up to ``group_interval``): for
on-call, a repeated page is the lesser harm, and receivers can drop it by the webhook
payload's ``groupKey`` and alert fingerprints.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial

from server.notify.delivery import Counts, deliver
from server.notify.dispatch import Flush
from server.notify.inhibit import Inhibitor, InhibitRule
from server.notify.model import Notice, fingerprint
from server.notify.nflog import RETENTION_S, LogEntry, NotificationLog, digest, needs_update
from server.notify.receiver import Integration, Message
from server.notify.silence import Silence, silenced_by

_log = logging.getLogger(__name__)

CLAIM_MARGIN_S = 5.0
"""Added to a claim's lease: the time between winning it and the first attempt, and the
clock difference between replicas."""


def new_owner() -> str:
    """Returns: a name for this sending process, unique among replicas (host, pid, random)."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(6)}"


def lease_s(integration: Integration) -> float:
    """Returns: how long a claim for one attempt of ``integration`` stays valid."""
    return 2 * integration.timeout_s + CLAIM_MARGIN_S


class Fenced(Exception):  # noqa: N818 (a state, not a failure of the receiver)
    """This process may not send: it no longer leads, or its claim was taken over."""


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
        leading: Callable[[], bool] = lambda: True,
        owner: str | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        stop: threading.Event | None = None,
    ) -> None:
        self._receivers = receivers
        self._rules = inhibit_rules
        self._silences = silences
        self._nflog = nflog
        self._counts = counts
        self._external_url = external_url
        self._leading = leading
        self.owner = owner or new_owner()
        self._clock = clock
        self._monotonic = monotonic
        self._stop = stop

    def run(self, flush: Flush, firing_now: Sequence[Notice]) -> bool:
        """Returns: False when an integration could not be reached, or another process was
        sending the group (tried again next interval)."""
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
        ok = True
        for index, integration in enumerate(receiver.integrations):
            log_name = f"{receiver.name}/{integration.kind}/{index}"
            ok = self._notify(receiver.name, log_name, integration, flush, alerts) and ok
        return ok

    def _notify(
        self,
        name: str,
        log_name: str,
        integration: Integration,
        flush: Flush,
        alerts: tuple[Notice, ...],
    ) -> bool:
        """One integration's dedup, claim, delivery and log; returns False to try again."""
        now, key = flush.at, flush.group_key
        firing = frozenset(fingerprint(a.labels) for a in alerts if not a.resolved(now))
        resolved = frozenset(fingerprint(a.labels) for a in alerts if a.resolved(now))
        news = partial(
            needs_update,
            firing=firing,
            resolved=resolved,
            send_resolved=integration.send_resolved,
            repeat_interval_s=flush.route.repeat_interval_s,
            now=now,
        )
        if not news(self._nflog.get(log_name, key)):
            return True  # the common case, decided without a write
        if not self._leading():
            _log.info("group %s not notified: this server no longer leads", key)
            return True
        lease = lease_s(integration)
        wall = self._clock()
        claim = self._nflog.claim(
            log_name, key, self.owner, digest(firing, resolved), wall + lease, wall
        )
        if not claim.held:
            _log.info("group %s: another server is notifying %s; next interval", key, name)
            return False
        if claim.taken_from:
            _log.warning(
                "group %s: took over %s's stale claim on %s; what it was sending may arrive twice",
                key,
                claim.taken_from,
                name,
            )
        sent = False
        try:
            if not news(claim.entry):
                return True  # logged by the previous holder meanwhile
            chosen = (
                alerts
                if integration.send_resolved
                else tuple(a for a in alerts if not a.resolved(now))
            )
            if chosen:
                message = Message(name, key, flush.group_labels, chosen, now, self._external_url)
                attempt = partial(self._attempt, integration, message, log_name, lease, [])
                sent = deliver(
                    name,
                    attempt,
                    deadline=self._monotonic() + flush.route.group_interval_s,
                    counts=self._counts,
                    clock=self._monotonic,
                    stop=self._stop,
                )
            else:
                sent = True
        except Fenced as exc:
            _log.warning("group %s: notification to %s abandoned: %s", key, name, exc)
            return True  # the leader (or the claim's new holder) notifies
        finally:
            if not sent:
                self._nflog.release(log_name, key, self.owner)
        if sent:
            self._nflog.log(
                LogEntry(log_name, key, firing, resolved, now, now + RETENTION_S), self.owner
            )
        return sent

    def _attempt(
        self,
        integration: Integration,
        message: Message,
        log_name: str,
        lease: float,
        tried: list[float],
    ) -> None:
        """One delivery attempt, fenced: still the leader, and (on a retry) still holding
        the claim, renewed for this attempt. Raises: Fenced, DeliveryError."""
        if not self._leading():
            raise Fenced("this server no longer leads")
        now = self._clock()
        if tried and not self._nflog.renew(log_name, message.group_key, self.owner, now + lease):
            raise Fenced("another server took the claim over")
        tried.append(now)
        integration.notify(message)
