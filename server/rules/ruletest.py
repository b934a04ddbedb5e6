"""``promtool test rules`` files, run through dcmon's evaluator: the same files pass under both.

A test file names rule files, an evaluation interval and test groups; each group loads its input
series into a ``MemorySeries``, evaluates every rule group from time 0 to the last ``eval_time``
at each interval (writing rule output back, so rules read each other), compares the alerts
firing at each ``eval_time`` with ``exp_alerts`` and evaluates ``promql_expr_test`` queries
afterwards. Failures are reported in promtool's words. dcmon's extensions are evaluated too,
so a test file checks a dcmon rule file here and its export under promtool.
"""

from __future__ import annotations

import glob
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import yaml

from server.promql.engine import Engine
from server.promql.errors import PromQLError
from server.promql.seam import MemorySeries
from server.promql.values import Labels, Scalar, Vector
from server.rules import group as evaluator
from server.rules import state as machine
from server.rules.duration import format_duration, parse_duration
from server.rules.errors import RuleFileError, TestFileError
from server.rules.gofmt import go_quote, shortest_digits
from server.rules.load import load_file
from server.rules.model import AlertingRule, Group
from server.rules.notation import parse_metric, parse_values
from server.rules.yamlnodes import Map, read

_FILE_KEYS = {"rule_files", "evaluation_interval", "group_eval_order", "tests", "fuzzy_compare"}
_GROUP_KEYS = {
    "interval", "input_series", "alert_rule_test", "promql_expr_test", "external_labels",
    "external_url", "name",
}  # fmt: skip


@dataclass(frozen=True)
class FileResult:
    path: str
    errors: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


class _Sink:
    def __init__(self, series: MemorySeries) -> None:
        self._series = series

    def write(self, labels: Labels, ts_ms: int, value: float) -> None:
        self._series.add(labels, [ts_ms], [value])


def _map(value: object, where: str) -> Map:
    if not isinstance(value, Map):
        raise TestFileError(f"{where} must be a mapping")
    return value


def _list(value: object, where: str) -> list[object]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise TestFileError(f"{where} must be a list")
    return value


def _strict(node: Map, allowed: set[str], where: str) -> None:
    for key in node.items:
        if key not in allowed:
            raise TestFileError(f"line {node.lines[key]}: field {key} not found in {where}")


def _duration(value: object, default_ms: int) -> int:
    if value is None:
        return default_ms
    try:
        return parse_duration(str(value))
    except ValueError as exc:
        raise TestFileError(str(exc)) from exc


def run_file(path: str) -> FileResult:
    """Returns: the outcome of the test file at ``path`` (errors as promtool words them)."""
    try:
        return FileResult(path, _run(path))
    except (TestFileError, RuleFileError) as exc:
        return FileResult(path, [exc.message])
    except (OSError, yaml.YAMLError) as exc:
        return FileResult(path, [str(exc)])


def _run(path: str) -> list[str]:
    with open(path, encoding="utf-8") as handle:
        document, duplicates = read(handle.read())
    if duplicates:
        raise TestFileError("; ".join(duplicates))
    top = _map(document, "a test file")
    _strict(top, _FILE_KEYS, "the test file")
    interval = _duration(top.items.get("evaluation_interval"), 60_000) or 60_000
    base = os.path.dirname(path)
    files: list[str] = []
    for pattern in _list(top.items.get("rule_files"), "rule_files"):
        full = str(pattern) if os.path.isabs(str(pattern)) else os.path.join(base, str(pattern))
        files.extend(sorted(glob.glob(full)))
    order_list = [str(n) for n in _list(top.items.get("group_eval_order"), "group_eval_order")]
    if len(set(order_list)) != len(order_list):
        repeated = next(n for n in order_list if order_list.count(n) > 1)
        raise TestFileError(f"group name repeated in evaluation order: {repeated}")
    order = {name: i for i, name in enumerate(order_list)}
    groups: list[Group] = [g for f in files for g in load_file(f).groups]
    groups.sort(key=lambda g: order.get(g.name, 0))
    errors: list[str] = []
    for raw in _list(top.items.get("tests"), "tests"):
        errors.extend(_test_group(_map(raw, "a test group"), groups, interval))
    return errors


