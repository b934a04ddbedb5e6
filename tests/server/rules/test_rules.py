"""The rules core against real promtool: the same test files pass (and fail) under both."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from server.rules import cli, state
from server.rules.errors import RuleFileError, TemplateError
from server.rules.export import export_text
from server.rules.load import load_file, load_text
from server.rules.ruletest import run_file
from server.rules.template import Data, parse
from tests.integration import require_binary

ROOT = Path(__file__).resolve().parents[3]
ALERTS = ROOT / "alerts"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = require_binary("promtool")
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=120, check=False
    )


def _exported_copy(tmp_path: Path, test_text: str) -> Path:
    """Writes the exported gpu.yaml and the test file pointing at it; returns the test path."""
    (tmp_path / "gpu.yaml").write_text(export_text([load_file(str(ALERTS / "gpu.yaml"))]))
    test = tmp_path / "gpu_test.yaml"
    test.write_text(test_text.replace("../gpu.yaml", "gpu.yaml"))
    return test


def test_starter_rules_pass_here_and_exported_under_promtool(tmp_path: Path) -> None:
    source = ALERTS / "tests" / "gpu_test.yaml"
    assert run_file(str(source)).errors == []
    test = _exported_copy(tmp_path, source.read_text())
    checked = _promtool("check", "rules", str(tmp_path / "gpu.yaml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    ran = _promtool("test", "rules", str(test))
    assert ran.returncode == 0, ran.stdout + ran.stderr


def test_a_wrong_expectation_fails_both_with_promtools_words(tmp_path: Path) -> None:
    text = (ALERTS / "tests" / "gpu_test.yaml").read_text()
    wrong = text.replace('hot (83 C)"', 'hot (84 C)"').replace("value: 180", "value: 181")
    (tmp_path / "ours").mkdir()
    shutil.copy(ALERTS / "gpu.yaml", tmp_path / "gpu.yaml")
    ours_path = tmp_path / "ours" / "gpu_test.yaml"
    ours_path.write_text(wrong)
    ours = run_file(str(ours_path))
    theirs = _promtool("test", "rules", str(_exported_copy(tmp_path / "ours", wrong)))
    assert theirs.returncode == 1
    assert len(ours.errors) == 3
    for error in ours.errors:
        assert error in theirs.stderr


def test_templates_render_as_prometheus_does(tmp_path: Path) -> None:
    """Every expected annotation below comes from dcmon's renderer; promtool must agree."""
    templates = {
        "plain": "{{ $value }} {{ $labels.instance }} [{{ $labels.nope }}]",
        "humanize": "{{ $value | humanize }} {{ humanize 0.0012 }} {{ humanize 0.0 }}",
        "h1024": "{{ humanize1024 1048576.0 }} {{ humanize1024 $value }}",
        "duration": "{{ humanizeDuration 90061.0 }} {{ humanizeDuration 0.25 }} "
        "{{ 3.5 | humanizeDuration }}",
        "percent": "{{ humanizePercentage 0.1234 }}",
        "stamp": "{{ humanizeTimestamp 1700000000.25 }}",
        "printf": '{{ printf "%.2f|%5.1f|%d|%s|%v|%q" $value 2.25 7 "x" 1e21 "a\\"b" }}',
        "case": '{{ toUpper $labels.job }} {{ title "gpu fan-speed" }} {{ toLower "ABC" }}',
        "regex": '{{ reReplaceAll "(.*):[0-9]+" "host=$1" $labels.instance }}',
        "branch": "{{ if gt $value 1000.0 }}big{{ else }}small{{ end }}",
        "strip": "{{ $labels.instance | stripPort }}",
    }
    series_labels = {"instance": "gpu01:9400", "job": "dcgm"}
    value = 1234567.0
    data = Data(series_labels, value)
    expected = {k: parse(t).expand(data) for k, t in templates.items()}
    assert expected["plain"] == "1.234567e+06 gpu01:9400 []"
    rules = "groups:\n- name: t\n  rules:\n  - alert: T\n    expr: m\n    annotations:\n"
    for key, text in templates.items():
        rules += f"      {key}: {_yaml(text)}\n"
    (tmp_path / "t.yaml").write_text(rules)
    test = [
        "rule_files: [t.yaml]",
        "tests:",
        "- input_series:",
        '  - series: \'m{instance="gpu01:9400", job="dcgm"}\'',
        f"    values: '{value}'",
        "  alert_rule_test:",
        "  - eval_time: 0m",
        "    alertname: T",
        "    exp_alerts:",
        "    - exp_labels: {instance: 'gpu01:9400', job: dcgm}",
        "      exp_annotations:",
        *(f"        {k}: {_yaml(v)}" for k, v in expected.items()),
    ]
    (tmp_path / "t_test.yaml").write_text("\n".join(test) + "\n")
    assert run_file(str(tmp_path / "t_test.yaml")).errors == []
    ran = _promtool("test", "rules", str(tmp_path / "t_test.yaml"))
    assert ran.returncode == 0, ran.stdout + ran.stderr


