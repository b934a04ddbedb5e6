"""dcmon's alert extensions as plain PromQL: the expression a rule really evaluates.

Both the evaluator (group.py) and ``export`` use the same text, so a rule behaves the same in
dcmon and, exported, in Prometheus:

- hysteresis ``hold: H`` adds ``(H) and ignoring(<alert-only labels>) ALERTS{firing}``: once
  firing, the alert stays while H returns its series (the usual ALERTS idiom);
- ``no_data: alerting`` adds ``absent(<data>)``: the absence is itself an alert;
- ``no_data: keep_state`` adds the firing alerts' own series while ``absent(<data>)``, so an
  alert does not resolve because the telemetry stopped.

``<alert-only labels>`` are ``alertname``, ``alertstate`` and the rule's (and group's) label
names. The ALERTS idiom reads the previous evaluation's ALERTS series, so in Prometheus the
group interval must stay below the 5-minute lookback; dcmon's evaluator serves those series from
its own state (``AlertsOverlay``) and has no such limit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from server.promql import plan
from server.promql.parse import parse
from server.promql.seam import RawSeries, SeriesSource, labels_match
from server.rules.model import AlertingRule, NoData, Pairs


def quote(text: str) -> str:
    """Returns: ``text`` as a PromQL string literal."""
    return json.dumps(text, ensure_ascii=False)


def firing_selector(alertname: str, labels: Pairs = ()) -> str:
    """Returns: the selector of the rule's own firing alerts: its name and its fixed labels
    (two rules may share an alert name and differ in, say, ``severity``); a templated label
    value cannot be matched and is left out."""
    fixed = "".join(f", {k}={quote(v)}" for k, v in labels if "{{" not in v)
    return f'ALERTS{{alertname={quote(alertname)}, alertstate="firing"{fixed}}}'


def alert_only_labels(rule: AlertingRule, group_labels: Pairs = ()) -> list[str]:
    """Returns: the labels an alert has that its expression's series do not."""
    names = ["alertname", "alertstate"]
    for key, _ in (*group_labels, *rule.labels):
        if key not in names:
            names.append(key)
    return names


def _selector_text(selector: plan.VectorSelector) -> str:
    inner = ", ".join(
        f"{m.name}{m.op.value}{quote(m.value)}" for m in selector.matchers if m.name != "__name__"
    )
    names = [m for m in selector.matchers if m.name == "__name__"]
    if selector.name is not None and len(names) == 1:
        return f"{selector.name}{{{inner}}}" if inner else selector.name
    all_matchers = ", ".join(f"{m.name}{m.op.value}{quote(m.value)}" for m in selector.matchers)
    return "{" + all_matchers + "}"


def data_selector(rule: AlertingRule) -> str:
    """Returns: what ``absent()`` checks for the no-data policy: ``dcmon.data``, or else the
    expression's only metric selector. Raises: ValueError when that is ambiguous."""
    if rule.dcmon.data is not None:
        return rule.dcmon.data
    selectors = {
        _selector_text(node)
        for node in plan.walk(parse(rule.expr))
        if isinstance(node, plan.VectorSelector)
    }
    if len(selectors) != 1:
        found = ", ".join(sorted(selectors)) or "none"
        raise ValueError(
            f"the expression has {len(selectors)} selectors ({found}); "
            "say which one is the data with 'data: <selector>'"
        )
    return selectors.pop()


def effective_expr(rule: AlertingRule, group_labels: Pairs = ()) -> str:
    """Returns: the PromQL the rule evaluates: ``expr`` alone, or with its extensions."""
    ext = rule.dcmon
    if ext.hold is None and ext.no_data is NoData.OK:
        return rule.expr
    ignored = ", ".join(alert_only_labels(rule, group_labels))
    firing = firing_selector(rule.alert, (*group_labels, *rule.labels))
    parts = [f"({rule.expr})"]
    if ext.hold is not None:
        parts.append(f"(({ext.hold}) and ignoring({ignored}) {firing})")
    if ext.no_data is NoData.KEEP_STATE:
        data = data_selector(rule)
        parts.append(f"(max without({ignored}) ({firing}) and on() absent({data}))")
    elif ext.no_data is NoData.ALERTING:
        parts.append(f"absent({data_selector(rule)})")
    return " or ".join(parts)


class AlertsOverlay:
    """A ``SeriesSource`` that answers ``ALERTS{alertname="<rule>"}`` from the evaluator's own
    alert state and everything else from ``base``."""

    def __init__(self, base: SeriesSource, alertname: str, series: Sequence[RawSeries]) -> None:
        self._base = base
        self._alertname = alertname
        self._series = list(series)

    def select(
        self, matchers: Sequence[plan.Matcher], start_ms: int, end_ms: int
    ) -> list[RawSeries]:
        ours = any(
            m.name == "__name__" and m.op is plan.MatchOp.EQUAL and m.value == "ALERTS"
            for m in matchers
        ) and any(
            m.name == "alertname" and m.op is plan.MatchOp.EQUAL and m.value == self._alertname
            for m in matchers
        )
        if not ours:
            return self._base.select(matchers, start_ms, end_ms)
        return [s for s in self._series if labels_match(s.labels, matchers)]
