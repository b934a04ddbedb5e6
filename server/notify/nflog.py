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
hash. ``MemoryLog`` is the in-memory store; the database one is ``server/notify/nflog_store.py``.

Reading the log and writing it after the send is not enough when several server processes
share it (a leadership change: the old leader's dispatcher still holds its groups while the
new leader builds its own). So a sender first takes a **claim** on (receiver, group key): a
row that only one process can hold at a time (its primary key), valid ``until`` a time after
which the holder counts as dead and another sender may take it over. ``claim`` returns the
log entry read *after* the claim was won, in the same transaction, so the decision to send is
made on what every earlier holder committed; ``log(entry, owner)`` writes the entry and drops
the claim in one transaction; ``renew`` extends a claim before a retry (False: it was taken
over, stop); ``release`` drops it after a failure. The pipeline (``pipeline.py``) says what
this guarantees.
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


CLAIM_RETENTION_S = 3600.0
"""``gc`` drops claims this long past their ``until`` (a sender that died on a group that
never came back; any other stale claim is taken over at the group's next flush)."""


@dataclass(frozen=True)
class Claim:
    """The answer to ``claim``: whether this owner holds the claim, and the log entry as it
    stood once it did (None when not held, or nothing logged). ``taken_from`` names the owner
    of the stale claim this one replaced ("" for none): that owner may have sent the set."""

    held: bool
    entry: LogEntry | None = None
    taken_from: str = ""


class NotificationLog(Protocol):
    def get(self, receiver: str, group_key: str) -> LogEntry | None: ...

    def log(self, entry: LogEntry, owner: str = "") -> None:
        """Write ``entry`` (replacing the group's last) and drop ``owner``'s claim on it."""
        ...

    def claim(
        self, receiver: str, group_key: str, owner: str, digest: str, until: float, now: float
    ) -> Claim:
        """Take the claim on (receiver, group key) unless another owner holds one that is
        still valid at ``now``; a stale one is taken over."""
        ...

    def renew(self, receiver: str, group_key: str, owner: str, until: float) -> bool:
        """Returns: whether ``owner`` still held its claim (now valid ``until``)."""
        ...

    def release(self, receiver: str, group_key: str, owner: str) -> None:
        """Drop ``owner``'s claim, if it still holds it."""
        ...

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


@dataclass(frozen=True)
class _Held:
    owner: str
    digest: str
    until: float


class MemoryLog:
    """The notification log in memory (one process; tests: share one between "replicas")."""

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str], LogEntry] = {}
        self._claims: dict[tuple[str, str], _Held] = {}
        self._lock = threading.Lock()

    def get(self, receiver: str, group_key: str) -> LogEntry | None:
        with self._lock:
            return self._entries.get((receiver, group_key))

    def log(self, entry: LogEntry, owner: str = "") -> None:
        key = (entry.receiver, entry.group_key)
        with self._lock:
            self._entries[key] = entry
            held = self._claims.get(key)
            if held is not None and held.owner == owner:
                del self._claims[key]

    def claim(
        self, receiver: str, group_key: str, owner: str, digest: str, until: float, now: float
    ) -> Claim:
        key = (receiver, group_key)
        with self._lock:
            held = self._claims.get(key)
            if held is not None and held.owner != owner and held.until >= now:
                return Claim(False)
            self._claims[key] = _Held(owner, digest, until)
            taken = held.owner if held is not None and held.owner != owner else ""
            return Claim(True, self._entries.get(key), taken)

    def renew(self, receiver: str, group_key: str, owner: str, until: float) -> bool:
        key = (receiver, group_key)
        with self._lock:
            held = self._claims.get(key)
            if held is None or held.owner != owner:
                return False
            self._claims[key] = _Held(owner, held.digest, until)
            return True

    def release(self, receiver: str, group_key: str, owner: str) -> None:
        key = (receiver, group_key)
        with self._lock:
            held = self._claims.get(key)
            if held is not None and held.owner == owner:
                del self._claims[key]

    def claimed(self, receiver: str, group_key: str) -> str:
        """Returns: the owner of the claim on (receiver, group key), "" when none (tests)."""
        with self._lock:
            held = self._claims.get((receiver, group_key))
            return "" if held is None else held.owner

    def gc(self, now: float) -> int:
        with self._lock:
            old = [key for key, entry in self._entries.items() if entry.expires_at <= now]
            for key in old:
                del self._entries[key]
            stale = [k for k, h in self._claims.items() if h.until < now - CLAIM_RETENTION_S]
            for key in stale:
                del self._claims[key]
            return len(old)
