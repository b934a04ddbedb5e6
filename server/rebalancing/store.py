"""Hints in the database: each round's hints synced in, operators' decisions, reads.

Stage: rebalancing service and API -> storage. Writes go through the single database writer;
a round's sync is one job, so one transaction: the hints it produced are added or refreshed,
the open ones it did not produce count a missed round, and those past ``expire_rounds`` rounds
or ``ttl_s`` seconds are expired, all or nothing. A produced hint keeps its id and its state
(the rules are in ``model.py``). An operator's change is one conditional job too; refusals are
returned by the job and raised after the commit (raising inside would roll back the other jobs
of its group commit and run each again alone).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Connection, Engine, Table, exists, insert, select, update

from server.hints.hint import Hint
from server.rebalancing.model import (
    ENGINE,
    OPEN_STATES,
    SETTABLE_STATES,
    HintError,
    HintFilter,
    HintNotFoundError,
    HintState,
    HintStateError,
    StoredHint,
    Synced,
)
from server.rebalancing.tables import HintRefRow, HintRow
from server.storage.writer import Writer

_hints: Table = HintRow.__table__  # type: ignore[assignment]
_refs: Table = HintRefRow.__table__  # type: ignore[assignment]
_OPEN = sorted(s.value for s in OPEN_STATES)
MAX_NOTE_CHARS = 2000


@dataclass(frozen=True)
class Lifecycle:
    """When hints expire and when ended ones come back (the ``hints_*`` settings)."""

    expire_rounds: int = 3
    ttl_s: float = 3600.0
    dismiss_s: float = 7 * 86400.0
    applied_s: float = 3600.0


class HintStore:
    """The ``hints`` and ``hint_refs`` tables."""

    def __init__(self, engine: Engine, writer: Writer, clock: Callable[[], float]) -> None:
        self._engine = engine
        self._writer = writer
        self._clock = clock

    # -- the rounds -----------------------------------------------------------------------

    def sync(self, hints: Sequence[Hint], now: float, rules: Lifecycle) -> Synced:
        """Store one round's hints at ``now``; returns what changed."""
        produced = {hint.id: hint for hint in hints}

        def job(conn: Connection) -> Synced:
            ids = sorted(produced)
            known = {
                row.id: row
                for row in conn.execute(
                    select(_hints.c.id, _hints.c.state, _hints.c.state_changed_at).where(
                        _hints.c.id.in_(ids)
                    )
                )
            }
            added = refreshed = reopened = 0
            for hint_id in ids:
                hint = produced[hint_id]
                row = known.get(hint_id)
                if row is None:
                    conn.execute(insert(_hints), _new_row(hint, now))
                    refs = _refs_of(hint)
                    if refs:
                        conn.execute(insert(_refs), refs)
                    added += 1
                    continue
                values = {**_content(hint), "last_seen": now, "missed_rounds": 0}
                if _comes_back(HintState(row.state), now - row.state_changed_at, rules):
                    values.update(
                        state=HintState.NEW.value, state_changed_at=now, state_changed_by=ENGINE
                    )
                    reopened += 1
                else:
                    refreshed += 1
                conn.execute(update(_hints).where(_hints.c.id == hint_id).values(**values))
            conn.execute(
                update(_hints)
                .where(_hints.c.state.in_(_OPEN), _hints.c.id.not_in(ids))
                .values(missed_rounds=_hints.c.missed_rounds + 1)
            )
            expired = _expire(conn, now, rules.ttl_s, rules.expire_rounds)
            return Synced(added, refreshed, reopened, expired)

        return self._writer.submit(job)

    def expire_stale(self, ttl_s: float) -> int:
        """Expire the open hints no round produced for ``ttl_s`` seconds; returns how many.
        Looks first (a read) and writes only when one is due."""
        now = self._clock()
        with self._engine.connect() as conn:
            due = conn.execute(
                select(exists().where(_hints.c.state.in_(_OPEN), _hints.c.last_seen < now - ttl_s))
            ).scalar()
        if not due:
            return 0
        return self._writer.submit(lambda conn: _expire(conn, now, ttl_s, None))

    # -- operators ------------------------------------------------------------------------

    def set_state(self, hint_id: str, state: HintState, by: str, note: str = "") -> StoredHint:
        """An operator's or scheduler's decision on an open (or ended, not expired) hint.

        Raises:
            HintNotFoundError: no such hint.
            HintStateError: ``state`` is not one a caller may set, or the hint has expired
                (the advice no longer holds; a round that produces it again opens it anew).
        """
        if state not in SETTABLE_STATES:
            allowed = ", ".join(sorted(s.value for s in SETTABLE_STATES))
            raise HintStateError(f"a hint's state can be set to {allowed}, not {state.value}")
        now = self._clock()

        def job(conn: Connection) -> StoredHint | HintError:
            current = _find(conn, hint_id)
            if isinstance(current, HintError):
                return current
            if current.state is HintState.EXPIRED:
                return HintStateError(
                    f"hint {hint_id} has expired: no round produced it since "
                    f"{current.last_seen:.0f}; it opens again if a round produces it"
                )
            values: dict[str, Any] = {"note": note[:MAX_NOTE_CHARS]}
            if current.state is not state:
                values.update(state=state.value, state_changed_at=now, state_changed_by=by[:64])
            changed = conn.execute(
                update(_hints)
                .where(_hints.c.id == hint_id, _hints.c.state == current.state.value)
                .values(**values)
            )
            if changed.rowcount != 1:  # a round changed it meanwhile
                return HintStateError(f"hint {hint_id} changed meanwhile; read it and try again")
            return _get(conn, hint_id)

        outcome = self._writer.submit(job)
        if isinstance(outcome, HintError):
            raise outcome
        return outcome

    # -- reads ----------------------------------------------------------------------------

    def get(self, hint_id: str) -> StoredHint:
        """Raises: HintNotFoundError."""
        with self._engine.connect() as conn:
            return _get(conn, hint_id)

    def find(self, where: HintFilter) -> list[StoredHint]:
        """Returns: the hints ``where`` asks for, most certain and largest gain first."""
        states = where.states or OPEN_STATES
        query = select(_hints).where(_hints.c.state.in_(sorted(s.value for s in states)))
        if where.kind is not None:
            query = query.where(_hints.c.kind == where.kind)
        for ref_kind, name in (("node", where.node), ("pod", where.pod)):
            if name is not None:
                query = query.where(
                    exists().where(
                        _refs.c.hint_id == _hints.c.id,
                        _refs.c.ref_kind == ref_kind,
                        _refs.c.name == name,
                    )
                )
        for column, bound in (
            (_hints.c.gain_gpus, where.min_gpus),
            (_hints.c.gain_gpu_hours, where.min_gpu_hours),
            (_hints.c.gain_watts, where.min_watts),
        ):
            if bound is not None:
                query = query.where(column >= bound)
        query = query.order_by(
            _hints.c.confidence.desc(),
            _hints.c.gain_gpus.desc(),
            _hints.c.gain_gpu_hours.desc(),
            _hints.c.gain_watts.desc(),
            _hints.c.id,
        ).limit(where.limit)
        with self._engine.connect() as conn:
            return [_stored(row._mapping) for row in conn.execute(query)]

    def open_hints(self) -> list[StoredHint]:
        """Returns: every open hint (new or acknowledged), in id order."""
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(_hints).where(_hints.c.state.in_(_OPEN)).order_by(_hints.c.id)
            )
            return [_stored(row._mapping) for row in rows]


