"""Grouping timers, the notification log, inhibition and silences, on a fake clock: the
dispatcher and pipeline driven by hand, as the notifier thread drives them."""

from __future__ import annotations

import time

from server.notify.config import parse_receivers
from server.notify.delivery import MemoryCounts
from server.notify.dispatch import Dispatcher
from server.notify.inhibit import InhibitRule
from server.notify.matchers import parse_matchers
from server.notify.model import Notice
from server.notify.nflog import LogEntry, MemoryLog, needs_update
from server.notify.pipeline import Pipeline, Receiver
from server.notify.silence import Silence
from tests.server.notify.helpers import Recorder, notice

T0 = 1_800_000_000.0
ROUTE = {
    "receiver": "team",
    "group_by": ["alertname"],
    "group_wait": "30s",
    "group_interval": "5m",
    "repeat_interval": "1h",
}


class Harness:
    def __init__(self, *, send_resolved: bool = True, rules: tuple[InhibitRule, ...] = ()) -> None:
        self.root = parse_receivers({"route": ROUTE, "receivers": [{"name": "team"}]}).route
        self.dispatcher = Dispatcher(self.root)
        self.recorder = Recorder(send_resolved=send_resolved)
        self.silences: list[Silence] = []
        self.nflog = MemoryLog()
        self.counts = MemoryCounts()
        self.pipeline = Pipeline(
            {"team": Receiver("team", (self.recorder,))},
            rules,
            lambda: self.silences,
            self.nflog,
            self.counts,
            monotonic=self._jumping,  # each reading 1000 s on: no time left for a retry
        )
        self._mono = 0.0

    def _jumping(self) -> float:
        self._mono += 1000.0
        return self._mono

    def tick(self, now: float) -> int:
        """Run every due flush at ``now``; returns how many flushes ran."""
        flushes = self.dispatcher.due(now)
        for flush in flushes:
            ok = self.pipeline.run(flush, self.dispatcher.firing(now))
            self.dispatcher.done(flush, success=ok)
        return len(flushes)

    def sent(self) -> list[list[tuple[str, str]]]:
        """Each message as [(instance, status)]."""
        return [
            [(a.label("instance"), "resolved" if a.resolved(m.now) else "firing") for a in m.alerts]
            for m in self.recorder.messages
        ]


def firing(instance: str, started: float, at: float | None = None, name: str = "GpuHot") -> Notice:
    """A firing alert as Prometheus sends it at ``at``: valid for 4 minutes from then."""
    sent = started if at is None else at
    return notice(started, sent + 240, alertname=name, instance=instance)


def test_group_wait_batches_then_group_interval_and_repeat_interval() -> None:
    h = Harness()
    h.dispatcher.insert([firing("gpu01", T0)], T0)
    h.dispatcher.insert([firing("gpu02", T0 + 10)], T0 + 10)
    assert h.tick(T0 + 29) == 0  # group_wait not over
    h.tick(T0 + 30)
    assert h.sent() == [[("gpu01", "firing"), ("gpu02", "firing")]]  # one notification, both
    # Same set on the next interval ticks: nothing until the repeat interval has passed.
    for k in range(1, 12):
        now = T0 + 30 + 300 * k
        h.dispatcher.insert([firing("gpu01", T0, now), firing("gpu02", T0 + 10, now)], now)
        h.tick(now)
    assert len(h.sent()) == 1
    now = T0 + 30 + 300 * 12  # 3600 s after the first: not *before* now - repeat yet
    h.dispatcher.insert([firing("gpu01", T0, now), firing("gpu02", T0 + 10, now)], now)
    h.tick(now)
    assert len(h.sent()) == 1
    now += 300  # repeat_interval is rounded up to the next group_interval tick
    h.dispatcher.insert([firing("gpu01", T0, now), firing("gpu02", T0 + 10, now)], now)
    h.tick(now)
    assert len(h.sent()) == 2


def test_a_new_alert_waits_for_the_interval_and_a_resolution_is_sent_once() -> None:
    h = Harness()
    h.dispatcher.insert([firing("gpu01", T0)], T0)
    h.tick(T0 + 30)
    h.dispatcher.insert([firing("gpu02", T0 + 40)], T0 + 40)
    assert h.tick(T0 + 100) == 0  # the group's next look is at +330
    h.dispatcher.insert(
        [firing("gpu01", T0, T0 + 300), firing("gpu02", T0 + 40, T0 + 300)], T0 + 300
    )
    h.tick(T0 + 330)
    assert h.sent()[-1] == [("gpu01", "firing"), ("gpu02", "firing")]
    # gpu01 resolves; Prometheus re-sends the resolution for 15 minutes.
    resolved = notice(T0, T0 + 400, alertname="GpuHot", instance="gpu01")
    h.dispatcher.insert([resolved, firing("gpu02", T0 + 40, T0 + 400)], T0 + 400)
    h.tick(T0 + 630)
    assert h.sent()[-1] == [("gpu01", "resolved"), ("gpu02", "firing")]
    for k in (2, 3):
        at = T0 + 330 + 300 * k
        h.dispatcher.insert([resolved, firing("gpu02", T0 + 40, at)], at)
        h.tick(T0 + 330 + 300 * k)
    assert len(h.sent()) == 3  # the re-sent resolution is no news


def test_resolved_within_group_wait_sends_nothing() -> None:
    h = Harness()
    h.dispatcher.insert([firing("gpu01", T0)], T0)
    h.dispatcher.insert([notice(T0, T0 + 5, alertname="GpuHot", instance="gpu01")], T0 + 5)
    h.tick(T0 + 30)
    assert h.sent() == []


