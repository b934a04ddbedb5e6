"""The notification seam: what the evaluation loop hands on after each round.

Stage: alerting -> notify. After every round the evaluator picks the alerts Prometheus' rule
manager would send (``server.rules.state.needs_sending``: never pending, a resolution at once,
a firing alert every resend delay, after the rule's ``notify_delay``) and calls
``Notifier.send`` once with all of them (possibly none). ``send`` must not block for long
(queue and deliver on its own thread) and should not raise; if it raises, the evaluator logs
and counts the failure and does not mark the alerts sent, so they go again next round.

``Notification`` carries what Alertmanager's v2 ``postableAlert`` holds: times are Unix
seconds; ``ends_at`` is the resolution time of a resolved alert, else the time it stays valid
(``valid_until``: Alertmanager resolves it by itself if dcmon stops sending).
``MemoryNotifier`` is the in-memory twin; ``NullNotifier`` sends nowhere.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Notification:
    """One alert as sent to Alertmanager or a direct receiver."""

    labels: Mapping[str, str]  # alertname and the alert's labels
    annotations: Mapping[str, str]
    starts_at: float  # when it fired (Unix seconds)
    ends_at: float  # resolved at, or valid until
    resolved: bool
    generator_url: str = ""
    rule_group: str = ""  # "<file>;<group>": where the rule lives (for logs and receivers)


class Notifier(Protocol):
    def send(self, alerts: Sequence[Notification], now: float) -> None:
        """Queue ``alerts`` for delivery (``now`` in Unix seconds); called once per round."""
        ...


class NullNotifier:
    """Sends nowhere (no notification stage configured)."""

    def send(self, alerts: Sequence[Notification], now: float) -> None:
        pass


class MemoryNotifier:
    """The in-memory twin: remembers every call; ``fail`` makes the next calls raise."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, list[Notification]]] = []
        self.fail = False
        self._lock = threading.Lock()

    def send(self, alerts: Sequence[Notification], now: float) -> None:
        if self.fail:
            raise RuntimeError("notifier unavailable")
        with self._lock:
            self.calls.append((now, list(alerts)))

    def sent(self) -> list[Notification]:
        """Returns: every notification sent, in order."""
        with self._lock:
            return [item for _, batch in self.calls for item in batch]
