"""Rule files in: YAML text -> validated ``model.RuleFile``, with Prometheus' checks.

Every problem is collected and reported together, each naming the file, the group, the rule
(position and name) and the field, as ``promtool check rules`` does: unknown or duplicate keys,
bad durations, expressions the engine's parser refuses, invalid record or label names, fields a
recording rule may not have, templates outside the supported subset, and dcmon's extensions.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import yaml

from server.promql.errors import PromQLError
from server.promql.parse import parse as parse_promql
from server.promql.plan import ValueType
from server.rules import compile as compiler
from server.rules import template
from server.rules.duration import parse_duration
from server.rules.errors import RuleFileError, TemplateError
from server.rules.model import (
    AlertingRule,
    Extensions,
    Group,
    NoData,
    Pairs,
    RecordingRule,
    Rule,
    RuleFile,
)
from server.rules.yamlnodes import Map, read

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")
_FILE_KEYS = {"groups"}
_GROUP_KEYS = {"name", "interval", "query_offset", "limit", "labels", "rules"}
_RULE_KEYS = {
    "record", "alert", "expr", "for", "keep_firing_for", "labels", "annotations", "dcmon",
}  # fmt: skip
_DCMON_KEYS = {"hold", "no_data", "data", "notify_delay"}


def load_file(path: str) -> RuleFile:
    """Returns: the rule file at ``path``. Raises: RuleFileError (also when unreadable)."""
    try:
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        raise RuleFileError([f"{path}: {exc.strerror or exc}"]) from exc
    return load_text(text, path)


def load_text(text: str, path: str = "<rules>") -> RuleFile:
    """Returns: the rule file ``text`` (named ``path`` in errors). Raises: RuleFileError."""
    try:
        document, duplicates = read(text)
    except yaml.YAMLError as exc:
        raise RuleFileError([f"{path}: {exc}"]) from exc
    problems = [f"{path}: {d}" for d in duplicates]
    groups: list[Group] = []
    if document is not None:
        if not isinstance(document, Map):
            raise RuleFileError([f"{path}: a rule file is a mapping with 'groups'"])
        _unknown(document, _FILE_KEYS, lambda m: problems.append(f"{path}: {m}"))
        raw_groups = document.items.get("groups") or []
        if not isinstance(raw_groups, list):
            problems.append(f"{path}: 'groups' must be a list")
            raw_groups = []
        names: set[str] = set()
        for raw in raw_groups:
            group = _group(raw, path, problems)
            if group is None:
                continue
            if group.name in names:
                problems.append(f'{path}: groupname: "{group.name}" is repeated in the same file')
            names.add(group.name)
            groups.append(group)
    if problems:
        raise RuleFileError(problems)
    return RuleFile(path, tuple(groups))


def _unknown(node: Map, allowed: set[str], report: Callable[[str], None]) -> None:
    for key in node.items:
        if key not in allowed:
            report(f"line {node.lines[key]}: field {key} not found (unknown key)")


def _duration(value: object, report: Callable[[str], None], name: str) -> int | None:
    if value is None:
        return None
    try:
        return parse_duration(str(value))
    except ValueError as exc:
        report(f"field '{name}': {exc}")
        return None


def _pairs(value: object, report: Callable[[str], None], name: str, *, labels: bool) -> Pairs:
    if value is None:
        return ()
    if not isinstance(value, Map):
        report(f"field '{name}' must be a mapping")
        return ()
    pairs: list[tuple[str, str]] = []
    kind = "label" if labels else "annotation"
    for key, item in value.items.items():
        if not _LABEL_NAME.match(key) or (labels and key == "__name__"):
            report(f"invalid {kind} name: {key}")
        if isinstance(item, Map | list) or item is None:
            report(f"{kind} {key!r}: value must be a string")
            continue
        pairs.append((key, _scalar_text(item)))
    return tuple(pairs)


def _scalar_text(item: object) -> str:
    if isinstance(item, bool):
        return "true" if item else "false"
    return str(item)


def _group(raw: object, path: str, problems: list[str]) -> Group | None:
    if not isinstance(raw, Map):
        problems.append(f"{path}: a group must be a mapping")
        return None
    name = _scalar_text(raw.items.get("name") or "")

    def report(message: str) -> None:
        problems.append(f'{path}: group "{name}": {message}')

    if not name:
        problems.append(f"{path}: {raw.line}:1: Groupname must not be empty")
    _unknown(raw, _GROUP_KEYS, report)
    limit = raw.items.get("limit", 0)
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
        report(f"field 'limit': must be a non-negative integer, not {limit!r}")
        limit = 0
    labels = _pairs(raw.items.get("labels"), report, "labels", labels=True)
    raw_rules = raw.items.get("rules") or []
    if not isinstance(raw_rules, list):
        report("field 'rules' must be a list")
        raw_rules = []
    rules = []
    for index, raw_rule in enumerate(raw_rules, start=1):
        rule = _rule(raw_rule, index, path, name, problems)
        if rule is not None:
            rules.append(rule)
    interval = _duration(raw.items.get("interval"), report, "interval")
    if interval == 0:
        interval = None
    return Group(
        name=name,
        rules=tuple(rules),
        interval_ms=interval,
        query_offset_ms=_duration(raw.items.get("query_offset"), report, "query_offset"),
        limit=limit,
        labels=labels,
    )


def _rule(  # noqa: PLR0912 - one branch per Prometheus check
    raw: object,
    index: int,
    path: str,
    group: str,
    problems: list[str],
) -> Rule | None:
    if not isinstance(raw, Map):
        problems.append(f'{path}: group "{group}", rule {index}: a rule must be a mapping')
        return None
    items = raw.items
    record = _scalar_text(items.get("record") or "")
    alert = _scalar_text(items.get("alert") or "")
    name = record or alert

    def report(message: str) -> None:
        problems.append(f'{path}: {raw.line}: group "{group}", rule {index}, "{name}": {message}')

    _unknown(raw, _RULE_KEYS, report)
    if record and alert:
        report("only one of 'record' and 'alert' must be set")
    if not record and not alert:
        report("one of 'record' or 'alert' must be set")
    expr = items.get("expr")
    expr_text = "" if expr is None else _scalar_text(expr)
    if not expr_text:
        report("field 'expr' must be set in rule")
    else:
        _check_expr(expr_text, report, "expr")
    labels = _pairs(items.get("labels"), report, "labels", labels=True)
    annotations = _pairs(items.get("annotations"), report, "annotations", labels=False)
    for_ms = _duration(items.get("for"), report, "for") or 0
    keep_ms = _duration(items.get("keep_firing_for"), report, "keep_firing_for") or 0
    if record:
        if annotations:
            report("invalid field 'annotations' in recording rule")
        if for_ms:
            report("invalid field 'for' in recording rule")
        if keep_ms:
            report("invalid field 'keep_firing_for' in recording rule")
        if "dcmon" in items:
            report("invalid field 'dcmon' in recording rule (its extensions are for alerts)")
        if not _METRIC_NAME.match(record):
            report(f"invalid recording rule name: {record}")
        return RecordingRule(record, expr_text, labels, raw.line)
    for kind, pairs in (("label", labels), ("annotation", annotations)):
        for key, text in pairs:
            try:
                template.parse(text)
            except TemplateError as exc:
                report(f"{kind} {key!r}: {exc.message}")
    extensions = _extensions(items.get("dcmon"), report)
    rule = AlertingRule(
        alert, expr_text, for_ms, keep_ms, labels, annotations, extensions, raw.line
    )
    if expr_text and extensions.no_data is not NoData.OK and extensions.data is None:
        try:
            compiler.data_selector(rule)
        except ValueError as exc:
            report(f"field 'dcmon.data': {exc}")
    return rule


def _check_expr(text: str, report: Callable[[str], None], field: str) -> None:
    try:
        node = parse_promql(text)
    except PromQLError as exc:
        report(f"field '{field}': could not parse expression: {exc.message}")
        return
    if node.type not in (ValueType.VECTOR, ValueType.SCALAR):
        report(f"field '{field}': a rule expression must be an instant vector or a scalar")


def _extensions(raw: object, report: Callable[[str], None]) -> Extensions:
    if raw is None:
        return Extensions()
    if not isinstance(raw, Map):
        report("field 'dcmon' must be a mapping")
        return Extensions()
    _unknown(raw, _DCMON_KEYS, lambda m: report(f"dcmon: {m}"))
    hold = raw.items.get("hold")
    hold_text = None if hold is None else _scalar_text(hold)
    if hold_text is not None:
        _check_expr(hold_text, report, "dcmon.hold")
    data = raw.items.get("data")
    data_text = None if data is None else _scalar_text(data)
    if data_text is not None:
        _check_expr(data_text, report, "dcmon.data")
    no_data_text = _scalar_text(raw.items.get("no_data", "ok"))
    try:
        no_data = NoData(no_data_text)
    except ValueError:
        choices = ", ".join(m.value for m in NoData)
        report(f"field 'dcmon.no_data': {no_data_text!r} is not one of {choices}")
        no_data = NoData.OK
    delay = _duration(raw.items.get("notify_delay"), report, "dcmon.notify_delay") or 0
    return Extensions(hold_text, no_data, data_text, delay)
