"""Silences: an alert matching every matcher of an active silence is not notified. Pure.

A silence is Alertmanager's (``POST /api/v2/silences``): matchers, ``starts_at``/``ends_at``
(Unix seconds), ``created_by`` and ``comment``. It is active while ``starts_at <= now <
ends_at``, pending before and expired after. Expiring an active silence ends it now; expiring a
pending one makes it end before it starts. dcmon stores silences in its database
(``server/notify/silence_store.py``); this module only decides.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Literal

from server.notify.matchers import Matcher, matches_all
from server.notify.model import Labels

SilenceState = Literal["pending", "active", "expired"]


class SilenceError(ValueError):
    """A silence that cannot be made (no matchers, ends before it starts...)."""


@dataclass(frozen=True)
class Silence:
    silence_id: str
    matchers: tuple[Matcher, ...]
    starts_at: float
    ends_at: float
    created_by: str
    comment: str
    updated_at: float = 0.0

    def state(self, now: float) -> SilenceState:
        if now >= self.ends_at:
            return "expired"
        if now < self.starts_at:
            return "pending"
        return "active"

    def mutes(self, labels: Labels, now: float) -> bool:
        return self.state(now) == "active" and matches_all(self.matchers, labels)

    def expired(self, now: float) -> Silence:
        """Returns: this silence ended at ``now`` (a pending one never starts)."""
        if self.state(now) == "expired":
            return self
        starts = min(self.starts_at, now)
        return replace(self, starts_at=starts, ends_at=now, updated_at=now)


def check_new(matchers: tuple[Matcher, ...], starts_at: float, ends_at: float) -> None:
    """Raises: SilenceError: no matchers, only matchers that match the empty label (they would
    mute every alert), or an end not after the start."""
    if not matchers:
        raise SilenceError("a silence needs at least one matcher")
    if all(matcher.matches(()) for matcher in matchers):
        raise SilenceError("at least one matcher must not match an empty label set")
    if ends_at <= starts_at:
        raise SilenceError("endsAt must be after startsAt")


def silenced_by(labels: Labels, silences: Iterable[Silence], now: float) -> list[str]:
    """Returns: the ids of the active silences that mute ``labels``."""
    return [s.silence_id for s in silences if s.mutes(labels, now)]
