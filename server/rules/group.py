"""One evaluation of a rule group: rules in order, at one time, through the PromQL engine.

``evaluate(group, state, source, sink, ts_ms)`` runs every rule of ``group`` at ``ts_ms -
query_offset`` over ``source`` and writes what Prometheus' rule manager appends: recording
rules' samples, ``ALERTS`` and ``ALERTS_FOR_STATE``, and a stale marker for each series a rule
wrote last time and not now. It writes through ``sink`` after each rule, so a later rule of the
group reads an earlier one's output when the sink feeds the source. Alert state goes in and out
as ``GroupState`` (plain data, storable); nothing is kept here between calls.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from server.promql.engine import Engine
from server.promql.errors import PromQLError
from server.promql.seam import RawSeries, SeriesSource
from server.promql.values import NAME, Labels, Scalar, Vector, stale_nan
from server.rules import compile as compiler
from server.rules import state as machine
from server.rules import template
from server.rules.model import AlertingRule, Group, Pairs, RecordingRule


class SampleSink(Protocol):
    def write(self, labels: Labels, ts_ms: int, value: float) -> None: ...


@dataclass
class GroupState:
    """Per rule (by position in the group): its alerts, and the series it wrote last time."""

    alerts: dict[int, dict[Labels, machine.Alert]] = field(default_factory=dict)
    written: dict[int, set[Labels]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "alerts": {
                str(i): [a.to_dict() for a in alerts.values()] for i, alerts in self.alerts.items()
            },
            "written": {str(i): [dict(s) for s in sorted(w)] for i, w in self.written.items()},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, object]) -> GroupState:
        alerts_data = data.get("alerts", {})
        written_data = data.get("written", {})
        assert isinstance(alerts_data, Mapping) and isinstance(written_data, Mapping)
        alerts = {}
        for index, items in alerts_data.items():
            parsed = [machine.Alert.from_dict(item) for item in items]
            alerts[int(index)] = {a.labels: a for a in parsed}
        written = {
            int(index): {tuple(sorted(s.items())) for s in items}
            for index, items in written_data.items()
        }
        return cls(alerts, written)


@dataclass(frozen=True)
class RuleOutcome:
    """What one rule did in one evaluation."""

    name: str
    samples: list[tuple[Labels, float]]
    error: str | None = None


@dataclass(frozen=True)
class Options:
    default_offset_ms: int = 0
    external_labels: Mapping[str, str] = field(default_factory=dict)
    external_url: str = ""


def evaluate(
    group: Group,
    state: GroupState,
    source: SeriesSource,
    sink: SampleSink,
    ts_ms: int,
    options: Options | None = None,
) -> tuple[GroupState, list[RuleOutcome]]:
    """Returns: the group's state after evaluating it at ``ts_ms``, and each rule's outcome."""
    options = options or Options()
    offset = (
        group.query_offset_ms if group.query_offset_ms is not None else options.default_offset_ms
    )
    at_ms = ts_ms - offset
    new = GroupState(dict(state.alerts), dict(state.written))
    outcomes: list[RuleOutcome] = []
    for index, rule in enumerate(group.rules):
        if isinstance(rule, RecordingRule):
            samples, error = _record(rule, group, Engine(source), at_ms)
        else:
            alerts = new.alerts.get(index, {})
            samples, error, alerts = _alert(rule, group, alerts, source, at_ms, options)
            new.alerts[index] = alerts
        outcomes.append(RuleOutcome(rule.name, samples, error))
        if error is not None:
            continue
        current = {labels for labels, _ in samples}
        for labels, value in samples:
            sink.write(labels, at_ms, value)
        for labels in sorted(new.written.get(index, set()) - current):
            sink.write(labels, at_ms, stale_nan())
        new.written[index] = current
    return new, outcomes


def _samples(value: object) -> list[tuple[Labels, float]] | str:
    if isinstance(value, Scalar):
        return [((), float(value.values[0]))]
    if isinstance(value, Vector):
        return [(s.labels, float(s.values[0])) for s in value.series if bool(s.present[0])]
    return "rule result is not a vector or scalar"


def _set(labels: dict[str, str], pairs: Pairs) -> None:
    for key, value in pairs:
        if value == "":
            labels.pop(key, None)
        else:
            labels[key] = value


def _record(
    rule: RecordingRule, group: Group, engine: Engine, at_ms: int
) -> tuple[list[tuple[Labels, float]], str | None]:
    try:
        samples = _samples(engine.instant(rule.expr, at_ms).value)
    except PromQLError as exc:
        return [], exc.message
    if isinstance(samples, str):
        return [], samples
    out: dict[Labels, float] = {}
    for labels, value in samples:
        built = dict(labels)
        built[NAME] = rule.record
        _set(built, group.labels)
        _set(built, rule.labels)
        key = tuple(sorted(built.items()))
        if key in out:
            return [], "vector contains metrics with the same labelset after applying rule labels"
        out[key] = value
    if group.limit > 0 and len(out) > group.limit:
        return [], f"exceeded limit of {group.limit} with {len(out)} series"
    return list(out.items()), None


def _overlay_series(
    alerts: Mapping[Labels, machine.Alert], name: str, at_ms: int
) -> list[RawSeries]:
    ts = np.array([at_ms], dtype=np.int64)
    one = np.array([1.0])
    return [
        RawSeries(labels, ts, one)
        for labels, _ in machine.series(alerts.values(), name)
        if dict(labels)[NAME] == "ALERTS"
    ]


def _alert(
    rule: AlertingRule,
    group: Group,
    alerts: dict[Labels, machine.Alert],
    source: SeriesSource,
    at_ms: int,
    options: Options,
) -> tuple[list[tuple[Labels, float]], str | None, dict[Labels, machine.Alert]]:
    overlay = compiler.AlertsOverlay(source, rule.alert, _overlay_series(alerts, rule.alert, at_ms))
    try:
        result = Engine(overlay).instant(compiler.effective_expr(rule, group.labels), at_ms)
    except PromQLError as exc:
        return [], exc.message, alerts
    samples = _samples(result.value)
    if isinstance(samples, str):
        return [], samples, alerts
    label_templates = [(k, template.parse(v)) for k, v in (*group.labels, *rule.labels)]
    annotation_templates = [(k, template.parse(v)) for k, v in rule.annotations]
    elements: dict[Labels, machine.Element] = {}
    for labels, value in samples:
        data = template.Data(dict(labels), value, options.external_labels, options.external_url)
        built = {k: v for k, v in labels if k != NAME}
        _set(built, tuple((k, t.expand(data)) for k, t in label_templates))
        built["alertname"] = rule.alert
        key = tuple(sorted(built.items()))
        if key in elements:
            return (
                [],
                "vector contains metrics with the same labelset after applying alert labels",
                alerts,
            )
        annotations = tuple(sorted((k, t.expand(data)) for k, t in annotation_templates))
        elements[key] = machine.Element(key, annotations, value)
    params = machine.Params(rule.for_ms, rule.keep_firing_for_ms, group.limit)
    stepped = machine.step(alerts, params, list(elements.values()), at_ms)
    if stepped.error is not None:
        return [], stepped.error, stepped.alerts
    return machine.series(stepped.alerts.values(), rule.alert), None, stepped.alerts
