"""The rule pack under alerts/: every file loads and exports to rules promtool accepts, every
test file passes under dcmon and (against the export) under real promtool, every rule is tested
firing and documented, every selector names a metric dcmon exports, and the XID classes match
the agent's XID table."""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent.wire.catalog import Catalog, default_catalog
from server.promql import plan
from server.promql.parse import parse
from server.rules.export import export_text
from server.rules.load import load_file
from server.rules.model import AlertingRule, RuleFile
from server.rules.ruletest import run_file
from tests.integration import require_binary

ROOT = Path(__file__).resolve().parents[3]
ALERTS = ROOT / "alerts"
TESTS = ALERTS / "tests"
XID_TABLE = ROOT / "agent" / "events" / "xid.toml"
RULE_FILES = sorted(ALERTS.glob("*.yaml"))
TEST_FILES = sorted(TESTS.glob("*.yaml"))
SEVERITIES = {"critical", "warning", "info"}
# Series the rules engine itself writes, and labels every node series carries.
ENGINE_SERIES = {"ALERTS", "ALERTS_FOR_STATE"}
NODE_LABELS = {"instance"}


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = require_binary("promtool")
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=120, check=False
    )


def _pack() -> list[RuleFile]:
    return [load_file(str(path)) for path in RULE_FILES]


