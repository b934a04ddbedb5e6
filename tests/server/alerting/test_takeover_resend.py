"""A new leader re-sends, on its first round, every alert the old one had sent: a firing alert
at once (not a resend delay later, so one that was still waiting in the old process's
notifier is not lost), a resolved one while Prometheus keeps it (15 minutes, every resend
delay), and after that round the resend delay counts again from the new leader's send."""

from __future__ import annotations

import itertools

from server.alerting.evaluator import Config, Evaluator
from server.alerting.notifier import MemoryNotifier
from server.rules.state import RESOLVED_RETENTION_MS
from tests.server.alerting.helpers import T0, Rig, ruleset

RULES = """
groups:
  - name: g
    interval: 10s
    rules:
      - alert: Hot
        expr: temp > 80
"""
RESEND_S = 60


def _rig() -> Rig:
    return Rig(config=Config(query_offset_ms=0, resend_delay_ms=RESEND_S * 1000))


def _feed(rig: Rig, start: float, end: float, value: float) -> None:
    t = start
    while t <= end:
        rig.add({"__name__": "temp", "instance": "n1"}, t, value)
        t += 5


def _sent_at(rig: Rig, evaluator: Evaluator, start: float, end: float) -> list[tuple[float, bool]]:
    """Ticks every 10 s from ``start`` to ``end``; returns (time, resolved) of each sent."""
    out: list[tuple[float, bool]] = []
    t = start
    while t <= end:
        before = len(rig.notifier.calls)
        evaluator.tick(t)
        out += [(t, n.resolved) for _, batch in rig.notifier.calls[before:] for n in batch]
        t += 10
    return out


def test_a_new_leader_re_sends_a_firing_alert_at_once() -> None:
    rules = ruleset(RULES)
    rig = _rig()
    old = rig.evaluator(rules)
    base = T0 + old.snapshot()[0].phase_ms / 1000
    _feed(rig, base - 30, base + 300, 90.0)
    assert _sent_at(rig, old, base, base + 20) == [(base, False)]  # fired and handed over
    old.follow()  # the old leader dies with the notification still in its notifier
    rig.notifier = MemoryNotifier()  # the new process's notifier
    new = rig.evaluator(rules)  # leads: loads the state the old one saved
    sent = _sent_at(rig, new, base + 30, base + 150)
    # At once on its first round, then every resend delay from there.
    assert sent == [(base + 30, False), (base + 100, False)]


def test_a_new_leader_keeps_re_sending_a_resolution_for_its_retention() -> None:
    rules = ruleset(RULES)
    rig = _rig()
    old = rig.evaluator(rules)
    base = T0 + old.snapshot()[0].phase_ms / 1000
    _feed(rig, base - 30, base + 15, 90.0)
    _feed(rig, base + 20, base + 1200, 20.0)
    assert _sent_at(rig, old, base, base + 30) == [(base, False), (base + 20, True)]
    old.follow()
    rig.notifier = MemoryNotifier()
    new = rig.evaluator(rules)
    retention_end = base + 20 + RESOLVED_RETENTION_MS / 1000
    sent = _sent_at(rig, new, base + 40, base + 1200)
    assert sent[0] == (base + 40, True)  # at once, though the old one sent it 20 s ago
    assert all(resolved for _, resolved in sent)
    gaps = {b - a for (a, _), (b, _) in itertools.pairwise(sent)}
    assert gaps == {RESEND_S + 10}  # every resend delay (at the next 10 s round)
    assert retention_end - (RESEND_S + 10) < sent[-1][0] <= retention_end