def test_an_alert_that_started_long_ago_skips_group_wait() -> None:
    h = Harness()
    h.dispatcher.insert([firing("gpu01", T0 - 600, T0)], T0)
    h.tick(T0)
    assert h.sent() == [[("gpu01", "firing")]]


def test_send_resolved_false_logs_the_resolution_without_sending_it() -> None:
    h = Harness(send_resolved=False)
    h.dispatcher.insert([firing("gpu01", T0)], T0)
    h.tick(T0 + 30)
    h.dispatcher.insert([notice(T0, T0 + 60, alertname="GpuHot", instance="gpu01")], T0 + 60)
    h.tick(T0 + 330)
    assert h.sent() == [[("gpu01", "firing")]]
    entry = h.nflog.get("team/record/0", '{}:{alertname="GpuHot"}')
    assert entry is not None and entry.firing == frozenset()  # cleared, so a re-fire is news
    h.dispatcher.insert([firing("gpu01", T0 + 700)], T0 + 700)
    h.tick(T0 + 930)
    assert h.sent()[-1] == [("gpu01", "firing")]


def test_a_failed_delivery_is_not_logged_and_is_retried_next_interval() -> None:
    h = Harness()
    h.recorder.failures = 1
    h.dispatcher.insert([firing("gpu01", T0)], T0)
    h.tick(T0 + 30)
    assert h.sent() == [] and h.counts.totals[("team", "failed")] == 1
    h.dispatcher.insert([firing("gpu01", T0, T0 + 300)], T0 + 300)
    h.tick(T0 + 330)
    assert h.sent() == [[("gpu01", "firing")]]
    assert h.counts.totals[("team", "sent")] == 1


def test_a_failed_attempt_is_retried_with_backoff_within_the_interval() -> None:
    h = Harness()
    h.pipeline._monotonic = time.monotonic  # real time: room for retries
    h.recorder.failures = 2
    h.dispatcher.insert([firing("gpu01", T0)], T0)
    started = time.monotonic()
    h.tick(T0 + 30)
    assert h.recorder.attempts == 3 and h.sent() == [[("gpu01", "firing")]]
    assert h.counts.totals[("team", "retried")] == 2 and h.counts.totals[("team", "sent")] == 1
    assert time.monotonic() - started >= 0.5  # backoff 0.5 s then 1 s (jittered by +/- 50 %)


def test_inhibition_mutes_targets_with_equal_labels_only_while_the_source_fires() -> None:
    rule = InhibitRule(
        parse_matchers(['alertname="NodeDown"']),
        parse_matchers(['alertname="GpuHot"']),
        ("instance",),
    )
    h = Harness(rules=(rule,))
    down = notice(T0, T0 + 240, alertname="NodeDown", instance="gpu01")
    h.dispatcher.insert([down, firing("gpu01", T0), firing("gpu02", T0)], T0)
    h.tick(T0 + 30)
    by_group = {m.group_key: m for m in h.recorder.messages}
    hot = by_group['{}:{alertname="GpuHot"}']
    assert [a.label("instance") for a in hot.alerts] == ["gpu02"]  # gpu01 muted by NodeDown
    assert '{}:{alertname="NodeDown"}' in by_group
    # NodeDown resolves: gpu01's alert is news now.
    h.dispatcher.insert([notice(T0, T0 + 100, alertname="NodeDown", instance="gpu01")], T0 + 100)
    h.dispatcher.insert([firing("gpu01", T0, T0 + 100), firing("gpu02", T0, T0 + 100)], T0 + 100)
    h.tick(T0 + 330)
    hot = [m for m in h.recorder.messages if m.group_key == '{}:{alertname="GpuHot"}'][-1]
    assert [a.label("instance") for a in hot.alerts] == ["gpu01", "gpu02"]


def test_a_silence_mutes_while_active_and_its_end_makes_the_alert_news() -> None:
    h = Harness()
    h.silences.append(
        Silence("s1", parse_matchers(['instance="gpu01"']), T0, T0 + 400, "ops", "maintenance")
    )
    h.dispatcher.insert([firing("gpu01", T0), firing("gpu02", T0)], T0)
    h.tick(T0 + 30)
    assert h.sent() == [[("gpu02", "firing")]]
    h.dispatcher.insert([firing("gpu01", T0, T0 + 300), firing("gpu02", T0, T0 + 300)], T0 + 300)
    h.tick(T0 + 330)
    assert len(h.sent()) == 1  # still silenced, nothing new
    h.dispatcher.insert([firing("gpu01", T0, T0 + 600), firing("gpu02", T0, T0 + 600)], T0 + 600)
    h.tick(T0 + 630)  # silence over
    assert h.sent()[-1] == [("gpu01", "firing"), ("gpu02", "firing")]


def test_needs_update_table() -> None:
    a, b = "a", "b"
    entry = LogEntry("r", "g", frozenset({a}), frozenset(), T0, T0 + 1e6)
    kw = {"send_resolved": True, "repeat_interval_s": 3600.0, "now": T0 + 60}
    assert needs_update(None, frozenset({a}), frozenset(), **kw)
    assert not needs_update(None, frozenset(), frozenset({a}), **kw)
    assert not needs_update(entry, frozenset({a}), frozenset(), **kw)
    assert needs_update(entry, frozenset({a, b}), frozenset(), **kw)
    assert needs_update(entry, frozenset(), frozenset({a}), **kw)
    assert needs_update(entry, frozenset({a}), frozenset({b}), **kw)
    assert not needs_update(entry, frozenset({a}), frozenset({b}), **{**kw, "send_resolved": False})
    assert needs_update(entry, frozenset({a}), frozenset(), **{**kw, "now": T0 + 3601})