def _alerting(files: list[RuleFile]) -> Iterator[tuple[str, AlertingRule]]:
    for rule_file in files:
        for group in rule_file.groups:
            for rule in group.rules:
                if isinstance(rule, AlertingRule):
                    yield Path(rule_file.path).name, rule


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The pack exported to pure Prometheus files, with the test files beside it as in alerts/
    (so their ``../x.yaml`` rule_files name the exported copies)."""
    out = tmp_path_factory.mktemp("pack")
    for path in RULE_FILES:
        (out / path.name).write_text(export_text([load_file(str(path))]))
    (out / "tests").mkdir()
    for path in TEST_FILES:
        shutil.copy(path, out / "tests" / path.name)
    return out


def test_the_pack_has_its_files_and_tests() -> None:
    names = {path.name for path in RULE_FILES}
    expected = {"host.yaml", "gpu.yaml", "gpu_perf.yaml", "jobs.yaml", "dcmon.yaml", "bench.yaml"}
    assert expected <= names
    assert len(TEST_FILES) >= len(RULE_FILES)


def test_promtool_accepts_every_exported_file(exported: Path) -> None:
    checked = _promtool("check", "rules", *(str(exported / p.name) for p in RULE_FILES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout.count("SUCCESS") == len(RULE_FILES), checked.stdout


@pytest.mark.parametrize("test_file", TEST_FILES, ids=lambda p: p.name)
def test_every_test_file_passes_here_and_under_promtool(test_file: Path, exported: Path) -> None:
    assert run_file(str(test_file)).errors == []
    ran = _promtool("test", "rules", str(exported / "tests" / test_file.name))
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "SUCCESS" in ran.stdout


def _firing_expectations() -> set[tuple[str, str, str]]:
    """Returns: (rule file name, alertname, severity) of every non-empty expectation."""
    seen: set[tuple[str, str, str]] = set()
    for path in TEST_FILES:
        doc = yaml.safe_load(path.read_text())
        rule_files = {Path(name).name for name in doc["rule_files"]}
        for test in doc["tests"]:
            for case in test.get("alert_rule_test", []):
                for alert in case.get("exp_alerts") or []:
                    severity = alert["exp_labels"].get("severity", "")
                    for name in rule_files:
                        seen.add((name, case["alertname"], severity))
    return seen


def _untested(files: list[RuleFile], seen: set[tuple[str, str, str]]) -> list[str]:
    missing = []
    for file_name, rule in _alerting(files):
        severity = dict(rule.labels).get("severity", "")
        if (file_name, rule.alert, severity) not in seen:
            missing.append(f"{file_name}: {rule.alert} ({severity})")
    return missing


def test_every_rule_has_a_test_that_sees_it_fire() -> None:
    files = _pack()
    seen = _firing_expectations()
    assert _untested(files, seen) == []
    # The check itself can fail: drop one expectation and that rule is reported.
    assert _untested(files, seen - {("jobs.yaml", "JobGpuIdle", "info")}) == [
        "jobs.yaml: JobGpuIdle (info)"
    ]


def test_every_rule_is_documented_and_has_a_known_severity() -> None:
    for file_name, rule in _alerting(_pack()):
        where = f"{file_name}: {rule.alert}"
        annotations = dict(rule.annotations)
        for key in ("summary", "description", "runbook"):
            assert annotations.get(key, "").strip(), f"{where} has no {key}"
        runbook = annotations["runbook"]
        assert runbook.startswith("https://") or len(runbook.split()) >= 5, where
        assert dict(rule.labels).get("severity") in SEVERITIES, where


def _series_names(spec_name: str, spec_type: str) -> list[str]:
    if spec_type in ("histogram", "summary"):
        return [f"{spec_name}{suffix}" for suffix in ("_bucket", "_sum", "_count")]
    return [spec_name]


def _known_labels(catalog: Catalog) -> dict[str, frozenset[str]]:
    """Returns: every series name dcmon exports, with the labels its selector may match."""
    known: dict[str, frozenset[str]] = {}
    for spec in catalog.values():
        labels = spec.label_set | NODE_LABELS
        for name in _series_names(spec.name, spec.type):
            known[name] = labels | ({"le"} if name.endswith("_bucket") else set())
    return known


def selector_problems(expr: str, known: dict[str, frozenset[str]]) -> list[str]:
    """Returns: each selector of ``expr`` that names no exported series, has no metric name,
    or matches a label that series does not have."""
    problems = []
    for node in plan.walk(parse(expr)):
        if not isinstance(node, plan.VectorSelector):
            continue
        if node.name is None:
            problems.append(f"a selector without a metric name in {expr!r}")
            continue
        if node.name in ENGINE_SERIES:
            continue
        if node.name not in known:
            problems.append(f"unknown metric {node.name}")
            continue
        for matcher in node.matchers:
            if matcher.name != "__name__" and matcher.name not in known[node.name]:
                problems.append(f"{node.name} has no label {matcher.name}")
    return problems


def test_every_selector_names_a_metric_dcmon_exports() -> None:
    known = _known_labels(default_catalog())
    problems = []
    for file_name, rule in _alerting(_pack()):
        for expr in (rule.expr, rule.dcmon.hold, rule.dcmon.data):
            if expr is not None:
                problems += [
                    f"{file_name}: {rule.alert}: {p}" for p in selector_problems(expr, known)
                ]
    assert problems == []
    # Typos are caught: a misspelt name, a label the metric lacks, a nameless selector.
    assert selector_problems("node_load_1 > 2", known) == ["unknown metric node_load_1"]
    assert selector_problems('dcmon_gpu_up{reason="x"} == 0', known) == [
        "dcmon_gpu_up has no label reason"
    ]
    assert selector_problems('{__name__=~"node_.+"}', known) != []
    assert selector_problems("rate(dcmon_server_ingest_duration_seconds_count[5m])", known) == []


def _xid_codes(rule: AlertingRule) -> tuple[str, set[int]]:
    """Returns: the xid matcher's operator and codes of an XID rule, which every one of its
    selectors (the increase and the new-counter arms) must share."""
    found = set()
    for node in plan.walk(parse(rule.expr)):
        if isinstance(node, plan.VectorSelector):
            (matcher,) = [m for m in node.matchers if m.name == "xid"]
            assert re.fullmatch(r"\d+(\|\d+)*", matcher.value), matcher.value
            found.add((matcher.op.value, matcher.value))
    assert len(found) == 1, f"{rule.alert}: its selectors differ in their xid codes: {found}"
    ((op, codes),) = found
    return op, {int(code) for code in codes.split("|")}


def _xid_classes(table: dict[str, Any]) -> dict[str, set[int]]:
    entries = table["xid"]
    return {
        "fatal": {e["code"] for e in entries if e["severity"] == "critical"},
        "application": {
            e["code"]
            for e in entries
            if e["severity"] == "warning" and e["action"] == "RESTART_APP"
        },
        "info": {e["code"] for e in entries if e["severity"] == "info"},
    }


def _drops_instance(expr: str) -> list[str]:
    """Returns: the aggregations of ``expr`` whose result no longer carries ``instance``."""
    return [
        f"{node.op} {'without' if node.without else 'by'} ({', '.join(node.grouping)})"
        for node in plan.walk(parse(expr))
        if isinstance(node, plan.Aggregate) and (("instance" in node.grouping) == node.without)
    ]


def test_every_alert_keeps_the_node_it_is_about() -> None:
    """A node's alert must carry its ``instance``: the hold of a down or catching-up node and
    the NodeDown inhibition find its alerts by it (an alert without it resolves silently)."""
    pack = [load_file(str(path)) for path in RULE_FILES]
    problems = [
        f"{name}: {rule.alert}: {agg}"
        for name, rule in _alerting(pack)
        for agg in _drops_instance(rule.expr)
    ]
    assert problems == []
    # the check can fail
    assert _drops_instance("max by (gpu) (x) > 1") == ["max by (gpu)"]
    assert _drops_instance("sum without (instance) (x)") == ["sum without (instance)"]
    assert _drops_instance("max by (instance, gpu) (x)") == []


def test_xid_classes_match_the_agents_xid_table() -> None:
    table = tomllib.loads(XID_TABLE.read_text())
    classes = _xid_classes(table)
    assert table["default"]["severity"] == "warning"  # unlisted codes belong in GpuXidWarning
    rules = {rule.alert: rule for _, rule in _alerting([load_file(str(ALERTS / "gpu.yaml"))])}
    assert _xid_codes(rules["GpuXidFatal"]) == ("=~", classes["fatal"])
    assert _xid_codes(rules["GpuXidApplication"]) == ("=~", classes["application"])
    # Every other code, listed or not, is a warning: the complement of the three classes.
    everything_else = classes["fatal"] | classes["application"] | classes["info"]
    assert _xid_codes(rules["GpuXidWarning"]) == ("!~", everything_else)
    # The comparison can fail: the classes differ from one another.
    assert classes["fatal"] != classes["application"] and 79 in classes["fatal"]
