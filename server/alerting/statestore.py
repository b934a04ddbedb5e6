"""Alert state in the database: each rule's alerts, saved after a round, loaded on leadership.

Stage: alerting -> storage. One row per alert (``tables.AlertStateRow``), keyed by group, rule
(``ruleset.rule_keys``) and labels; the row holds ``Alert.to_dict`` as JSON. ``save`` writes
only what changed since the group's last save (rows of new or changed alerts replaced, rows of
deleted ones removed) through the single writer, so a round whose alerts did not move writes
nothing. ``load`` reads everything, when a server becomes the evaluation leader: a restart or
a failover continues ``for`` timers, ``keep_firing_for`` and the last-sent times.

``MemoryStateStore`` is the in-memory twin, shared by the "replicas" of a test.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping, Sequence
from typing import Protocol

from sqlalchemy import Connection, Engine, Table, delete, select
from sqlalchemy.exc import SQLAlchemyError

from server.rules.state import Alert
from server.storage.tables import AlertStateRow
from server.storage.writer import Writer

_table: Table = AlertStateRow.__table__  # type: ignore[assignment]

GroupAlerts = dict[str, list[Alert]]
"""rule key -> the rule's alerts."""


class StateStoreError(Exception):
    """The alert state could not be read or written (the database failed)."""


class StateStore(Protocol):
    def load(self) -> dict[str, GroupAlerts]:
        """Returns: group key -> rule key -> alerts. Raises: StateStoreError."""
        ...

    def save(self, group_key: str, alerts: Mapping[str, Sequence[Alert]], now_ms: int) -> int:
        """Persist the group's alerts; returns the rows written. Raises: StateStoreError."""
        ...


def _alert_key(group_key: str, rule_key: str, alert: Alert) -> str:
    text = json.dumps([group_key, rule_key, alert.labels], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _rows(group_key: str, alerts: Mapping[str, Sequence[Alert]]) -> dict[str, tuple[str, str]]:
    """Returns: alert key -> (rule key, JSON data)."""
    rows: dict[str, tuple[str, str]] = {}
    for rule_key, items in alerts.items():
        for alert in items:
            data = json.dumps(alert.to_dict(), sort_keys=True, separators=(",", ":"))
            rows[_alert_key(group_key, rule_key, alert)] = (rule_key, data)
    return rows


class DatabaseStateStore:
    """Alert state in ``alert_state``, written through the server's single writer."""

    def __init__(self, engine: Engine, writer: Writer) -> None:
        self._engine = engine
        self._writer = writer
        self._saved: dict[str, dict[str, tuple[str, str]]] = {}
        self._lock = threading.Lock()

    def load(self) -> dict[str, GroupAlerts]:
        try:
            with self._engine.connect() as conn:
                rows = conn.execute(
                    select(_table.c.alert_key, _table.c.group_key, _table.c.rule_key, _table.c.data)
                ).all()
        except SQLAlchemyError as exc:
            raise StateStoreError(f"reading alert state failed: {exc}") from exc
        result: dict[str, GroupAlerts] = {}
        saved: dict[str, dict[str, tuple[str, str]]] = {}
        for alert_key, group_key, rule_key, data in rows:
            try:
                alert = Alert.from_dict(json.loads(data))
            except (ValueError, KeyError, TypeError, AssertionError):
                continue  # a row this version cannot read is dropped at the next save
            result.setdefault(group_key, {}).setdefault(rule_key, []).append(alert)
            saved.setdefault(group_key, {})[alert_key] = (rule_key, data)
        with self._lock:
            self._saved = saved
        return result

    def save(self, group_key: str, alerts: Mapping[str, Sequence[Alert]], now_ms: int) -> int:
        rows = _rows(group_key, alerts)
        with self._lock:
            before = self._saved.get(group_key, {})
        gone = [key for key in before if key not in rows]
        changed = {key: row for key, row in rows.items() if before.get(key) != row}
        if not gone and not changed:
            return 0

        def job(conn: Connection) -> None:
            keys = gone + list(changed)
            for start in range(0, len(keys), 500):
                chunk = keys[start : start + 500]
                conn.execute(delete(_table).where(_table.c.alert_key.in_(chunk)))
            if changed:
                conn.execute(
                    _table.insert(),
                    [
                        {
                            "alert_key": key,
                            "group_key": group_key,
                            "rule_key": rule_key,
                            "data": data,
                            "updated_ms": now_ms,
                        }
                        for key, (rule_key, data) in changed.items()
                    ],
                )

        try:
            self._writer.submit(job)
        except (SQLAlchemyError, RuntimeError) as exc:
            with self._lock:
                self._saved.pop(group_key, None)  # unknown now: the next save rewrites all
            raise StateStoreError(f"writing alert state failed: {exc}") from exc
        with self._lock:
            self._saved[group_key] = rows
        return len(gone) + len(changed)

    def forget(self, group_key: str) -> None:
        """Delete a removed group's rows (its file or group is gone from the rule set)."""
        self.save(group_key, {}, 0)


class MemoryStateStore:
    """The in-memory twin: state kept as the JSON the database would hold."""

    def __init__(self) -> None:
        self._rows: dict[str, dict[str, tuple[str, str]]] = {}
        self.saves = 0
        self.fail = False

    def load(self) -> dict[str, GroupAlerts]:
        if self.fail:
            raise StateStoreError("state store unavailable")
        result: dict[str, GroupAlerts] = {}
        for group_key, rows in self._rows.items():
            for rule_key, data in rows.values():
                alert = Alert.from_dict(json.loads(data))
                result.setdefault(group_key, {}).setdefault(rule_key, []).append(alert)
        return result

    def save(self, group_key: str, alerts: Mapping[str, Sequence[Alert]], now_ms: int) -> int:
        if self.fail:
            raise StateStoreError("state store unavailable")
        rows = _rows(group_key, alerts)
        before = self._rows.get(group_key, {})
        self._rows[group_key] = rows
        self.saves += 1
        return sum(1 for k in set(rows) | set(before) if rows.get(k) != before.get(k))

    def forget(self, group_key: str) -> None:
        self._rows.pop(group_key, None)
