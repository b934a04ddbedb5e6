"""The three statements every batch runs, written for the driver.

Stage: ingest -> storage, inside a batch's unit of work on the writer (``store.py``,
``batch_rows.py``). A steady node's batch is one UPDATE of its node row, one INSERT of its
idempotency record and one INSERT of its head row. Through SQLAlchemy's compiled statements
each cost 100-200 us of the writer's time (building or looking up the statement, binding through
the column types, result processing), most of a compact batch's write; here each is one
``exec_driver_sql`` of fixed text with positional parameters, still inside SQLAlchemy's
connection, so its transaction, events and error mapping (``errors.as_unavailable``) are the
same. Only placeholders differ between the dialects (``?`` for SQLite, ``%s`` for psycopg);
every value travels as a parameter.

The node row's ``labels`` column is JSON: written here as its JSON text (what SQLAlchemy's JSON
type writes, and reads back the same way on both databases).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from functools import cache

from sqlalchemy import Connection


@cache
def _statements(paramstyle: str) -> tuple[str, str, str, str]:
    mark = "?" if paramstyle == "qmark" else "%s"

    def marks(count: int) -> str:
        return ",".join([mark] * count)

    # Only placeholders are formatted in: every value travels as a parameter.
    head = (
        f"INSERT INTO head_chunks (node_pk, ts_ms, n, payload) VALUES ({marks(4)}) "  # noqa: S608
        "ON CONFLICT DO NOTHING RETURNING node_pk"
    )
    record = (
        f"INSERT INTO ingested_batches (node_pk, seq, batch_ts, received_at) VALUES ({marks(4)}) "  # noqa: S608
        "ON CONFLICT DO NOTHING RETURNING node_pk"
    )
    node = (
        f"UPDATE nodes SET name = {mark}, hostname = {mark}, labels = {mark}, "  # noqa: S608
        f"interval_seconds = {mark}, last_push = {mark}, "
        f"last_batch_ts = CASE WHEN last_batch_ts < {mark} THEN {mark} ELSE last_batch_ts END, "
        f"last_seq = CASE WHEN last_seq < {mark} THEN {mark} ELSE last_seq END "
        f"WHERE node_id = {mark} RETURNING id"
    )
    push = (
        f"UPDATE nodes SET last_push = {mark}, "  # noqa: S608
        f"last_batch_ts = CASE WHEN last_batch_ts < {mark} THEN {mark} ELSE last_batch_ts END, "
        f"last_seq = CASE WHEN last_seq < {mark} THEN {mark} ELSE last_seq END "
        f"WHERE node_id = {mark} RETURNING id"
    )
    return head, record, node, push


def insert_head(conn: Connection, node_pk: int, ts_ms: int, n: int, payload: bytes) -> bool:
    """INSERT the head row unless the node has one at ``ts_ms``; returns whether it did."""
    statement = _statements(conn.dialect.paramstyle)[0]
    return conn.exec_driver_sql(statement, (node_pk, ts_ms, n, payload)).first() is not None


def insert_batch_record(
    conn: Connection, node_pk: int, seq: int, batch_ts: float, received_at: float
) -> bool:
    """INSERT the batch's idempotency record unless (node, seq) has one; returns whether it
    did."""
    statement = _statements(conn.dialect.paramstyle)[1]
    return (
        conn.exec_driver_sql(statement, (node_pk, seq, batch_ts, received_at)).first() is not None
    )


def update_node(
    conn: Connection,
    node_id: str,
    *,
    name: str,
    hostname: str,
    labels: Mapping[str, str],
    interval_seconds: float,
    last_push: float,
    batch_ts: float,
    seq: int,
    unchanged: bool = False,
) -> int | None:
    """UPDATE a known node's row for a push without inventory (``last_batch_ts`` and
    ``last_seq`` only move forward); returns its pk, or None for a node not stored yet.

    ``unchanged``: the caller knows the row already holds this name, hostname, labels and
    interval (it wrote them last), so only the push's columns are set: the indexed name
    column is not rewritten (SQLite rewrites the index entry of every column it sets)."""
    if unchanged:
        push = _statements(conn.dialect.paramstyle)[3]
        pushed = (last_push, batch_ts, batch_ts, seq, seq, node_id)
        pk = conn.exec_driver_sql(push, pushed).scalar()
        return None if pk is None else int(pk)
    statement = _statements(conn.dialect.paramstyle)[2]
    parameters = (
        name,
        hostname,
        json.dumps(dict(labels)),
        interval_seconds,
        last_push,
        batch_ts,
        batch_ts,
        seq,
        seq,
        node_id,
    )
    pk = conn.exec_driver_sql(statement, parameters).scalar()
    return None if pk is None else int(pk)