@dataclass(frozen=True)
class _AlertCase:
    eval_ms: int
    alertname: str
    expected: list[tuple[Labels, Labels]]


def _pairs(value: object) -> Labels:
    if value is None:
        return ()
    node = _map(value, "labels")
    return tuple(sorted((k, str(v)) for k, v in node.items.items()))


def _alert_cases(raw: Sequence[object], name: str) -> list[_AlertCase]:
    cases = []
    for item in raw:
        node = _map(item, "an alert test")
        alertname = str(node.items.get("alertname") or "")
        eval_ms = _duration(node.items.get("eval_time"), 0)
        if not alertname:
            where = f" (in TestGroup {name})" if name else ""
            raise TestFileError(
                "an item under alert_rule_test misses required attribute alertname at "
                f"eval_time {format_duration(eval_ms)}{where}"
            )
        expected = []
        for alert in _list(node.items.get("exp_alerts"), "exp_alerts"):
            alert_node = _map(alert, "an expected alert")
            labels = dict(_pairs(alert_node.items.get("exp_labels")))
            labels["alertname"] = alertname
            expected.append(
                (tuple(sorted(labels.items())), _pairs(alert_node.items.get("exp_annotations")))
            )
        cases.append(_AlertCase(eval_ms, alertname, expected))
    return cases


def _test_group(node: Map, groups: list[Group], eval_interval: int) -> list[str]:
    _strict(node, _GROUP_KEYS, "the test group")
    name = str(node.items.get("name") or "")
    interval = _duration(node.items.get("interval"), eval_interval) or eval_interval
    series = MemorySeries()
    for item in _list(node.items.get("input_series"), "input_series"):
        item_node = _map(item, "an input series")
        try:
            labels = parse_metric(str(item_node.items.get("series", "")))
            points = parse_values(str(item_node.items.get("values", "")))
        except ValueError as exc:
            raise TestFileError(str(exc)) from exc
        times = [i * interval for i, v in enumerate(points) if v is not None]
        series.add(labels, times, [v for v in points if v is not None])
    alert_cases = _alert_cases(_list(node.items.get("alert_rule_test"), "alert_rule_test"), name)
    expr_cases = [
        _map(c, "a promql test")
        for c in _list(node.items.get("promql_expr_test"), "promql_expr_test")
    ]
    max_ms = max(
        [c.eval_ms for c in alert_cases]
        + [_duration(c.items.get("eval_time"), 0) for c in expr_cases]
        + [0]
    )
    options = evaluator.Options(
        external_labels=dict(_pairs(node.items.get("external_labels"))),
        external_url=str(node.items.get("external_url") or ""),
    )
    states = [evaluator.GroupState() for _ in groups]
    sink = _Sink(series)
    errors: list[str] = []
    pending_cases = sorted(alert_cases, key=lambda c: c.eval_ms)
    ts = 0
    while ts <= max_ms:
        eval_errors = []
        for index, group in enumerate(groups):
            states[index], outcomes = evaluator.evaluate(
                group, states[index], series, sink, ts, options
            )
            eval_errors += [
                f"    rule: {o.name}, time: {go_duration(ts)}, err: {o.error}"
                for o in outcomes
                if o.error is not None
            ]
        errors += eval_errors
        if eval_errors:
            return errors
        while pending_cases and ts <= pending_cases[0].eval_ms < ts + eval_interval:
            case = pending_cases.pop(0)
            got = _firing(groups, states, case.alertname)
            expected = sorted(case.expected)
            if got != expected:
                prefix = f"    name: {name},\n" if name else ""
                errors.append(
                    f"{prefix}    alertname: {case.alertname}, "
                    f"time: {format_duration(case.eval_ms)}, "
                    f"\n        exp:{_indent(_alerts_text(expected), '            ')}, "
                    f"\n        got:{_indent(_alerts_text(got), '            ')}"
                )
        ts += eval_interval
    errors += [_expr_case(case, series) for case in expr_cases]
    return [e for e in errors if e]


