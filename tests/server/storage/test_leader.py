"""Maintenance leadership: one replica leads, and another takes over when its session ends.

The advisory lock runs on a real PostgreSQL; the replica-level tests run two applications on one
database (real lock on PostgreSQL, the in-memory twin on SQLite) and call ``run_maintenance``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from server.app import create_app, run_maintenance
from server.settings import ServerSettings
from server.storage.leader import (
    AdvisoryLockLeader,
    InMemoryLeader,
    Leadership,
    LockTable,
    SoleLeader,
    leadership_for,
)
from server.tokens import sha256_hex
from tests.server.conftest import TOKEN, FakeClock
from tests.server.storage.helpers import push_stream, services, stream


def _terminate_lock_holder(url: str) -> int:
    """Ends the session holding an advisory lock, as a dead connection would; returns its pid."""
    parsed = make_url(url)
    with psycopg.connect(
        host=parsed.host, port=parsed.port, user=parsed.username, dbname="postgres", autocommit=True
    ) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND database ="
            " (SELECT oid FROM pg_database WHERE datname = %s)",
            (parsed.database,),
        ).fetchone()
        assert row is not None, "nobody holds the lock"
        conn.execute("SELECT pg_terminate_backend(%s, 5000)", (row[0],))
        return int(row[0])


def _takes_over(leader: Leadership, timeout_s: float = 5.0) -> bool:
    """A closed session's backend exits a moment after the client leaves: check until then."""
    deadline = time.monotonic() + timeout_s
    while not leader.check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def two_locks(postgres_url: str) -> Iterator[tuple[AdvisoryLockLeader, AdvisoryLockLeader]]:
    url = make_url(postgres_url)
    first, second = AdvisoryLockLeader(url), AdvisoryLockLeader(url)
    try:
        yield first, second
    finally:
        first.close()
        second.close()


def test_one_session_leads_and_the_other_takes_over_when_it_closes(
    two_locks: tuple[AdvisoryLockLeader, AdvisoryLockLeader],
) -> None:
    first, second = two_locks
    assert first.check() is True
    assert second.check() is False
    assert (first.check(), second.check()) == (True, False), "leadership is kept between checks"
    assert (first.is_leader, second.is_leader) == (True, False)
    first.close()
    assert _takes_over(second)
    assert first.check() is False, "a closed leader comes back as a follower"


def test_a_killed_lock_session_is_lost_leadership_and_fails_over(
    two_locks: tuple[AdvisoryLockLeader, AdvisoryLockLeader], postgres_url: str
) -> None:
    first, second = two_locks
    assert first.check() and not second.check()
    _terminate_lock_holder(postgres_url)
    assert second.check() is True, "the lock went with the session"
    assert first.check() is False, "the old leader notices its connection is gone"
    assert first.check() is False, "and reconnects as a follower"
    assert second.check() is True


def test_the_lock_is_per_database(postgres_server: Any, postgres_url: str) -> None:
    name = f"dcmon_leader_other_site_{uuid.uuid4().hex[:8]}"
    other = postgres_server.create_database(name)
    try:
        here = AdvisoryLockLeader(make_url(postgres_url))
        there = AdvisoryLockLeader(make_url(other))
        try:
            assert here.check() and there.check(), "two sites on one cluster each have a leader"
        finally:
            here.close()
            there.close()
    finally:
        postgres_server.drop_database(name)


def test_sqlite_is_led_by_its_only_process(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        leader = leadership_for(engine)
        assert isinstance(leader, SoleLeader)
        assert leader.check() and leader.is_leader
        assert not leader.shared, "nobody else creates series: no index reloads"
    finally:
        engine.dispose()


def test_in_memory_twin_behaves_like_the_lock() -> None:
    table = LockTable()
    first, second = InMemoryLeader(table), InMemoryLeader(table)
    assert (first.check(), second.check()) == (True, False)
    first.lose_session()
    assert first.is_leader, "a lost session is noticed at the next check, not before"
    assert (second.check(), first.check(), first.check()) == (True, False, False)
    second.close()
    assert first.check() is True


# -- replicas ---------------------------------------------------------------------------------

INTERVAL = 60.0


@contextmanager
def replica(
    data_dir: Path, database_url: str, clock: FakeClock, leader: Leadership
) -> Iterator[tuple[FastAPI, TestClient]]:
    """One server application on the shared database; maintenance only when called."""
    settings = ServerSettings(
        data_dir=data_dir,
        database_url=database_url,
        ingest_token_sha256=[sha256_hex(TOKEN)],
        maintenance_interval_seconds=3600,
        open_reads=True,
    )
    with TestClient(create_app(settings, clock=clock, leader=leader)) as client:
        yield client.app, client  # type: ignore[misc]


def _head_rows(app: Any) -> int:
    with services(app).store.engine.connect() as conn:
        count: int = conn.exec_driver_sql("SELECT count(*) FROM head_chunks").scalar_one()
        return count


def _leaders(database_url: str) -> tuple[Leadership, Leadership]:
    if database_url.startswith("sqlite"):
        table = LockTable()
        return InMemoryLeader(table), InMemoryLeader(table)
    return AdvisoryLockLeader(make_url(database_url)), AdvisoryLockLeader(make_url(database_url))


def test_only_the_leader_replica_runs_maintenance_and_another_takes_over(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    first_leader, second_leader = _leaders(database_url)
    with ExitStack() as stack:
        first, first_client = stack.enter_context(
            replica(tmp_path / "a", database_url, clock, first_leader)
        )
        second, second_client = stack.enter_context(
            replica(tmp_path / "b", database_url, clock, second_leader)
        )
        rows = stream(clock.now - 4 * 3600, 4 * 60, INTERVAL)
        push_stream(first, rows[: len(rows) // 2], INTERVAL, clock)
        clock.now += 600
        run_maintenance(services(first))
        head_after_leader = _head_rows(first)
        assert head_after_leader < len(rows) // 2, "the leader compacted"
        assert "dcmon_server_leader 1.0" in first_client.get("/metrics").text
        assert first_client.get("/api/v1/storage").json()["leader"] is True

        push_stream(second, rows[len(rows) // 2 :], INTERVAL, clock, first_seq=len(rows))
        clock.now += 600
        before = _head_rows(second)
        run_maintenance(services(second))
        assert _head_rows(second) == before, "a follower must not compact"
        assert "dcmon_server_leader 0.0" in second_client.get("/metrics").text
        assert second_client.get("/api/v1/storage").json()["leader"] is False

        first_leader.close()  # the leader stops: its session ends
        assert _takes_over(second_leader)
        run_maintenance(services(second))
        assert second_leader.is_leader
        assert _head_rows(second) < before, "the follower took over and compacted"
        assert "dcmon_server_leader 1.0" in second_client.get("/metrics").text


def test_a_replica_reads_series_another_replica_created(
    tmp_path: Path, database_url: str, clock: FakeClock
) -> None:
    first_leader, second_leader = _leaders(database_url)
    with ExitStack() as stack:
        first, _ = stack.enter_context(replica(tmp_path / "a", database_url, clock, first_leader))
        second, second_client = stack.enter_context(
            replica(tmp_path / "b", database_url, clock, second_leader)
        )
        rows = stream(clock.now - 600, 10, INTERVAL)
        push_stream(first, rows, INTERVAL, clock)  # series created after the second started
        params = {"metric": "DCGM_FI_DEV_GPU_TEMP", "start": rows[0][0] - 1, "end": clock.now}
        run_maintenance(services(second))
        body = second_client.get("/api/v1/history", params=params).json()
        assert [len(item["points"]) for item in body["series"]] == [len(rows)]
