"""The events store: keep each reported GPU event once; read them back newest first.

Stage: ingest -> storage (events) -> api. An event is identified by a digest of its content
per node, so storing a batch's events again (a re-sent or replayed batch) adds nothing.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, Table, or_, select

from agent.wire.schema import GpuEvent
from server.storage.tables import GpuEventRow, NodeRow

_events: Table = GpuEventRow.__table__  # type: ignore[assignment]
_nodes: Table = NodeRow.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class EventQuery:
    """Filters of an event list; ``None`` means any. Times are inclusive Unix seconds."""

    limit: int
    node: str | None = None
    uuid: str | None = None
    code: int | None = None
    severity: str | None = None
    start: float | None = None
    end: float | None = None


@dataclass(frozen=True)
class EventRecord:
    node_name: str
    node_id: str
    event: GpuEvent


def event_key(event: GpuEvent) -> str:
    """Returns: the SHA-256 (hex) of the event's canonical JSON, its identity on its node."""
    document = json.dumps(
        event.model_dump(mode="json"), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(document.encode()).hexdigest()


def write_events(conn: Connection, node_pk: int, events: Sequence[GpuEvent]) -> int:
    """Store the events the node does not have yet. Returns: how many were new."""
    by_key = {event_key(event): event for event in events}
    if not by_key:
        return 0
    known = set(
        conn.execute(
            select(_events.c.event_key).where(
                _events.c.node_pk == node_pk, _events.c.event_key.in_(list(by_key))
            )
        ).scalars()
    )
    rows = [
        {"node_pk": node_pk, "event_key": key, **event.model_dump()}
        for key, event in by_key.items()
        if key not in known
    ]
    if rows:
        conn.execute(_events.insert(), rows)
    return len(rows)


class EventStore:
    """GPU event rows, read by the events API (ingest writes them with ``write_events`` inside
    each batch's transaction)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    def events(self, query: EventQuery) -> list[EventRecord]:
        """Returns: matching events, newest first, at most ``query.limit``."""
        conditions: list[ColumnElement[bool]] = []
        if query.node is not None:
            conditions.append(or_(_nodes.c.name == query.node, _nodes.c.node_id == query.node))
        if query.uuid is not None:
            conditions.append(_events.c.uuid == query.uuid)
        if query.code is not None:
            conditions.append(_events.c.code == query.code)
        if query.severity is not None:
            conditions.append(_events.c.severity == query.severity)
        if query.start is not None:
            conditions.append(_events.c.time >= query.start)
        if query.end is not None:
            conditions.append(_events.c.time <= query.end)
        statement = (
            select(_events, _nodes.c.name.label("node_name"), _nodes.c.node_id.label("node_key"))
            .join(_nodes, _nodes.c.id == _events.c.node_pk)
            .where(*conditions)
            .order_by(_events.c.time.desc(), _events.c.id.desc())
            .limit(query.limit)
        )
        with self._engine.connect() as conn:
            return [_record(row) for row in conn.execute(statement)]


def _record(row: Any) -> EventRecord:
    event = GpuEvent.model_validate(
        {name: getattr(row, name) for name in GpuEvent.model_fields}, strict=False
    )
    return EventRecord(row.node_name, row.node_key, event)
