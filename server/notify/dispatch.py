"""The dispatcher: alerts into groups, and when each group's notification is due. Pure.

Alertmanager's ``dispatch/dispatch.go``: every alert is routed (``route.py``) and joins one
aggregation group per matching route and set of group labels. A new group waits
``group_wait`` before its first notification (an alert that started longer than that ago is
notified at once); after that the group is looked at every ``group_interval``. ``due(now)``
hands out the groups whose time has come, as ``Flush`` snapshots; the caller runs the
notification pipeline (``pipeline.py``) and reports back with ``done``. After a successful
flush, resolved alerts that did not change meanwhile leave the group; an empty group is
dropped. Alerts are stored by fingerprint; a later notice of the same alert replaces the
earlier one, keeping its start when the two overlap. The clock is the caller's ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from server.notify.model import Labels, Notice, fingerprint
from server.notify.route import Route


@dataclass(frozen=True)
class Flush:
    """A group's alerts at the moment its notification became due."""

    route: Route
    group_key: str
    group_labels: Labels
    alerts: tuple[Notice, ...]
    at: float


@dataclass
class _Group:
    route: Route
    labels: Labels
    key: str
    next_flush: float
    alerts: dict[str, Notice] = field(default_factory=dict)
    has_flushed: bool = False
    in_flight: bool = False


class Dispatcher:
    """Groups and their timers; not thread-safe (the notifier holds a lock around it)."""

    def __init__(self, root: Route) -> None:
        self._root = root
        self._groups: dict[tuple[str, Labels], _Group] = {}

    def insert(self, notices: Iterable[Notice], now: float) -> None:
        for notice in notices:
            fp = fingerprint(notice.labels)
            for route in self._root.match(notice.labels):
                labels = route.group_labels(notice.labels)
                group = self._groups.get((route.route_id, labels))
                if group is None:
                    group = _Group(route, labels, route.group_key(labels), now + route.group_wait_s)
                    self._groups[(route.route_id, labels)] = group
                group.alerts[fp] = _merge(group.alerts.get(fp), notice)
                if not group.has_flushed and notice.starts_at + route.group_wait_s < now:
                    group.next_flush = min(group.next_flush, now)

    def next_due(self) -> float | None:
        """Returns: the earliest time a group is due, None when there is no group."""
        times = [g.next_flush for g in self._groups.values() if not g.in_flight]
        return min(times) if times else None

    def due(self, now: float) -> list[Flush]:
        """Returns: the groups due at ``now``, each then in flight until ``done``."""
        out: list[Flush] = []
        for gid, group in list(self._groups.items()):
            if group.in_flight or group.next_flush > now:
                continue
            if not group.alerts:
                del self._groups[gid]
                continue
            group.next_flush = now + group.route.group_interval_s
            group.in_flight = True
            alerts = tuple(sorted(group.alerts.values(), key=lambda n: n.labels))
            out.append(Flush(group.route, group.key, group.labels, alerts, now))
        return out

    def done(self, flush: Flush, *, success: bool) -> None:
        """Record the end of ``flush``'s pipeline; on success, drop the resolved alerts it
        carried that did not change meanwhile."""
        group = self._groups.get((flush.route.route_id, flush.group_labels))
        if group is None:
            return
        group.in_flight = False
        group.has_flushed = True
        if not success:
            return
        for notice in flush.alerts:
            fp = fingerprint(notice.labels)
            if notice.resolved(flush.at) and group.alerts.get(fp) == notice:
                del group.alerts[fp]

    def groups(self) -> list[tuple[str, int]]:
        """Returns: (group key, alert count) of every group, for inspection."""
        return [(g.key, len(g.alerts)) for g in self._groups.values()]

    def firing(self, now: float) -> list[Notice]:
        """Returns: every distinct alert firing at ``now`` (the inhibitor's sources)."""
        seen: dict[str, Notice] = {}
        for group in self._groups.values():
            for fp, notice in group.alerts.items():
                if not notice.resolved(now):
                    seen[fp] = notice
        return list(seen.values())


def _merge(old: Notice | None, new: Notice) -> Notice:
    if old is None:
        return new
    if old.ends_at is not None and old.ends_at < new.starts_at:
        return new  # the old incident ended before this one began
    return replace(new, starts_at=min(old.starts_at, new.starts_at))
