"""The XID table: shipped data, classification rules, and refusal of malformed tables."""

from __future__ import annotations

import pytest

from agent.events.xid import XidTableError, load_xid_table

_MINIMAL = '[default]\nseverity = "warning"\naction = "INVESTIGATE"\n'


def test_the_shipped_table_marks_the_driver_killers_fatal() -> None:
    table = load_xid_table()
    assert table.fatal_codes() == {79, 119, 120}
    fallen = table.lookup(79)
    assert (fallen.mnemonic, fallen.severity, fallen.action) == (
        "GPU_HAS_FALLEN_OFF_THE_BUS",
        "critical",
        "RESTART_BM",
    )
    assert table.lookup(48).severity == "critical"
    assert table.lookup(63).severity == "warning"
    assert table.lookup(94).action == "RESTART_APP"
    assert table.lookup(92).severity == "info"


def test_unknown_codes_get_the_default() -> None:
    table = load_xid_table()
    assert 4242 not in table
    verdict = table.classify(4242)
    assert (verdict.mnemonic, verdict.severity, verdict.action, verdict.fatal_for_driver) == (
        "",
        "warning",
        "INVESTIGATE",
        False,
    )


def test_a_root_cause_raises_severity_and_fatality() -> None:
    table = load_xid_table()
    # 13 is an application fault, but here it follows a GSP timeout.
    verdict = table.classify(13, root_cause=119)
    assert (verdict.severity, verdict.action, verdict.fatal_for_driver) == (
        "critical",
        "RESTART_APP",
        True,
    )
    # A code that only reports an earlier error takes that error's advice.
    verdict = table.classify(154, root_cause=145)
    assert (verdict.mnemonic, verdict.severity, verdict.action) == (
        "GPU_RECOVERY_ACTION_CHANGED",
        "critical",
        "WORKFLOW_NVLINK5_ERR",
    )
    # A milder root cause does not lower a code's own severity.
    assert table.classify(79, root_cause=13).severity == "critical"


def test_a_recovery_action_is_the_advice() -> None:
    table = load_xid_table()
    assert table.classify(154, recovery_action=2).action == "NODE_REBOOT"
    assert table.classify(154, recovery_action=0).severity == "info"
    unknown = table.classify(154, recovery_action=42)
    assert (unknown.action, unknown.severity) == ("UNKNOWN_42", "critical")


def test_a_minimal_table_parses() -> None:
    text = _MINIMAL + '[[xid]]\ncode = 7\nseverity = "info"\naction = "IGNORE"\n'
    table = load_xid_table(text)
    assert table.lookup(7).severity == "info"
    assert table.lookup(8).action == "INVESTIGATE"
    assert table.fatal_codes() == frozenset()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[[xid]]\ncode = 1\nseverity = 'info'\naction = 'A'\n", "default"),
        (_MINIMAL + "[[xid]]\ncode = 1\nseverity = 'loud'\naction = 'A'\n", "severity"),
        (_MINIMAL + "[[xid]]\ncode = -1\nseverity = 'info'\naction = 'A'\n", "code"),
        (_MINIMAL + "[[xid]]\ncode = true\nseverity = 'info'\naction = 'A'\n", "code"),
        (_MINIMAL + "[[xid]]\ncode = 1\nseverity = 'info'\naction = ''\n", "action"),
        (_MINIMAL + "[[xid]]\ncode = 1\nseverity = 'info'\naction = 'A'\nbogus = 1\n", "unknown"),
        (
            _MINIMAL + "[[xid]]\ncode = 1\nseverity = 'info'\naction = 'A'\nfatal_for_driver = 1\n",
            "true or false",
        ),
        (
            _MINIMAL + "[[xid]]\ncode = 1\nseverity = 'info'\naction = 'A'\n" * 2,
            "twice",
        ),
        (_MINIMAL + "[[recovery_action]]\nvalue = 1\nname = ''\nseverity = 'info'\n", "name"),
        (_MINIMAL + "[extra]\n", "unknown tables"),
        ("xid = 3\n" + _MINIMAL, "array of tables"),
        ("[default\n", "xid.toml"),
    ],
)
def test_malformed_tables_are_refused(text: str, needle: str) -> None:
    with pytest.raises(XidTableError, match=needle):
        load_xid_table(text)
