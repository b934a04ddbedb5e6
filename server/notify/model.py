"""What dcmon notifies about: an alert as Alertmanager's v2 API receives it. Pure.

``Notice`` is what every notification path works on (Alertmanager, direct receivers): labels,
annotations, ``starts_at``, ``ends_at`` (the resolution time, or for a firing alert the time
it is valid until, after which it counts as resolved) and ``generator_url``. Times are Unix
seconds; ``as_notice`` makes one of the evaluator's alerts (any ``AlertLike``). ``fingerprint``
is Alertmanager's (FNV-1a 64 over the sorted label pairs), so dcmon's direct receivers name
alerts as Alertmanager does; ``rfc3339`` formats times as its API does.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

Labels = tuple[tuple[str, str], ...]

_FNV_OFFSET = 14695981039346656037
_FNV_PRIME = 1099511628211
_MASK = (1 << 64) - 1
_SEPARATOR = 0xFF
ZERO_TIME = "0001-01-01T00:00:00Z"


def make_labels(pairs: Mapping[str, str] | Iterable[tuple[str, str]]) -> Labels:
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    return tuple(sorted((str(k), str(v)) for k, v in items))


@dataclass(frozen=True)
class Notice:
    """One alert to notify about (Alertmanager's ``postableAlert``)."""

    labels: Labels
    annotations: Labels = ()
    starts_at: float = 0.0
    ends_at: float | None = None
    generator_url: str = ""

    def label(self, name: str) -> str:
        for key, value in self.labels:
            if key == name:
                return value
        return ""

    def resolved(self, now: float) -> bool:
        """Returns: whether the alert has ended by ``now`` (Alertmanager's ``Resolved``)."""
        return self.ends_at is not None and self.ends_at <= now

    def to_api(self) -> dict[str, object]:
        """Returns: the JSON object ``POST /api/v2/alerts`` takes."""
        body: dict[str, object] = {
            "labels": dict(self.labels),
            "annotations": dict(self.annotations),
            "startsAt": rfc3339(self.starts_at),
        }
        if self.ends_at is not None:
            body["endsAt"] = rfc3339(self.ends_at)
        if self.generator_url:
            body["generatorURL"] = self.generator_url
        return body


class AlertLike(Protocol):
    """What the rule evaluator hands over (``server.alerting.notifier.Notification`` fits)."""

    @property
    def labels(self) -> Mapping[str, str]: ...

    @property
    def annotations(self) -> Mapping[str, str]: ...

    @property
    def starts_at(self) -> float: ...

    @property
    def ends_at(self) -> float | None: ...

    @property
    def generator_url(self) -> str: ...


def as_notice(alert: AlertLike | Notice) -> Notice:
    """Returns: ``alert`` as a ``Notice`` (labels sorted)."""
    if isinstance(alert, Notice):
        return alert
    return Notice(
        make_labels(alert.labels),
        make_labels(alert.annotations),
        float(alert.starts_at),
        None if alert.ends_at is None else float(alert.ends_at),
        alert.generator_url,
    )


def fingerprint(labels: Labels) -> str:
    """Returns: Alertmanager's fingerprint of ``labels`` (16 hex digits)."""
    value = _FNV_OFFSET
    for name, label_value in sorted(labels):
        for part in (name, label_value):
            for byte in part.encode():
                value = ((value ^ byte) * _FNV_PRIME) & _MASK
            value = ((value ^ _SEPARATOR) * _FNV_PRIME) & _MASK
    return f"{value:016x}"


def rfc3339(ts: float) -> str:
    """Returns: ``ts`` (Unix seconds) in RFC 3339, UTC, milliseconds when not whole."""
    moment = datetime.fromtimestamp(ts, UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    """Returns: ``text`` as Unix seconds. Raises: ValueError when it is not RFC 3339."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return moment.timestamp()