def _comes_back(state: HintState, since_change_s: float, rules: Lifecycle) -> bool:
    """Returns: whether a hint in ``state``, produced again, is shown as new again."""
    if state is HintState.EXPIRED:
        return True
    if state is HintState.DISMISSED:
        return since_change_s >= rules.dismiss_s
    if state is HintState.APPLIED:
        return since_change_s >= rules.applied_s
    return False


def _expire(conn: Connection, now: float, ttl_s: float, expire_rounds: int | None) -> int:
    """Expire open hints missed ``expire_rounds`` rounds in a row or unseen for ``ttl_s``."""
    due = _hints.c.last_seen < now - ttl_s
    if expire_rounds is not None:
        due = due | (_hints.c.missed_rounds >= expire_rounds)
    done = conn.execute(
        update(_hints)
        .where(_hints.c.state.in_(_OPEN), due)
        .values(state=HintState.EXPIRED.value, state_changed_at=now, state_changed_by=ENGINE)
    )
    return int(done.rowcount)


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _content(hint: Hint) -> dict[str, Any]:
    """The columns a round refreshes: what the engine says about the hint now."""
    return {
        "evidence": [
            {**asdict(e), "value": _finite(e.value), "window_s": _finite(e.window_s)}
            for e in hint.evidence
        ],
        "gain_gpus": hint.gain.gpus_usable,
        "gain_gpu_hours": hint.gain.gpu_hours,
        "gain_watts": hint.gain.watts,
        "cost_moves": hint.cost.moves,
        "cost_restart_s": hint.cost.restart_s,
        "confidence": hint.confidence,
        "reason": hint.reason,
    }