def _firing(
    groups: list[Group], states: list[evaluator.GroupState], alertname: str
) -> list[tuple[Labels, Labels]]:
    got = []
    for group, group_state in zip(groups, states, strict=True):
        for index, rule in enumerate(group.rules):
            if isinstance(rule, AlertingRule) and rule.alert == alertname:
                alerts = group_state.alerts.get(index, {}).values()
                got += [(a.labels, a.annotations) for a in machine.firing(alerts)]
    return sorted(got)


def _labels_text(labels: Labels) -> str:
    return "{" + ", ".join(f"{k}={go_quote(v)}" for k, v in labels) + "}"


def _alerts_text(alerts: list[tuple[Labels, Labels]]) -> str:
    if not alerts:
        return "[]"
    parts = [
        f"{i}:" + _indent(f"\nLabels:{_labels_text(lab)}\nAnnotations:{_labels_text(ann)}", "  ")
        for i, (lab, ann) in enumerate(alerts)
    ]
    return "[\n" + ",\n".join(parts) + "\n]"


def _indent(text: str, indent: str) -> str:
    lines = text.split("\n")
    return "\n".join([lines[0], *(indent + line for line in lines[1:])])


def _expr_case(case: Map, series: MemorySeries) -> str:
    expr = str(case.items.get("expr") or "")
    eval_ms = _duration(case.items.get("eval_time"), 0)
    head = f"    expr: {go_quote(expr)}, time: {format_duration(eval_ms)}"
    try:
        value = Engine(series).instant(expr, eval_ms).value
    except PromQLError as exc:
        return f"{head}, err: {exc.message}"
    got: list[tuple[Labels, float]]
    if isinstance(value, Scalar):
        got = [((), float(value.values[0]))]
    elif isinstance(value, Vector):
        got = [(s.labels, float(s.values[0])) for s in value.series if bool(s.present[0])]
    else:
        return f"{head}, err: rule result is not a vector or scalar"
    expected: list[tuple[Labels, float]] = []
    for sample in _list(case.items.get("exp_samples"), "exp_samples"):
        node = _map(sample, "an expected sample")
        try:
            labels = parse_metric(str(node.items.get("labels") or "{}"))
        except ValueError as exc:
            return f'{head}, err: labels "{node.items.get("labels")}": {exc}'
        expected.append((labels, float(str(node.items.get("value", 0)))))
    got.sort(key=lambda s: s[0])
    expected.sort(key=lambda s: s[0])
    if _same(expected, got):
        return ""
    return f"{head},\n        exp: {_samples_text(expected)}\n        got: {_samples_text(got)}"


def _same(a: list[tuple[Labels, float]], b: list[tuple[Labels, float]]) -> bool:
    return len(a) == len(b) and all(
        x[0] == y[0] and x[1] == y[1] for x, y in zip(a, b, strict=True)
    )


def _samples_text(samples: list[tuple[Labels, float]]) -> str:
    if not samples:
        return "nil"
    return ", ".join(f"{_labels_text(labels)} {go_float_e(value)}" for labels, value in samples)


def go_float_e(value: float) -> str:
    """Returns: Go's ``strconv.FormatFloat(v, 'E', -1, 64)`` (``5E+01``)."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    sign = "-" if math.copysign(1.0, value) < 0 else ""
    digits, point = shortest_digits(value)
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    exp = point - 1 if value != 0 else 0
    return f"{sign}{mantissa}E{'-' if exp < 0 else '+'}{abs(exp):02d}"


def go_duration(ms: int) -> str:
    """Returns: Go's ``time.Duration.String()`` of ``ms`` milliseconds (``1m30s``, ``0s``)."""
    if ms == 0:
        return "0s"
    sign = "-" if ms < 0 else ""
    ms = abs(ms)
    if ms < 1000:
        return f"{sign}{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    text = f"{seconds}" + (f".{millis:03d}".rstrip("0") if millis else "") + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{text}"
    if minutes:
        return f"{sign}{minutes}m{text}"
    return sign + text
