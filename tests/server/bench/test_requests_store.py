"""The request store on both backends, as two server replicas sharing one database: the
database keeps one open request per node even when both ask at once, and a report, a cancel
and an expiry from different replicas never both win."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from agent.wire.bench import BenchReport
from server.bench.model import (
    NewRequest,
    RequestClosedError,
    RequestNotFoundError,
)
from server.bench.requests import RequestStore
from server.storage.db import make_engine
from server.storage.migrate import upgrade
from server.storage.writer import Writer
from tests.server.conftest import START, FakeClock

NODE_ID = "0123456789abcdef0123456789abcdef"
NEW = NewRequest("quick", None, None, False, 600.0, "admin")


def _no_run(*_args: object) -> None:
    raise AssertionError("no result was reported")


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine)
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO nodes (node_id, name, hostname, labels, interval_seconds, "
                "first_seen, last_push, last_batch_ts, last_seq, host_facts, gpu_status) VALUES "
                "(:id, 'gpu01', 'gpu01', '{}', 10, 1, 1, 1, 1, '{}', '')"
            ),
            {"id": NODE_ID},
        )
    yield engine
    engine.dispose()


@pytest.fixture
def replicas(engine: Engine, clock: FakeClock) -> Iterator[tuple[RequestStore, RequestStore]]:
    writers = [Writer(engine), Writer(engine)]
    try:
        yield RequestStore(engine, writers[0], clock), RequestStore(engine, writers[1], clock)
    finally:
        for writer in writers:
            writer.close()


def test_two_replicas_asking_at_once_make_one_request(
    replicas: tuple[RequestStore, RequestStore],
) -> None:
    barrier = threading.Barrier(2)
    made: list[int] = []

    def ask(store: RequestStore) -> None:
        barrier.wait()
        made.append(len(store.create(NEW, ["gpu01"]).created))

    threads = [threading.Thread(target=ask, args=(store,)) for store in replicas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(made) == [0, 1]
    assert len(replicas[0].open_requests()) == 1


def test_what_one_replica_closes_the_other_cannot_change(
    replicas: tuple[RequestStore, RequestStore], clock: FakeClock
) -> None:
    one, two = replicas
    (request,) = one.create(NEW, [NODE_ID]).created  # by node id
    assert request.node_name == "gpu01"
    running = two.report(request.request_id, NODE_ID, BenchReport(state="running"), _no_run)
    assert running.state == "running" and running.started_at == START
    assert one.cancel(request.request_id, "admin").cancel_requested
    done = two.report(request.request_id, NODE_ID, BenchReport(state="cancelled"), _no_run)
    assert done.state == "cancelled" and done.finished_at == START
    with pytest.raises(RequestClosedError, match="already cancelled"):
        one.cancel(request.request_id, "admin")
    with pytest.raises(RequestClosedError):
        one.report(request.request_id, NODE_ID, BenchReport(state="running"), _no_run)
    with pytest.raises(RequestNotFoundError):
        one.get("nosuch")
    # a pending request past its expiry: one replica marks it, the other finds it expired
    (late,) = two.create(NEW, ["gpu01"]).created
    clock.now += 601
    assert one.expire_due() == 1 and two.expire_due() == 0
    assert two.get(late.request_id).state == "expired"
    assert two.recent(state="expired")[0].request_id == late.request_id
