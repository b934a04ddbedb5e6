"""What a direct receiver is given, and the seam every integration implements.

A ``Message`` is one group notification: the receiver's name, the group key and labels, the
alerts (firing and, where the integration wants them, resolved) as they stand at ``now``, and
dcmon's external URL. An ``Integration`` (webhook, Apprise) sends it or raises
``DeliveryError``. ``common`` gives the labels or annotations all alerts share, as
Alertmanager's template data does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from server.notify.model import Labels, Notice


@dataclass(frozen=True)
class Message:
    receiver: str
    group_key: str
    group_labels: Labels
    alerts: tuple[Notice, ...]
    now: float
    external_url: str = ""

    @property
    def firing(self) -> list[Notice]:
        return [a for a in self.alerts if not a.resolved(self.now)]

    @property
    def status(self) -> str:
        return "firing" if self.firing else "resolved"


class Integration(Protocol):
    """One way of reaching a receiver (``webhook_configs`` entry, ``apprise_configs`` entry)."""

    @property
    def kind(self) -> str: ...

    @property
    def send_resolved(self) -> bool: ...

    @property
    def timeout_s(self) -> float:
        """The longest one ``notify`` call takes, in seconds (it bounds a send claim)."""
        ...

    def notify(self, message: Message) -> None:
        """Raises: DeliveryError."""
        ...


def common(label_sets: Sequence[Labels]) -> dict[str, str]:
    """Returns: the pairs every one of ``label_sets`` has."""
    if not label_sets:
        return {}
    shared = dict(label_sets[0])
    for labels in label_sets[1:]:
        other = dict(labels)
        shared = {k: v for k, v in shared.items() if other.get(k) == v}
    return shared
