"""Silences in the database, and their in-memory twin.

Stage: notify -> storage. ``SilenceStore`` adds, lists (``all``), gets and expires silences;
writes go through the single database writer, reads directly, so every server replica sees
the same silences. Matchers are kept in the Alertmanager API's JSON shape
(``matchers_to_api``/``matchers_from_api``).
``MemorySilences`` has the same methods, for tests and for a notifier without a database.
Errors: ``SilenceError`` (a silence that cannot be made), ``SilenceNotFoundError``.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Table, delete, insert, select, update

from server.notify.matchers import Matcher, MatcherError, Op
from server.notify.silence import Silence, SilenceError, check_new
from server.notify.tables import SilenceRow
from server.storage.writer import Writer

_table: Table = SilenceRow.__table__  # type: ignore[assignment]
KEEP_EXPIRED_S = 5 * 86400.0  # Alertmanager's --data.retention for silences: 120 h


class SilenceNotFoundError(LookupError):
    """No silence with this id."""


def matchers_to_api(matchers: Sequence[Matcher]) -> list[dict[str, object]]:
    return [
        {
            "name": m.name,
            "value": m.value,
            "isRegex": m.op in (Op.RE, Op.NRE),
            "isEqual": m.op in (Op.EQ, Op.RE),
        }
        for m in matchers
    ]


def matchers_from_api(items: Sequence[Mapping[str, Any]]) -> tuple[Matcher, ...]:
    """Raises: SilenceError: a matcher without name, or with an invalid regex."""
    out = []
    for item in items:
        name = str(item.get("name", ""))
        if not name:
            raise SilenceError("every matcher needs a name")
        regex = bool(item.get("isRegex", False))
        equal = bool(item.get("isEqual", True))
        op = {(False, True): Op.EQ, (False, False): Op.NE, (True, True): Op.RE}.get(
            (regex, equal), Op.NRE
        )
        try:
            out.append(Matcher.make(name, op, str(item.get("value", ""))))
        except MatcherError as exc:
            raise SilenceError(str(exc)) from None
    return tuple(out)


def new_silence(
    matchers: tuple[Matcher, ...],
    starts_at: float,
    ends_at: float,
    created_by: str,
    comment: str,
    now: float,
) -> Silence:
    """Returns: a checked new silence (a start in the past begins now). Raises: SilenceError."""
    starts_at = max(starts_at, now)
    check_new(matchers, starts_at, ends_at)
    if not comment.strip():
        raise SilenceError("a silence needs a comment")
    return Silence(str(uuid.uuid4()), matchers, starts_at, ends_at, created_by, comment, now)


class SilenceStore:
    """The ``silences`` table."""

    def __init__(self, engine: Engine, writer: Writer, clock: Callable[[], float]) -> None:
        self._engine = engine
        self._writer = writer
        self._clock = clock

    def add(self, silence: Silence) -> Silence:
        row = _row(silence)
        self._writer.submit(lambda conn: conn.execute(insert(_table).values(**row)))
        return silence

    def get(self, silence_id: str) -> Silence:
        with self._engine.connect() as conn:
            found = conn.execute(select(_table).where(_table.c.silence_id == silence_id)).first()
        if found is None:
            raise SilenceNotFoundError(silence_id)
        return _silence(found._mapping)

    def all(self) -> list[Silence]:
        """Returns: every silence kept (expired ones for ``KEEP_EXPIRED_S``), newest first."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(_table).order_by(_table.c.updated_at.desc())).all()
        return [_silence(row._mapping) for row in rows]

    def active(self) -> list[Silence]:
        """Returns: the silences in force now (the notifier's view)."""
        now = self._clock()
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(_table).where(_table.c.starts_at <= now, _table.c.ends_at > now)
            ).all()
        return [_silence(row._mapping) for row in rows]

    def expire(self, silence_id: str) -> Silence:
        """Returns: the silence, ended now. Raises: SilenceNotFoundError."""
        ended = self.get(silence_id).expired(self._clock())

        def job(conn: Connection) -> None:
            conn.execute(
                update(_table)
                .where(_table.c.silence_id == silence_id)
                .values(
                    starts_at=ended.starts_at, ends_at=ended.ends_at, updated_at=ended.updated_at
                )
            )

        self._writer.submit(job)
        return ended

    def gc(self) -> int:
        """Delete silences expired longer than ``KEEP_EXPIRED_S`` ago; returns how many."""
        cutoff = self._clock() - KEEP_EXPIRED_S
        return int(
            self._writer.submit(
                lambda conn: conn.execute(delete(_table).where(_table.c.ends_at < cutoff)).rowcount
            )
        )


class MemorySilences:
    """Silences in memory, with ``SilenceStore``'s methods."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._items: dict[str, Silence] = {}
        self._lock = threading.Lock()

    def add(self, silence: Silence) -> Silence:
        with self._lock:
            self._items[silence.silence_id] = silence
        return silence

    def get(self, silence_id: str) -> Silence:
        with self._lock:
            if silence_id not in self._items:
                raise SilenceNotFoundError(silence_id)
            return self._items[silence_id]

    def all(self) -> list[Silence]:
        with self._lock:
            return sorted(self._items.values(), key=lambda s: -s.updated_at)

    def active(self) -> list[Silence]:
        now = self._clock()
        return [s for s in self.all() if s.state(now) == "active"]

    def expire(self, silence_id: str) -> Silence:
        ended = self.get(silence_id).expired(self._clock())
        return self.add(ended)


def _row(silence: Silence) -> dict[str, object]:
    return {
        "silence_id": silence.silence_id,
        "matchers": matchers_to_api(silence.matchers),
        "starts_at": silence.starts_at,
        "ends_at": silence.ends_at,
        "created_by": silence.created_by,
        "comment": silence.comment,
        "updated_at": silence.updated_at,
    }


def _silence(row: Any) -> Silence:
    return Silence(
        silence_id=row["silence_id"],
        matchers=matchers_from_api(row["matchers"]),
        starts_at=float(row["starts_at"]),
        ends_at=float(row["ends_at"]),
        created_by=row["created_by"],
        comment=row["comment"],
        updated_at=float(row["updated_at"]),
    )
