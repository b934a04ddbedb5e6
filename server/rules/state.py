"""The alert state machine: one rule's alerts, stepped once per evaluation. Pure.

``step(alerts, params, elements, ts_ms)`` takes the alerts after the previous evaluation and the
elements the rule's expression returned now (labels already built, annotations expanded), and
returns the alerts after this evaluation, exactly as Prometheus' ``AlertingRule.Eval`` moves
them (rules/alerting.go):

    new element            -> pending, active_at = ts
    pending, held >= for   -> firing, fired_at = ts      (no ``for``: fires at once)
    pending, element gone  -> deleted                    (one gap restarts the timer)
    firing, element gone   -> resolved at once, or after ``keep_firing_for`` without it
    resolved               -> kept 15 minutes (re-sent to Alertmanager), then deleted

A resolved alert whose element returns starts over as a new pending alert. ``series`` gives
the ``ALERTS`` and ``ALERTS_FOR_STATE`` samples of a round. ``Alert`` is a plain dataclass:
``to_dict``/``from_dict`` make a rule's state storable.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace

from server.promql.values import Labels

RESOLVED_RETENTION_MS = 15 * 60_000


class State(enum.Enum):
    INACTIVE = "inactive"
    PENDING = "pending"
    FIRING = "firing"


@dataclass(frozen=True)
class Element:
    """One element of the rule's result, ready to become an alert."""

    labels: Labels  # series labels - __name__ + rule labels + alertname, sorted
    annotations: Labels
    value: float


@dataclass(frozen=True)
class Alert:
    """One alert instance of a rule (Prometheus' ``rules.Alert``); times in ms."""

    labels: Labels
    annotations: Labels
    state: State
    value: float
    active_at_ms: int
    fired_at_ms: int | None = None
    resolved_at_ms: int | None = None
    keep_firing_since_ms: int | None = None
    last_sent_at_ms: int | None = None
    valid_until_ms: int | None = None

    def to_dict(self) -> dict[str, object]:
        data = asdict(self)
        data["labels"] = dict(self.labels)
        data["annotations"] = dict(self.annotations)
        data["state"] = self.state.value
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> Alert:
        def pairs(name: str) -> Labels:
            value = data[name]
            assert isinstance(value, Mapping)
            return tuple(sorted((str(k), str(v)) for k, v in value.items()))

        def number(name: str) -> int | None:
            value = data.get(name)
            return None if value is None else int(value)  # type: ignore[call-overload]

        active = number("active_at_ms")
        assert active is not None
        value = data["value"]
        assert isinstance(value, int | float)
        return cls(
            labels=pairs("labels"),
            annotations=pairs("annotations"),
            state=State(str(data["state"])),
            value=float(value),
            active_at_ms=active,
            fired_at_ms=number("fired_at_ms"),
            resolved_at_ms=number("resolved_at_ms"),
            keep_firing_since_ms=number("keep_firing_since_ms"),
            last_sent_at_ms=number("last_sent_at_ms"),
            valid_until_ms=number("valid_until_ms"),
        )


@dataclass(frozen=True)
class Params:
    """What the machine needs of a rule."""

    for_ms: int = 0
    keep_firing_for_ms: int = 0
    limit: int = 0  # 0: unlimited


class LimitExceeded(Exception):  # noqa: N818 (Prometheus' wording)
    """More alerts than the group's ``limit``; the rule's alerts are all dropped."""


@dataclass(frozen=True)
class Step:
    alerts: dict[Labels, Alert]
    error: str | None = None


