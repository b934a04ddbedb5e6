"""Notifications across replicas on one notification log (its in-memory twin): only the leader
sends, two senders of one group send it once, and a sender that dies with its claim held loses
nothing (its claim is taken over when stale) and costs at most one duplicate, the
at-least-once choice of ``pipeline.py``."""

from __future__ import annotations

import threading
from collections.abc import Callable

from server.notify.config import parse_receivers
from server.notify.delivery import MemoryCounts
from server.notify.dispatch import Dispatcher
from server.notify.nflog import LogEntry, MemoryLog, digest
from server.notify.pipeline import Pipeline, Receiver, lease_s
from server.notify.receiver import Message
from server.storage.leader import InMemoryLeader, LockTable
from tests.server.notify.helpers import Recorder, notice

T0 = 1_800_000_000.0
ROUTE = {
    "receiver": "team",
    "group_by": ["alertname"],
    "group_wait": "0s",
    "group_interval": "1s",
    "repeat_interval": "1h",
}
LOG_NAME = "team/record/0"


class Killed(BaseException):
    """The process dies here (nothing after it runs, no except clause catches it)."""


class Clock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Replica:
    """One server process's direct receivers: its own dispatcher and pipeline, the shared log
    and the shared receiver (``endpoint``)."""

    def __init__(
        self,
        nflog: MemoryLog,
        endpoint: Recorder,
        clock: Clock,
        leading: Callable[[], bool] = lambda: True,
    ) -> None:
        root = parse_receivers({"route": ROUTE, "receivers": [{"name": "team"}]}).route
        self.dispatcher = Dispatcher(root)
        self.pipeline = Pipeline(
            {"team": Receiver("team", (endpoint,))},
            (),
            list,
            nflog,
            MemoryCounts(),
            leading=leading,
            clock=clock,
            monotonic=self._jumping,  # no time left for a retry unless a test says so
        )
        self._mono = 0.0

    def _jumping(self) -> float:
        self._mono += 1000.0
        return self._mono

    def flush(self, now: float) -> list[bool]:
        results = []
        for flush in self.dispatcher.due(now):
            ok = self.pipeline.run(flush, self.dispatcher.firing(now))
            self.dispatcher.done(flush, success=ok)
            results.append(ok)
        return results


def _firing(at: float) -> list:  # type: ignore[type-arg]
    return [notice(T0 - 600, at + 240, alertname="GpuHot", instance="gpu01")]


def _resolved(at: float) -> list:  # type: ignore[type-arg]
    return [notice(T0 - 600, at, alertname="GpuHot", instance="gpu01")]


def _statuses(endpoint: Recorder) -> list[str]:
    return [m.status for m in endpoint.messages]


class Gate(Recorder):
    """A receiver that holds the first message until released (a slow send in flight)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def notify(self, message: Message) -> None:
        if not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(10)
        super().notify(message)


def test_two_replicas_flushing_one_group_at_once_send_it_once() -> None:
    """The leadership change: the old leader's dispatcher and the new one's flush one group."""
    nflog, endpoint, clock = MemoryLog(), Gate(), Clock()
    old, new = Replica(nflog, endpoint, clock), Replica(nflog, endpoint, clock)
    old.dispatcher.insert(_firing(T0), T0)
    new.dispatcher.insert(_firing(T0), T0)
    sending = threading.Thread(target=old.flush, args=(T0,))
    sending.start()
    try:
        assert endpoint.entered.wait(10)  # the old one is sending, its claim held
        assert new.flush(T0) == [False]  # busy: tried again at the next interval
    finally:
        endpoint.release.set()
        sending.join(10)
    assert new.flush(T0 + 1) == [True]  # now the log says it was sent
    assert _statuses(endpoint) == ["firing"]
    assert nflog.claimed(LOG_NAME, '{}:{alertname="GpuHot"}') == ""


def test_the_log_is_read_after_the_claim_is_won() -> None:
    """A sender that read "not sent" while another sent and logged must not send again."""
    endpoint, clock = Recorder(), Clock()

    class Racing(MemoryLog):
        """The other replica's whole send happens between this one's read and its claim."""

        other: Replica | None = None

        def get(self, receiver: str, group_key: str) -> LogEntry | None:
            entry = super().get(receiver, group_key)
            other, self.other = self.other, None
            if other is not None:
                other.flush(T0)
            return entry

    nflog = Racing()
    slow, fast = Replica(nflog, endpoint, clock), Replica(nflog, endpoint, clock)
    slow.dispatcher.insert(_firing(T0), T0)
    fast.dispatcher.insert(_firing(T0), T0)
    nflog.other = fast
    assert slow.flush(T0) == [True]
    assert _statuses(endpoint) == ["firing"]


def test_a_replica_that_no_longer_leads_sends_nothing_and_claims_nothing() -> None:
    locks, endpoint, clock = LockTable(), Recorder(), Clock()
    leader, deposed = InMemoryLeader(locks), InMemoryLeader(locks)
    assert deposed.check()
    deposed.lose_session()  # its connection died; the other replica took the lock
    assert leader.check()
    nflog = MemoryLog()
    old = Replica(nflog, endpoint, clock, leading=deposed.check)
    new = Replica(nflog, endpoint, clock, leading=leader.check)
    old.dispatcher.insert(_firing(T0), T0)  # groups it still holds from its time as leader
    assert old.flush(T0) == [True]
    assert endpoint.messages == []
    assert nflog.claimed(LOG_NAME, '{}:{alertname="GpuHot"}') == ""
    new.dispatcher.insert(_firing(T0), T0)
    new.flush(T0)
    assert _statuses(endpoint) == ["firing"]


def test_a_retry_stops_when_leadership_is_lost() -> None:
    endpoint, clock = Recorder(), Clock()
    endpoint.failures = 5
    answers = iter([True, True])  # the flush and the first attempt; then not any more
    replica = Replica(MemoryLog(), endpoint, clock, leading=lambda: next(answers, False))
    replica.pipeline._monotonic = lambda: 0.0  # the deadline never passes: it would retry
    replica.dispatcher.insert(_firing(T0), T0)
    assert replica.flush(T0) == [True]  # abandoned: the new leader notifies
    assert endpoint.attempts == 1 and endpoint.messages == []


def test_a_sender_that_died_holding_its_claim_loses_nothing() -> None:
    """Killed after the claim, before the receiver got the message: the set is sent once,
    by the next leader, when the dead sender's claim has gone stale."""
    nflog, endpoint, clock = MemoryLog(), Recorder(), Clock()
    key = '{}:{alertname="GpuHot"}'
    claim = nflog.claim(LOG_NAME, key, "dead", digest(["x"], ()), T0 + lease_s(endpoint), T0)
    assert claim.held
    new = Replica(nflog, endpoint, clock)
    new.dispatcher.insert(_firing(T0), T0)
    assert new.flush(T0) == [False]  # the claim may still be sending
    assert endpoint.messages == []
    clock.now = T0 + lease_s(endpoint) + 1
    new.flush(clock.now)  # the group's next interval, past the lease
    assert _statuses(endpoint) == ["firing"]
    new.flush(clock.now + 1)
    assert _statuses(endpoint) == ["firing"]


