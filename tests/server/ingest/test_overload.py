"""Overload and storage trouble: 429 or 503 with a Retry-After, never a 500, nothing stored."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, event
from sqlalchemy import exc as sa_exc

from server.app import create_app
from server.auth.secrets import sha256_hex
from server.errors import ApiError
from server.ingest.admission import Admission
from server.settings import ServerSettings
from server.storage.db import make_engine
from server.storage.store import Store
from tests.factories import identity, make_batch
from tests.server.conftest import START, TOKEN, FakeClock, push, row_counts
from tests.server.ingest.helpers import push_bulk

T = TypeVar("T")


def _retry_after(response: Any, base: float, *, low: float | None = None) -> int:
    """A 503's Retry-After lies between the base and twice it; a 429's (sized to the queue)
    between ``low`` (1 s) and twice the base."""
    seconds = int(response.headers["retry-after"])
    assert (base if low is None else low) <= seconds <= 2 * base
    return seconds


def _run(scenario: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """``asyncio.run`` on a thread of its own: the main thread may be inside another loop (the
    browser tests' Playwright keeps one running there)."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(scenario())).result()


async def _held(admission: Admission, hold: asyncio.Event) -> None:
    """A request that keeps its slot until ``hold`` is set."""
    async with admission.admit():
        await hold.wait()


def test_retry_after_is_jittered_between_the_base_and_twice_it() -> None:
    draws = iter([0.0, 0.5, 0.999])
    admission = Admission(1, 5.0, rng=lambda: next(draws))
    assert [admission.retry_after()["Retry-After"] for _ in range(3)] == ["5", "8", "10"]
    assert Admission(1, 0.2, rng=lambda: 0.0).retry_after() == {"Retry-After": "1"}


def test_admission_frees_its_slot_when_the_request_fails() -> None:
    async def scenario() -> ApiError:
        admission = Admission(1, 1.0, wait_seconds=0)
        with pytest.raises(RuntimeError):
            async with admission.admit():
                raise RuntimeError("the request failed")
        assert admission.inflight == 0
        async with admission.admit():
            with pytest.raises(ApiError) as caught:
                async with admission.admit():
                    pass
        assert admission.inflight == 0
        return caught.value

    refused = _run(scenario)
    assert refused.status == 429 and refused.code == "overloaded"


def test_a_request_past_the_limit_waits_for_the_next_free_slot_first_come() -> None:
    async def scenario() -> list[str]:
        admission = Admission(1, 5.0, wait_seconds=5.0)
        order: list[str] = []
        gate = asyncio.Event()

        async def request(name: str) -> None:
            async with admission.admit():
                order.append(name)
                await gate.wait()

        first = asyncio.create_task(request("first"))
        await asyncio.sleep(0)
        later = [asyncio.create_task(request(f"queued{i}")) for i in range(3)]
        await asyncio.sleep(0.01)
        assert (admission.inflight, admission.waiting, order) == (1, 3, ["first"])
        gate.set()
        await asyncio.gather(first, *later)
        assert (admission.inflight, admission.waiting) == (0, 0)
        return order

    assert _run(scenario) == ["first", "queued0", "queued1", "queued2"]


def test_the_queue_is_bounded_and_its_wait_runs_out_with_429() -> None:
    async def scenario() -> tuple[ApiError, ApiError]:
        now = [0.0]
        admission = Admission(
            2, 30.0, rng=lambda: 0.0, wait_seconds=0.05, max_waiting=1, clock=lambda: now[0]
        )
        hold = asyncio.Event()
        holders = [asyncio.create_task(_held(admission, hold)) for _ in range(2)]
        await asyncio.sleep(0)
        queued = asyncio.create_task(_held(admission, hold))  # waits 50 ms, then is refused
        await asyncio.sleep(0)
        with pytest.raises(ApiError) as full:  # the queue holds one: refused at once
            async with admission.admit():
                pass
        with pytest.raises(ApiError) as timed_out:
            await queued
        hold.set()
        await asyncio.gather(*holders)
        assert (admission.inflight, admission.waiting) == (0, 0)
        return full.value, timed_out.value

    full, timed_out = _run(scenario)
    assert full.status == timed_out.status == 429
    assert "1 more are waiting" in full.message


def test_a_refusal_s_retry_after_is_the_time_the_queue_ahead_needs() -> None:
    async def scenario() -> list[str]:
        now = [0.0]
        admission = Admission(4, 30.0, rng=lambda: 0.0, wait_seconds=0, clock=lambda: now[0])
        for _ in range(200):  # requests that held their slot 2 s each: the average follows
            async with admission.admit():
                now[0] += 2.0
        assert admission.service_seconds == pytest.approx(2.0, rel=1e-3)
        headers = []
        hold = asyncio.Event()
        holders = [asyncio.create_task(_held(admission, hold)) for _ in range(4)]
        await asyncio.sleep(0)
        headers.append(admission.queue_retry_after()["Retry-After"])  # 4 x 2 s / 4 slots
        hold.set()
        await asyncio.gather(*holders)
        headers.append(admission.queue_retry_after()["Retry-After"])  # nothing ahead: 1 s
        return headers

    assert _run(scenario) == ["2", "1"]


def test_a_refusal_s_retry_after_is_at_most_the_configured_base() -> None:
    async def scenario() -> str:
        now = [0.0]
        admission = Admission(1, 3.0, rng=lambda: 0.0, wait_seconds=0, clock=lambda: now[0])
        for _ in range(100):  # a very slow server: 100 s per request
            async with admission.admit():
                now[0] += 100.0
        async with admission.admit():
            return admission.queue_retry_after()["Retry-After"]

    assert _run(scenario) == "3"


def _hold_writer(store: Store) -> tuple[threading.Event, threading.Event]:
    """Returns: (entered, release): the writer runs a job that waits for ``release``, so the
    next write queues behind it and its request holds its admission slot meanwhile."""
    entered, release = threading.Event(), threading.Event()

    def job(_conn: Any) -> None:
        entered.set()
        assert release.wait(10)

    store.writer.enqueue(job)
    return entered, release


def _wait_until(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_requests_past_the_limit_get_429_with_retry_after(
    make_app: Callable[..., FastAPI], tmp_path: Path
) -> None:
    app = make_app(max_inflight_ingest=1, ingest_retry_after_seconds=2.0, ingest_queue_seconds=0.1)
    store: Store = app.state.services.store
    with TestClient(app) as client, ThreadPoolExecutor(1) as pool:
        entered, release = _hold_writer(store)
        first = pool.submit(push, client, make_batch(timestamp=START))
        assert entered.wait(10)
        _wait_until(lambda: app.state.services.ingest.admission.inflight == 1)
        other = make_batch(timestamp=START, node=identity(name="gpu02", node_id="f" * 32))
        for response in (push(client, other), push_bulk(client, [other])):
            assert response.status_code == 429
            assert response.json()["error"]["code"] == "overloaded"
            _retry_after(response, 2.0, low=1)
        release.set()
        assert first.result().status_code == 200
        assert row_counts(tmp_path / "dcmon.db")["nodes"] == 1
        metrics = client.get("/metrics").text
        assert 'dcmon_server_ingest_rejected_batches_total{reason="overloaded"} 2.0' in metrics
        assert push(client, other).status_code == 200  # the slot is free again


def test_a_push_past_the_limit_waits_in_the_queue_and_is_stored(
    make_app: Callable[..., FastAPI], tmp_path: Path
) -> None:
    app = make_app(max_inflight_ingest=1, ingest_queue_seconds=30.0)
    services = app.state.services
    store: Store = services.store
    other = make_batch(timestamp=START, node=identity(name="gpu02", node_id="f" * 32))
    with TestClient(app) as client, ThreadPoolExecutor(2) as pool:
        entered, release = _hold_writer(store)
        first = pool.submit(push, client, make_batch(timestamp=START))
        assert entered.wait(10)
        _wait_until(lambda: services.ingest.admission.inflight == 1)
        queued = pool.submit(push, client, other)
        deadline = time.monotonic() + 10
        while services.ingest.admission.waiting < 1:
            assert time.monotonic() < deadline, "the second push never queued"
            time.sleep(0.01)
        release.set()
        assert first.result().status_code == 200
        assert queued.result().status_code == 200
        assert row_counts(tmp_path / "dcmon.db")["nodes"] == 2
        assert services.ingest.admission.inflight == 0
        metrics = client.get("/metrics").text
        assert "dcmon_server_ingest_inflight 0.0" in metrics
        assert "dcmon_server_ingest_waiting 0.0" in metrics


@pytest.fixture
def locked_sqlite(
    tmp_path: Path, clock: FakeClock
) -> Iterator[tuple[TestClient, sqlite3.Connection]]:
    """An app whose database another process holds locked, with a short busy timeout."""
    settings = ServerSettings(
        data_dir=tmp_path, ingest_token_sha256=[sha256_hex(TOKEN)], open_reads=True
    )
    engine = make_engine(settings.effective_database_url())

    @event.listens_for(engine, "connect")
    def _short_busy_timeout(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=50")

    app = create_app(settings, clock=clock, engine=engine)
    locker = sqlite3.connect(tmp_path / "dcmon.db", isolation_level=None)
    try:
        with TestClient(app) as client:
            yield client, locker
    finally:
        locker.close()


def test_a_locked_database_gives_503_and_the_retry_succeeds(
    locked_sqlite: tuple[TestClient, sqlite3.Connection], tmp_path: Path
) -> None:
    client, locker = locked_sqlite
    batch = make_batch(timestamp=START)
    locker.execute("BEGIN EXCLUSIVE")
    response = push(client, batch)
    bulk = push_bulk(client, [batch])
    locker.execute("ROLLBACK")
    assert response.status_code == 503, response.text
    error = response.json()["error"]
    assert error["code"] == "storage_unavailable"
    assert "database is locked" in error["message"]
    _retry_after(response, 5.0)
    assert bulk.status_code == 200
    [result] = bulk.json()["results"]
    assert result["status"] == "retry" and result["http_status"] == 503
    assert result["code"] == "storage_unavailable"
    assert row_counts(tmp_path / "dcmon.db")["nodes"] == 0
    assert push(client, batch).json()["status"] == "accepted"


def _refuse_connections(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*_args: Any, **_kwargs: Any) -> int:
        raise sa_exc.OperationalError(
            "UPDATE nodes SET ...",
            {},
            ConnectionRefusedError("connection to server at 10.0.0.5 port 5432 failed"),
        )

    monkeypatch.setattr(Store, "_upsert_node", refused)


def test_a_database_refusing_connections_gives_503(
    client: TestClient, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _refuse_connections(monkeypatch)
    response = push(client, make_batch(timestamp=START))
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "storage_unavailable"
    assert "ConnectionRefusedError" in error["message"]
    assert "UPDATE" not in error["message"]  # no SQL in answers
    assert "retry-after" in response.headers
    metrics = client.get("/metrics").text
    assert 'dcmon_server_ingest_rejected_batches_total{reason="storage_unavailable"} 1.0' in metrics
    assert 'dcmon_server_ingest_requests_total{code="503"} 1.0' in metrics


def test_an_invalidated_connection_gives_503(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    def dropped(*_args: Any, **_kwargs: Any) -> int:
        raise sa_exc.DBAPIError(
            "SELECT 1", {}, Exception("server closed the connection"), connection_invalidated=True
        )

    monkeypatch.setattr(Store, "_upsert_node", dropped)
    response = push(client, make_batch(timestamp=START))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "storage_unavailable"


def test_a_closed_writer_gives_503(client: TestClient, tmp_path: Path) -> None:
    client.app.state.services.store.writer.close()  # type: ignore[attr-defined]
    response = push(client, make_batch(timestamp=START))
    assert response.status_code == 503
    assert "writer is closed" in response.json()["error"]["message"]
    bulk = push_bulk(client, [make_batch(timestamp=START)])
    assert bulk.json()["results"][0]["status"] == "retry"


def test_a_failed_write_inside_a_shared_group_fails_only_its_batch(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bulk request whose second record fails in storage: the other records still commit."""
    upsert = Store._upsert_node

    def flaky(self: Store, conn: Connection, batch: Any, received_at: float) -> int:
        if batch.seq == 2:
            raise sa_exc.OperationalError("UPDATE nodes", {}, Exception("disk I/O error"))
        return upsert(self, conn, batch, received_at)

    monkeypatch.setattr(Store, "_upsert_node", flaky)
    batches = [make_batch(seq=seq, timestamp=START - 30 + 10 * seq) for seq in (1, 2, 3)]
    results = push_bulk(client, batches).json()["results"]
    assert [r["status"] for r in results] == ["accepted", "retry", "accepted"]
    assert results[1]["http_status"] == 503
