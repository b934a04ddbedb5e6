"""The notification log: what each receiver was last told about each group. Pure core.

Alertmanager's nflog and dedup stage (``nflog/``, ``notify/notify.go`` ``DedupStage``): after
a successful notification, the log keeps, per (receiver, group key), the fingerprints of the
firing and resolved alerts it carried and when it was sent. ``needs_update`` then decides
whether the group's current set is news:

    never notified                 -> only if something fires
    a firing alert not notified    -> yes
    nothing fires any more         -> yes if the last notification had firing alerts
    send_resolved and a resolution -> yes
    otherwise                      -> only once repeat_interval has passed

so the same set is never sent twice within ``repeat_interval``. ``digest`` names a set by a
hash (the key a shared store can make unique). ``MemoryLog`` is the in-memory store; the
database one is ``server/notify/nflog_store.py``.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

RETENTION_S = 120 * 3600.0  # Alertmanager's --data.retention


@dataclass(frozen=True)
class LogEntry:
    receiver: str
    group_key: str
    firing: frozenset[str]
    resolved: frozenset[str]
    sent_at: float
    expires_at: float

    @property
    def digest(self) -> str:
        return digest(self.firing, self.resolved)


class NotificationLog(Protocol):
    def get(self, receiver: str, group_key: str) -> LogEntry | None: ...

    def log(self, entry: LogEntry) -> None: ...

    def gc(self, now: float) -> int: ...


def needs_update(
    entry: LogEntry | None,
    firing: frozenset[str],
    resolved: frozenset[str],
    *,
    send_resolved: bool,
    repeat_interval_s: float,
    now: float,
) -> bool:
    """Returns: whether the receiver should be notified of this set now (see the docstring)."""
    if entry is None or entry.expires_at <= now:
        return bool(firing)
    if not firing <= entry.firing:
        return True
    if not firing:
        return bool(entry.firing)
    if send_resolved and not resolved <= entry.resolved:
        return True
    return entry.sent_at < now - repeat_interval_s


def digest(firing: Iterable[str], resolved: Iterable[str]) -> str:
    """Returns: a SHA-256 naming the (firing, resolved) set, order-independent."""
    text = ",".join(sorted(firing)) + "|" + ",".join(sorted(resolved))
    return hashlib.sha256(text.encode()).hexdigest()


class MemoryLog:
    """The notification log in memory (one process; tests)."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], LogEntry] = {}
        self._lock = threading.Lock()

    def get(self, receiver: str, group_key: str) -> LogEntry | None:
        with self._lock:
            return self._entries.get((receiver, group_key))

    def log(self, entry: LogEntry) -> None:
        with self._lock:
            self._entries[(entry.receiver, entry.group_key)] = entry

    def gc(self, now: float) -> int:
        with self._lock:
            old = [key for key, entry in self._entries.items() if entry.expires_at <= now]
            for key in old:
                del self._entries[key]
            return len(old)
