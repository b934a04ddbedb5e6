"""Benchmark requests in the database: create, list, cancel, report, expire.

Stage: bench API and ingest -> storage. Writes go through the single database writer, each a
conditional UPDATE (or an INSERT that a unique key may refuse), so several server replicas on
one PostgreSQL can take requests, reports and expiries for the same node at once: the database
decides, never a process's memory. One open request per node is the unique key on
``open_node_id`` (``tables.py``); a report or cancel is applied only while the request is
still open (``open_node_id IS NOT NULL``); expiry is one UPDATE over the rows past their
``deadline_at``, idempotent, run by whoever gets there first (a read, the order cache, the
maintenance leader).

Reports: a report is taken while the request is open, except that a request still pending or
waiting past its ``expires_at`` may no longer start: a waiting or running report on it marks it
expired and is refused. A final report (done, failed, refused, cancelled) closes the request;
its result tree is stored in the same transaction (``results.store_run``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Engine, Table, exists, select, update

from agent.wire.bench import FINAL_STATES as REPORTED_FINAL
from agent.wire.bench import BenchReport, BenchRun
from server.alerting.pseudo_nodes import is_server_side
from server.bench.model import (
    NOT_STARTED,
    BenchError,
    BenchRequest,
    Created,
    InvalidBenchRequestError,
    NewRequest,
    NotYourRequestError,
    RequestClosedError,
    RequestNotFoundError,
    Skipped,
    silence_bound_seconds,
)
from server.bench.tables import BenchRequestRow
from server.remote_write.mapping import node_id_of
from server.storage.inserts import insert_ignore
from server.storage.tables import NodeRow
from server.storage.writer import Writer

_requests: Table = BenchRequestRow.__table__  # type: ignore[assignment]
_nodes: Table = NodeRow.__table__  # type: ignore[assignment]

StoreRun = Callable[[Connection, BenchRequest, BenchRun, float], object]
"""Stores a final report's run in the report's transaction (``results.store_run``)."""
MAX_NODES_PER_REQUEST = 10_000
NOT_STARTED_EXPIRED = "expired: the agent did not start it before its expires_at"
SILENT_EXPIRED = (
    "expired: no report from the agent within the level's silence bound "
    "(the agent stopped or died mid-run)"
)


class RequestStore:
    """The ``bench_requests`` table."""

    def __init__(self, engine: Engine, writer: Writer, clock: Callable[[], float]) -> None:
        self._engine = engine
        self._writer = writer
        self._clock = clock

    # -- admin ---------------------------------------------------------------------------

    def create(
        self,
        new: NewRequest,
        names: Sequence[str] | None = None,
        selector: Mapping[str, str] | None = None,
    ) -> Created:
        """One request per node named (by name or node id) or matched by every label of
        ``selector``; a node with an open request is skipped with the reason.

        Raises:
            InvalidBenchRequestError: neither or both of names and selector, a name no agent
                node has, or nothing matched.
        """
        targets = self._resolve(names, selector)
        now = self._clock()

        def job(conn: Connection) -> Created:
            expire(conn, now)
            created, skipped = [], []
            for node_id, name in targets:
                request_id = uuid.uuid4().hex
                values = _new_row(request_id, node_id, name, new, now)
                inserted = conn.execute(
                    insert_ignore(conn, _requests).returning(_requests.c.request_id), values
                ).first()
                if inserted is not None:
                    created.append(_request(values))
                    continue
                holder = conn.execute(
                    select(_requests.c.request_id, _requests.c.state).where(
                        _requests.c.open_node_id == node_id
                    )
                ).first()
                reason = "the node already has an open benchmark request (one at a time)"
                if holder is not None:
                    reason = f"{reason}: {holder.request_id} is {holder.state}"
                skipped.append(
                    Skipped(name, node_id, reason, None if holder is None else holder.request_id)
                )
            return Created(tuple(created), tuple(skipped))

        return self._writer.submit(job)

    def cancel(self, request_id: str, by: str) -> BenchRequest:
        """Cancel at once if the agent has not taken it, else ask the agent to stop.

        Raises: RequestNotFoundError, RequestClosedError (already final or expired).
        """
        now = self._clock()

        def job(conn: Connection) -> BenchRequest | BenchError:
            expire(conn, now)
            current = _find(conn, request_id)
            if isinstance(current, BenchError):
                return current
            if not current.is_open:
                return _closed(current)
            where = (_requests.c.request_id == request_id) & _requests.c.open_node_id.is_not(None)
            if current.state == "pending":
                done = conn.execute(
                    update(_requests)
                    .where(where & (_requests.c.state == "pending"))
                    .values(
                        state="cancelled",
                        open_node_id=None,
                        finished_at=now,
                        updated_at=now,
                        cancel_requested=True,
                        message=f"cancelled by {by} before the agent took it",
                    )
                )
                if done.rowcount == 1:
                    return _get(conn, request_id)
            asked = conn.execute(
                update(_requests)
                .where(where)
                .values(cancel_requested=True, updated_at=now, message=f"cancel asked by {by}")
            )
            if asked.rowcount != 1:
                return _closed(_get(conn, request_id))
            return _get(conn, request_id)

        return _raised(self._writer.submit(job))

    # -- the agent ------------------------------------------------------------------------

    def report(
        self, request_id: str, node_id: str | None, report: BenchReport, store_run: StoreRun
    ) -> BenchRequest:
        """Apply the agent's report; a final one closes the request and stores its result.

        Raises:
            RequestNotFoundError: no such request.
            NotYourRequestError: the request belongs to another node.
            RequestClosedError: it is already final or expired, or it could no longer start.
        """
        now = self._clock()

        def job(conn: Connection) -> BenchRequest | BenchError:
            current = _find(conn, request_id)
            if isinstance(current, BenchError):
                return current
            if node_id is not None and current.node_id != node_id:
                return NotYourRequestError(
                    f"request {request_id} is for node {current.node_name}, not this node"
                )
            if not current.is_open:
                return _closed(current)
            starts = report.state in ("waiting", "running")
            if starts and current.state in NOT_STARTED and now > current.expires_at:
                expire(conn, now)
                return _closed(_get(conn, request_id))
            values = _report_values(current, report, now)
            changed = conn.execute(
                update(_requests)
                .where(
                    (_requests.c.request_id == request_id) & _requests.c.open_node_id.is_not(None)
                )
                .values(**values)
            )
            if changed.rowcount != 1:  # closed meanwhile by another replica
                return _closed(_get(conn, request_id))
            updated = _get(conn, request_id)
            if report.state in REPORTED_FINAL and report.result is not None:
                store_run(conn, updated, report.result, now)
            return updated

        return _raised(self._writer.submit(job))

    # -- reads ----------------------------------------------------------------------------

    def get(self, request_id: str) -> BenchRequest:
        """Raises: RequestNotFoundError."""
        self.expire_due()
        with self._engine.connect() as conn:
            return _get(conn, request_id)

    def recent(
        self, node: str | None = None, state: str | None = None, limit: int = 100
    ) -> list[BenchRequest]:
        """Returns: requests, newest first, of one node (name or node id) and state if given."""
        self.expire_due()
        query = select(_requests).order_by(_requests.c.created_at.desc()).limit(limit)
        if node is not None:
            query = query.where((_requests.c.node_name == node) | (_requests.c.node_id == node))
        if state is not None:
            query = query.where(_requests.c.state == state)
        with self._engine.connect() as conn:
            return [_request(row._mapping) for row in conn.execute(query)]

    def open_requests(self) -> list[BenchRequest]:
        """Returns: every open request (at most one per node), as stored."""
        with self._engine.connect() as conn:
            rows = conn.execute(select(_requests).where(_requests.c.open_node_id.is_not(None)))
            return [_request(row._mapping) for row in rows]

    # -- expiry ---------------------------------------------------------------------------

    def expire_due(self) -> int:
        """Mark the open requests past their deadline expired; returns how many. Looks first
        (a read) and writes only when one is due."""
        now = self._clock()
        with self._engine.connect() as conn:
            due = conn.execute(
                select(
                    exists().where(
                        _requests.c.open_node_id.is_not(None), _requests.c.deadline_at < now
                    )
                )
            ).scalar()
        if not due:
            return 0
        return self._writer.submit(lambda conn: expire(conn, now))

    def expire_later(self, now: float) -> None:
        """Queue the expiry without waiting for it (the order cache, on the ingest path)."""
        self._writer.enqueue(lambda conn: expire(conn, now))

    def _resolve(
        self, names: Sequence[str] | None, selector: Mapping[str, str] | None
    ) -> list[tuple[str, str]]:
        """Returns: (node id, name) of each agent node asked for, in the order asked."""
        if (names is None) == (selector is None):
            raise InvalidBenchRequestError("give either nodes (names) or a label selector")
        with self._engine.connect() as conn:
            rows = conn.execute(
                select(_nodes.c.node_id, _nodes.c.name, _nodes.c.labels, _nodes.c.last_push)
            ).all()
        agents = [
            row
            for row in rows
            if not is_server_side(row.node_id, row.name) and row.node_id != node_id_of(row.name)
        ]
        if names is not None:
            return _by_name(agents, names)
        assert selector is not None
        matched = sorted(
            {
                row.name: row
                for row in sorted(agents, key=lambda r: r.last_push)
                if all((row.labels or {}).get(k) == v for k, v in selector.items())
            }.values(),
            key=lambda r: r.name,
        )
        if not matched:
            wanted = ", ".join(f"{k}={v}" for k, v in sorted(selector.items()))
            raise InvalidBenchRequestError(f"no agent node has every label of {{{wanted}}}")
        return [(row.node_id, row.name) for row in matched[:MAX_NODES_PER_REQUEST]]


def expire(conn: Connection, now: float) -> int:
    """Mark every open request past its deadline expired (in ``conn``'s transaction)."""
    base = _requests.c.open_node_id.is_not(None) & (_requests.c.deadline_at < now)
    done = {"state": "expired", "open_node_id": None, "finished_at": now, "updated_at": now}
    waiting = conn.execute(
        update(_requests)
        .where(base & _requests.c.state.in_(sorted(NOT_STARTED)))
        .values(**done, message=NOT_STARTED_EXPIRED)
    ).rowcount
    silent = conn.execute(
        update(_requests)
        .where(base & (_requests.c.state == "running"))
        .values(**done, message=SILENT_EXPIRED)
    ).rowcount
    return int(waiting) + int(silent)


def _by_name(agents: Sequence[Any], names: Sequence[str]) -> list[tuple[str, str]]:
    newest: dict[str, Any] = {}
    for row in sorted(agents, key=lambda r: r.last_push):
        newest[row.name] = row
        newest[row.node_id] = row
    unknown = [name for name in dict.fromkeys(names) if name not in newest]
    if unknown:
        raise InvalidBenchRequestError(
            f"no agent node named {', '.join(repr(n) for n in unknown[:10])}"
            + (f" and {len(unknown) - 10} more" if len(unknown) > 10 else ""),
            tuple((f"nodes.{names.index(n)}", "unknown node") for n in unknown[:10]),
        )
    seen: dict[str, tuple[str, str]] = {}
    for name in names:
        row = newest[name]
        seen.setdefault(row.node_id, (row.node_id, row.name))
    return list(seen.values())


def _new_row(
    request_id: str, node_id: str, name: str, new: NewRequest, now: float
) -> dict[str, Any]:
    expires_at = now + new.expires_in_s
    return {
        "request_id": request_id,
        "node_id": node_id,
        "node_name": name,
        "open_node_id": node_id,
        "state": "pending",
        "level": new.level,
        "gpus": list(new.gpus) if new.gpus is not None else None,
        "duration_s": new.duration_s,
        "force": new.force,
        "created_at": now,
        "created_by": new.created_by[:64],
        "expires_at": expires_at,
        "deadline_at": expires_at,
        "updated_at": now,
        "started_at": None,
        "last_report_at": None,
        "finished_at": None,
        "cancel_requested": False,
        "message": "",
        "progress": None,
    }


def _report_values(current: BenchRequest, report: BenchReport, now: float) -> dict[str, Any]:
    values: dict[str, Any] = {
        "state": report.state,
        "updated_at": now,
        "last_report_at": now,
        "message": report.message,
    }
    if report.progress is not None:
        values["progress"] = report.progress.model_dump(mode="json")
    if report.state == "waiting":
        values["deadline_at"] = current.expires_at
    elif report.state == "running":
        values["started_at"] = current.started_at if current.started_at is not None else now
        devices = len(current.gpus) if current.gpus is not None else None
        bound = silence_bound_seconds(current.level, current.duration_s, devices)
        values["deadline_at"] = now + bound
    else:  # final
        values.update(open_node_id=None, finished_at=now, deadline_at=now)
    return values


def _find(conn: Connection, request_id: str) -> BenchRequest | RequestNotFoundError:
    row = conn.execute(select(_requests).where(_requests.c.request_id == request_id)).first()
    if row is None:
        return RequestNotFoundError(f"no benchmark request {request_id!r}")
    return _request(row._mapping)


def _get(conn: Connection, request_id: str) -> BenchRequest:
    """Raises: RequestNotFoundError."""
    found = _find(conn, request_id)
    if isinstance(found, RequestNotFoundError):
        raise found
    return found


def _raised(outcome: BenchRequest | BenchError) -> BenchRequest:
    """Writer jobs return their refusals (raising would roll back their group's other jobs
    and run each again alone); they are raised here, after the commit."""
    if isinstance(outcome, BenchError):
        raise outcome
    return outcome


def _closed(request: BenchRequest) -> RequestClosedError:
    why = f": {request.message}" if request.message else ""
    return RequestClosedError(
        f"request {request.request_id} is already {request.state}{why}", request.state
    )


def _request(row: Any) -> BenchRequest:
    gpus = row["gpus"]
    return BenchRequest(
        request_id=row["request_id"],
        node_id=row["node_id"],
        node_name=row["node_name"],
        state=row["state"],
        level=row["level"],
        gpus=tuple(int(g) for g in gpus) if gpus is not None else None,
        duration_s=row["duration_s"],
        force=bool(row["force"]),
        created_at=float(row["created_at"]),
        created_by=row["created_by"],
        expires_at=float(row["expires_at"]),
        deadline_at=float(row["deadline_at"]),
        updated_at=float(row["updated_at"]),
        started_at=row["started_at"],
        last_report_at=row["last_report_at"],
        finished_at=row["finished_at"],
        cancel_requested=bool(row["cancel_requested"]),
        message=row["message"],
        progress=dict(row["progress"]) if row["progress"] is not None else None,
    )
