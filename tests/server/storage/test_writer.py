"""The single writer survives what its jobs do: a failing commit callback fails that job only,
a thread killed mid-group answers its jobs and is started again, and a writer that keeps dying
says so (``healthy``, ``/readyz``) and refuses new work at once instead of queueing it forever;
an ingest request never waits past its time limit for a write."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Connection, Engine, text

from server.deps import Services
from server.storage.db import make_engine
from server.storage.writer import Writer, WriterClosedError, WriterDiedError, on_commit
from tests.factories import make_batch
from tests.server.conftest import START, push

ANSWER_S = 5.0  # a job is answered long before this; a hang fails the test instead


class _Killed(BaseException):
    """What a thread-killing failure looks like to the writer: not an ``Exception``."""


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{tmp_path / 'writer.db'}")
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    yield engine
    engine.dispose()


@pytest.fixture
def writer(engine: Engine) -> Iterator[Writer]:
    writer = Writer(engine, max_restarts=2)
    yield writer
    writer.close()


def _insert(x: int) -> object:
    def job(conn: Connection) -> int:
        conn.execute(text("INSERT INTO t (x) VALUES (:x)"), {"x": x})
        return x

    return job


def _rows(engine: Engine) -> list[int]:
    with engine.connect() as conn:
        return sorted(row[0] for row in conn.execute(text("SELECT x FROM t")))


def _hold(writer: Writer) -> threading.Event:
    """Occupy the writer thread until the returned event is set, so that the jobs queued
    meanwhile run together in one group."""
    release = threading.Event()
    started = threading.Event()

    def blocker(_conn: Connection) -> None:
        started.set()
        release.wait(ANSWER_S)

    writer.enqueue(blocker)
    assert started.wait(ANSWER_S)
    return release


def test_a_failing_commit_callback_fails_only_its_job(writer: Writer, engine: Engine) -> None:
    def failing(conn: Connection) -> int:
        conn.execute(text("INSERT INTO t (x) VALUES (2)"))

        def callback() -> None:
            raise RuntimeError("cache update failed")

        on_commit(conn, callback)
        return 2

    release = _hold(writer)
    futures: list[Future[object]] = [
        writer.enqueue(_insert(1)),
        writer.enqueue(failing),
        writer.enqueue(_insert(3)),
    ]
    release.set()
    assert futures[0].result(ANSWER_S) == 1
    with pytest.raises(RuntimeError, match="cache update failed"):
        futures[1].result(ANSWER_S)
    assert futures[2].result(ANSWER_S) == 3
    assert writer.enqueue(_insert(4)).result(ANSWER_S) == 4  # the thread lives on
    assert _rows(engine) == [1, 2, 3, 4]  # committed: a retry is recognised as a repeat
    assert writer.callback_failures == 1


def test_a_killed_writer_thread_answers_its_jobs_and_is_restarted(
    engine: Engine, request: pytest.FixtureRequest
) -> None:
    def killer(_conn: Connection) -> None:
        raise _Killed

    writer = Writer(engine, max_group=3)  # the three jobs below make one group
    request.addfinalizer(writer.close)
    release = _hold(writer)
    group = [writer.enqueue(_insert(1)), writer.enqueue(killer), writer.enqueue(_insert(3))]
    queued_after = writer.enqueue(_insert(5))
    release.set()
    for future in group:  # the group in flight is answered, not left waiting
        with pytest.raises(WriterDiedError):
            future.result(ANSWER_S)
    assert queued_after.result(ANSWER_S) == 5  # a restarted thread takes the queue
    assert writer.enqueue(_insert(6)).result(ANSWER_S) == 6
    assert _rows(engine) == [5, 6]  # the dying group was rolled back whole
    assert writer.restarts == 1
    assert writer.healthy


def test_a_writer_that_keeps_dying_refuses_new_work_at_once(writer: Writer) -> None:
    def killer(_conn: Connection) -> None:
        raise _Killed

    for _ in range(3):  # max_restarts=2: the third death is one too many
        with pytest.raises(WriterDiedError):
            writer.enqueue(killer).result(ANSWER_S)
    assert not writer.healthy
    with pytest.raises(WriterClosedError, match="stopped"):
        writer.enqueue(_insert(1))


# -- what ingest and /readyz make of it ------------------------------------------------------


def test_a_stopped_writer_fails_readyz_and_ingest_answers_503_at_once(
    make_app: Callable[..., FastAPI],
) -> None:
    def killer(_conn: Connection) -> None:
        raise _Killed

    with TestClient(make_app()) as client:
        services: Services = client.app.state.services  # type: ignore[attr-defined]
        writer = services.store.writer
        assert client.get("/readyz").status_code == 200
        for _ in range(writer.max_restarts + 1):
            with pytest.raises(WriterDiedError):
                writer.enqueue(killer).result(ANSWER_S)
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["reason"] == "database writer stopped"
        response = push(client, make_batch(timestamp=START))
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "storage_unavailable"
        assert "stopped" in response.json()["error"]["message"]
        assert int(response.headers["retry-after"]) >= 1
        assert services.ingest.admission.inflight == 0


def test_a_write_stuck_past_its_time_limit_answers_503_and_frees_its_slot(
    make_app: Callable[..., FastAPI],
) -> None:
    with TestClient(make_app(ingest_write_timeout_seconds=0.5)) as client:
        services: Services = client.app.state.services  # type: ignore[attr-defined]
        release = _hold(services.store.writer)
        try:
            started = time.monotonic()
            response = push(client, make_batch(seq=1, timestamp=START))
            waited = time.monotonic() - started
        finally:
            release.set()
        assert response.status_code == 503, response.text
        assert "did not finish within 0.5s" in response.json()["error"]["message"]
        assert "retry-after" in response.headers
        assert waited < ANSWER_S / 2
        assert services.ingest.admission.inflight == 0
        # The withdrawn write was never run; the retry stores the batch.
        assert push(client, make_batch(seq=1, timestamp=START)).json()["status"] == "accepted"
