"""The notification log and its send claims in a real database (SQLite and PostgreSQL): the
claim admits one owner, a stale one is taken over by exactly one of two, the entry is read
after the claim is won, and two processes racing for one group on PostgreSQL get one claim."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from server.notify.nflog import LogEntry
from server.notify.nflog_store import SqlNotificationLog
from server.storage.db import make_engine
from server.storage.migrate import upgrade
from server.storage.writer import Writer

T0 = 1_800_000_000.0


class Process:
    """One server process's view of the database: its engine, writer and log."""

    def __init__(self, url: str) -> None:
        self.engine = make_engine(url)
        self.writer = Writer(self.engine)
        self.log = SqlNotificationLog(self.engine, self.writer)

    def close(self) -> None:
        self.writer.close()
        self.engine.dispose()


@pytest.fixture
def processes(database_url: str) -> Iterator[list[Process]]:
    engine = make_engine(database_url)
    upgrade(engine)
    engine.dispose()
    # SQLite has one writing process; on PostgreSQL these are two replicas.
    count = 2 if database_url.startswith("postgresql") else 1
    opened = [Process(database_url) for _ in range(count)]
    yield opened
    for process in opened:
        process.close()


def _entry(firing: set[str], at: float) -> LogEntry:
    return LogEntry("hook/webhook/0", "g", frozenset(firing), frozenset(), at, at + 3600)


def test_a_claim_admits_one_owner_until_it_is_stale_or_released(processes: list[Process]) -> None:
    a, b = processes[0].log, processes[-1].log
    first = a.claim("hook/webhook/0", "g", "a", "d1", T0 + 10, T0)
    assert first.held and first.entry is None and first.taken_from == ""
    assert not b.claim("hook/webhook/0", "g", "b", "d1", T0 + 20, T0 + 5).held
    assert a.claim("hook/webhook/0", "g", "a", "d1", T0 + 30, T0 + 6).held  # its own, again
    assert a.renew("hook/webhook/0", "g", "a", T0 + 40)
    assert not b.renew("hook/webhook/0", "g", "b", T0 + 40)
    assert not b.claim("hook/webhook/0", "g", "b", "d1", T0 + 50, T0 + 39).held  # renewed
    taken = b.claim("hook/webhook/0", "g", "b", "d1", T0 + 60, T0 + 41)  # stale now
    assert taken.held and taken.taken_from == "a"
    assert not a.renew("hook/webhook/0", "g", "a", T0 + 70)  # a learns it lost the claim
    a.release("hook/webhook/0", "g", "a")  # not a's any more: nothing happens
    assert not a.claim("hook/webhook/0", "g", "a", "d1", T0 + 70, T0 + 42).held
    b.log(_entry({"f1"}, T0 + 43), "b")  # logged, claim dropped in the same transaction
    again = a.claim("hook/webhook/0", "g", "a", "d2", T0 + 80, T0 + 44)
    assert again.held and again.entry == _entry({"f1"}, T0 + 43)
    a.release("hook/webhook/0", "g", "a")
    assert b.claim("hook/webhook/0", "g", "b", "d2", T0 + 90, T0 + 45).held
    assert a.get("hook/webhook/0", "g") == _entry({"f1"}, T0 + 43)
    assert a.get("hook/webhook/0", "other") is None


def test_gc_drops_expired_entries_and_long_dead_claims(processes: list[Process]) -> None:
    log = processes[0].log
    log.log(_entry({"f1"}, T0))
    assert log.claim("hook/webhook/0", "old", "dead", "d", T0 + 10, T0).held
    assert log.claim("hook/webhook/0", "new", "alive", "d", T0 + 7300, T0 + 7200).held
    assert log.gc(T0 + 7200) == 1  # the entry expired at T0 + 3600
    assert log.get("hook/webhook/0", "g") is None
    # The dead claim is gone (anyone claims at once), the live one is not.
    assert log.claim("hook/webhook/0", "old", "x", "d", T0 + 7300, T0 + 7200).taken_from == ""
    assert not log.claim("hook/webhook/0", "new", "x", "d", T0 + 7300, T0 + 7200).held


def _race(
    process: Process, owner: str, group: str, start: threading.Barrier, won: list[str]
) -> None:
    start.wait(5)
    if process.log.claim("r", group, owner, "d", T0 + 60, T0 + 1).held:
        won.append(owner)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)  # one writer on SQLite
def test_two_replicas_racing_for_one_claim_get_one(processes: list[Process]) -> None:
    assert len(processes) == 2
    for round_ in range(20):
        group = f"g{round_}"
        if round_ % 2:  # half the rounds race to take over a stale claim instead
            assert processes[0].log.claim("r", group, "dead", "d", T0, T0 - 10).held
        start = threading.Barrier(2)
        won: list[str] = []
        threads = [
            threading.Thread(target=_race, args=(p, f"p{n}", group, start, won))
            for n, p in enumerate(processes)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert len(won) == 1, (round_, won)
