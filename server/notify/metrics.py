"""Notification outcomes as a Prometheus counter on the server's registry.

``dcmon_server_notifications_total{receiver, outcome}``: ``sent``, ``retried`` (an attempt
failed and will be tried again), ``failed`` (given up; a direct receiver's group is tried
again at its next interval, an Alertmanager gets the alerts again at the next resend),
``dropped`` (the Alertmanager queue was full). ``receiver`` is a receiver's name from the
receivers file, or ``alertmanager/host:port``: never a URL.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from server.notify.delivery import Outcome

HELP = (
    "Notifications by receiver and outcome: sent, retried, failed (given up), dropped (queue full)."
)


class PrometheusCounts:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._counter = Counter(
            "dcmon_server_notifications", HELP, ["receiver", "outcome"], registry=registry
        )

    def count(self, receiver: str, outcome: Outcome) -> None:
        self._counter.labels(receiver=receiver, outcome=outcome).inc()