def test_a_sender_that_died_before_logging_causes_at_most_one_duplicate() -> None:
    """Killed after the receiver accepted, before the log row was written: at-least-once,
    so the next leader sends the set again, once, and never a third time."""
    endpoint, clock = Recorder(), Clock()

    class Dying(MemoryLog):
        dead = True

        def log(self, entry: LogEntry, owner: str = "") -> None:
            if self.dead:
                raise Killed
            super().log(entry, owner)

    nflog = Dying()
    old = Replica(nflog, endpoint, clock)
    old.dispatcher.insert(_firing(T0), T0)
    try:
        old.flush(T0)
        raise AssertionError("the sender should have died")
    except Killed:
        pass
    assert _statuses(endpoint) == ["firing"]
    nflog.dead = False  # the next leader's writes work
    new = Replica(nflog, endpoint, clock)
    new.dispatcher.insert(_firing(T0), T0)
    new.flush(T0)
    assert _statuses(endpoint) == ["firing"]  # the dead sender's claim is still valid
    for step in range(1, 4):
        clock.now = T0 + lease_s(endpoint) + step
        new.flush(clock.now)
    assert _statuses(endpoint) == ["firing", "firing"]


def test_after_a_takeover_a_told_receiver_hears_only_the_resolution() -> None:
    """The new leader's groups start empty; the evaluator re-sends the firing alert: the log
    says it was told; the resolution later is sent once."""
    nflog, endpoint, clock = MemoryLog(), Recorder(), Clock()
    old = Replica(nflog, endpoint, clock)
    old.dispatcher.insert(_firing(T0), T0)
    old.flush(T0)
    new = Replica(nflog, endpoint, clock)  # the old leader is gone
    new.dispatcher.insert(_firing(T0 + 5), T0 + 5)
    new.flush(T0 + 5)
    assert _statuses(endpoint) == ["firing"]
    new.dispatcher.insert(_resolved(T0 + 8), T0 + 8)
    for t in range(9, 14):  # and the resolution re-sent each round, as Prometheus does
        new.dispatcher.insert(_resolved(T0 + 8), T0 + t)
        new.flush(T0 + t)
    assert _statuses(endpoint) == ["firing", "resolved"]


def test_claims_of_one_owner_and_their_release() -> None:
    nflog = MemoryLog()
    assert nflog.claim("r", "g", "a", "d", T0 + 10, T0).held
    assert not nflog.claim("r", "g", "b", "d", T0 + 10, T0 + 5).held
    assert not nflog.renew("r", "g", "b", T0 + 20)
    assert nflog.renew("r", "g", "a", T0 + 20)
    assert not nflog.claim("r", "g", "b", "d", T0 + 30, T0 + 15).held  # renewed: still valid
    nflog.release("r", "g", "b")  # not b's: nothing happens
    assert nflog.claimed("r", "g") == "a"
    taken = nflog.claim("r", "g", "b", "d", T0 + 40, T0 + 21)
    assert taken.held and taken.taken_from == "a"
    assert not nflog.renew("r", "g", "a", T0 + 50)  # a finds its claim gone
    nflog.log(LogEntry("r", "g", frozenset({"x"}), frozenset(), T0 + 22, T0 + 99), "b")
    assert nflog.claimed("r", "g") == ""
    again = nflog.claim("r", "g", "c", "d", T0 + 50, T0 + 23)
    assert again.held and again.entry is not None and again.entry.firing == {"x"}


def test_a_retry_renews_the_claim_for_its_own_attempt() -> None:
    """So a retry loop that outlasts one lease is not taken over while it still sends."""
    endpoint, clock = Recorder(), Clock()
    endpoint.failures = 1
    renewals: list[float] = []

    class Counting(MemoryLog):
        def renew(self, receiver: str, group_key: str, owner: str, until: float) -> bool:
            renewals.append(until)
            return super().renew(receiver, group_key, owner, until)

    replica = Replica(Counting(), endpoint, clock)
    replica.pipeline._monotonic = lambda: 0.0  # the deadline never passes: it retries
    replica.dispatcher.insert(_firing(T0), T0)
    assert replica.flush(T0) == [True]
    assert endpoint.attempts == 2 and renewals == [T0 + lease_s(endpoint)]
    assert _statuses(endpoint) == ["firing"]