def step(  # noqa: PLR0912 - mirrors AlertingRule.Eval branch for branch
    alerts: Mapping[Labels, Alert], params: Params, elements: Sequence[Element], ts_ms: int
) -> Step:
    """Returns: the alerts after the evaluation at ``ts_ms`` (see the module docstring).

    ``elements`` must have distinct labels (the caller reports duplicates). Over the limit, the
    result is no alerts and an error, as Prometheus resets the rule.
    """
    current = {e.labels: e for e in elements}
    result: dict[Labels, Alert] = dict(alerts)
    for labels, element in current.items():
        old = result.get(labels)
        if old is not None and old.state is not State.INACTIVE:
            result[labels] = replace(old, value=element.value, annotations=element.annotations)
        else:
            result[labels] = Alert(labels, element.annotations, State.PENDING, element.value, ts_ms)
    active = 0
    for labels, previous in list(result.items()):
        alert = previous
        if labels not in current:
            keep_firing = False
            if alert.state is State.FIRING and params.keep_firing_for_ms > 0:
                since = alert.keep_firing_since_ms
                if since is None:
                    since = ts_ms
                    alert = replace(alert, keep_firing_since_ms=since)
                keep_firing = ts_ms - since < params.keep_firing_for_ms
            retention_over = (
                alert.resolved_at_ms is not None
                and ts_ms - alert.resolved_at_ms > RESOLVED_RETENTION_MS
            )
            if alert.state is State.PENDING or retention_over:
                del result[labels]
                continue
            if alert.state is not State.INACTIVE and not keep_firing:
                result[labels] = replace(alert, state=State.INACTIVE, resolved_at_ms=ts_ms)
                continue
            if not keep_firing:
                result[labels] = alert
                continue
        else:
            alert = replace(alert, keep_firing_since_ms=None)
        active += 1
        if alert.state is State.PENDING and ts_ms - alert.active_at_ms >= params.for_ms:
            alert = replace(alert, state=State.FIRING, fired_at_ms=ts_ms)
        result[labels] = alert
    if params.limit > 0 and active > params.limit:
        return Step({}, f"exceeded limit of {params.limit} with {active} alerts")
    return Step(result)


def series(alerts: Iterable[Alert], alertname: str) -> list[tuple[Labels, float]]:
    """Returns: the ``ALERTS`` (1) and ``ALERTS_FOR_STATE`` (active_at in s) samples of pending
    and firing alerts, labels sorted."""
    out: list[tuple[Labels, float]] = []
    for alert in alerts:
        if alert.state is State.INACTIVE:
            continue
        base = {**dict(alert.labels), "alertname": alertname}
        alerts_labels = {**base, "__name__": "ALERTS", "alertstate": alert.state.value}
        out.append((tuple(sorted(alerts_labels.items())), 1.0))
        for_state = {**base, "__name__": "ALERTS_FOR_STATE"}
        out.append((tuple(sorted(for_state.items())), float(alert.active_at_ms // 1000)))
    return out


def firing(alerts: Iterable[Alert]) -> list[Alert]:
    """Returns: the alerts that are firing now (what ``promtool test rules`` compares)."""
    return [a for a in alerts if a.state is State.FIRING and a.resolved_at_ms is None]


def needs_sending(alert: Alert, ts_ms: int, resend_delay_ms: int, notify_delay_ms: int) -> bool:
    """Returns: whether to send ``alert`` to Alertmanager now: Prometheus' rule (never pending;
    a resolution at once; firing every ``resend_delay``) after dcmon's ``notify_delay``: a
    firing alert is held back until it has fired that long, and the resolution of one never
    sent is not sent either."""
    if alert.state is State.PENDING:
        return False
    if notify_delay_ms > 0:
        fired = alert.fired_at_ms
        if fired is None:
            return False
        if alert.state is State.FIRING and ts_ms - fired < notify_delay_ms:
            return False
        if alert.state is State.INACTIVE and alert.last_sent_at_ms is None:
            return False
    last = alert.last_sent_at_ms
    if alert.resolved_at_ms is not None and (last is None or alert.resolved_at_ms > last):
        return True
    return last is None or last + resend_delay_ms < ts_ms


def mark_sent(alert: Alert, ts_ms: int, resend_delay_ms: int, interval_ms: int) -> Alert:
    """Returns: ``alert`` as sent at ``ts_ms``; it stays valid for four intervals ("allow for
    two Eval or Alertmanager send failures"), so Alertmanager resolves it if dcmon stops."""
    return replace(
        alert, last_sent_at_ms=ts_ms, valid_until_ms=ts_ms + 4 * max(resend_delay_ms, interval_ms)
    )