def _new_row(hint: Hint, now: float) -> dict[str, Any]:
    return {
        "id": hint.id,
        "kind": hint.kind.value,
        "node": hint.subject.node,
        "gpu": hint.subject.gpu,
        "pod": hint.subject.pod,
        "remedy": hint.remedy.value,
        "actions": [
            {
                "pod": m.pod,
                "from_node": m.from_node,
                "from_gpus": list(m.from_gpus),
                "to_node": m.to_node,
                "to_gpus": list(m.to_gpus),
            }
            for m in hint.actions
        ],
        **_content(hint),
        "first_seen": now,
        "last_seen": now,
        "missed_rounds": 0,
        "state": HintState.NEW.value,
        "state_changed_at": now,
        "state_changed_by": ENGINE,
        "note": "",
    }


def _refs_of(hint: Hint) -> list[dict[str, str]]:
    nodes = {hint.subject.node} | {m.from_node for m in hint.actions}
    nodes |= {m.to_node for m in hint.actions}
    pods = {hint.subject.pod} | {m.pod for m in hint.actions}
    return [
        {"hint_id": hint.id, "ref_kind": ref_kind, "name": name}
        for ref_kind, names in (("node", nodes), ("pod", pods))
        for name in sorted(n for n in names if n is not None)
    ]


def _find(conn: Connection, hint_id: str) -> StoredHint | HintNotFoundError:
    row = conn.execute(select(_hints).where(_hints.c.id == hint_id)).first()
    if row is None:
        return HintNotFoundError(f"no hint {hint_id!r}")
    return _stored(row._mapping)


def _get(conn: Connection, hint_id: str) -> StoredHint:
    found = _find(conn, hint_id)
    if isinstance(found, HintNotFoundError):
        raise found
    return found


def _stored(row: Any) -> StoredHint:
    return StoredHint(
        id=row["id"],
        kind=row["kind"],
        node=row["node"],
        gpu=row["gpu"],
        pod=row["pod"],
        remedy=row["remedy"],
        actions=tuple(dict(a) for a in row["actions"]),
        evidence=tuple(dict(e) for e in row["evidence"]),
        gain_gpus=float(row["gain_gpus"]),
        gain_gpu_hours=float(row["gain_gpu_hours"]),
        gain_watts=float(row["gain_watts"]),
        cost_moves=int(row["cost_moves"]),
        cost_restart_s=float(row["cost_restart_s"]),
        confidence=float(row["confidence"]),
        reason=row["reason"],
        first_seen=float(row["first_seen"]),
        last_seen=float(row["last_seen"]),
        missed_rounds=int(row["missed_rounds"]),
        state=HintState(row["state"]),
        state_changed_at=float(row["state_changed_at"]),
        state_changed_by=row["state_changed_by"],
        note=row["note"],
    )