def _yaml(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_templates_outside_the_subset_are_refused() -> None:
    for bad in ['{{ query "up" }}', "{{ range . }}{{ end }}", "{{ $x := 1 }}", "{{ nope }}"]:
        with pytest.raises(TemplateError):
            parse(bad)


def test_rule_file_problems_name_file_group_rule_and_field() -> None:
    text = """
groups:
- name: g
  rules:
  - alert: A
    expr: up ==
    for: 5x
  - record: "bad name"
    expr: up
    annotations: {a: b}
  - alert: B
    expr: up
    bogus: 1
    labels: {x: "{{ query \\"up\\" }}"}
    dcmon: {no_data: maybe}
- name: g
  rules: []
"""
    with pytest.raises(RuleFileError) as caught:
        load_text(text, "f.yaml")
    problems = "\n".join(caught.value.problems)
    assert 'f.yaml: 5: group "g", rule 1, "A": field \'expr\': could not parse' in problems
    assert 'rule 1, "A": field \'for\': not a valid duration string: "5x"' in problems
    assert "invalid recording rule name: bad name" in problems
    assert "invalid field 'annotations' in recording rule" in problems
    assert 'rule 3, "B": line 13: field bogus not found' in problems
    assert 'template function "query" is not supported' in problems
    assert "'maybe' is not one of ok, keep_state, alerting" in problems
    assert 'groupname: "g" is repeated' in problems


def test_duplicate_keys_are_errors() -> None:
    with pytest.raises(RuleFileError, match='mapping key "expr" already defined'):
        load_text("groups:\n- name: g\n  rules:\n  - alert: A\n    expr: a\n    expr: b\n")


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["check", str(ALERTS / "gpu.yaml")]) == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("groups:\n- name: g\n  rules:\n  - alert: A\n")
    assert cli.main(["check", str(bad)]) == 1
    assert "field 'expr' must be set in rule" in capsys.readouterr().err
    out = tmp_path / "out.yaml"
    assert cli.main(["export", str(ALERTS / "gpu.yaml"), "-o", str(out)]) == 0
    exported = out.read_text()
    assert "hold:" not in exported and "no_data" not in exported and "absent(" in exported
    assert cli.main(["test", str(ALERTS / "tests" / "gpu_test.yaml")]) == 0


def _alert(elements: list[str], alerts: dict, ts: int, params: state.Params) -> dict:
    items = [state.Element((("a", e),), (), 1.0) for e in elements]
    return state.step(alerts, params, items, ts).alerts


def test_state_machine_for_keep_firing_and_retention() -> None:
    params = state.Params(for_ms=120_000, keep_firing_for_ms=120_000)
    alerts: dict = {}
    key = (("a", "x"),)
    alerts = _alert(["x"], alerts, 0, params)
    assert alerts[key].state is state.State.PENDING
    alerts = _alert(["x"], alerts, 60_000, params)
    assert alerts[key].state is state.State.PENDING
    alerts = _alert(["x"], alerts, 120_000, params)
    assert alerts[key].state is state.State.FIRING
    alerts = _alert([], alerts, 180_000, params)  # gone: keeps firing for 2m
    assert alerts[key].state is state.State.FIRING
    alerts = _alert([], alerts, 300_000, params)
    assert alerts[key].state is state.State.INACTIVE
    assert alerts[key].resolved_at_ms == 300_000
    alerts = _alert([], alerts, 300_000 + 15 * 60_000, params)
    assert key in alerts  # kept 15 minutes after resolving
    alerts = _alert([], alerts, 300_000 + 16 * 60_000, params)
    assert key not in alerts
    # A pending alert that misses one evaluation starts over.
    alerts = _alert(["x"], {}, 0, params)
    alerts = _alert([], alerts, 60_000, params)
    assert alerts == {}


def test_state_round_trips_through_plain_data() -> None:
    alerts = _alert(["x", "y"], {}, 0, state.Params())
    restored = {a.labels: a for a in (state.Alert.from_dict(v.to_dict()) for v in alerts.values())}
    assert restored == alerts
    assert state.needs_sending(alerts[(("a", "x"),)], 0, 60_000, notify_delay_ms=0)
    assert not state.needs_sending(alerts[(("a", "x"),)], 0, 60_000, notify_delay_ms=60_000)


SHARED_NAME_RULES = """\
groups:
  - name: shared
    interval: 1m
    rules:
      - alert: X
        expr: m > 5
        keep_firing_for: 1m
        labels: {severity: warning}
        dcmon: {hold: m > 4}
      - alert: X
        expr: m > 10
        keep_firing_for: 1m
        labels: {severity: critical}
        dcmon: {hold: m > 9}
"""
SHARED_NAME_TEST = """\
rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: m
        values: 6x3 9.5x5
    alert_rule_test:
      - eval_time: 6m
        alertname: X
        exp_alerts:
          - exp_labels: {severity: warning}
"""


def test_hysteresis_of_rules_sharing_an_alert_name_reads_only_its_own_alerts(
    tmp_path: Path,
) -> None:
    # The critical rule's hold (m > 9) must not be satisfied by the firing warning alert.
    (tmp_path / "rules.yaml").write_text(SHARED_NAME_RULES)
    (tmp_path / "test.yaml").write_text(SHARED_NAME_TEST)
    assert run_file(str(tmp_path / "test.yaml")).errors == []
    exported = tmp_path / "exported"
    exported.mkdir()
    rules = load_text(SHARED_NAME_RULES, "rules.yaml")
    (exported / "rules.yaml").write_text(export_text([rules]))
    (exported / "test.yaml").write_text(SHARED_NAME_TEST)
    ran = _promtool("test", "rules", str(exported / "test.yaml"))
    assert ran.returncode == 0, ran.stdout + ran.stderr
