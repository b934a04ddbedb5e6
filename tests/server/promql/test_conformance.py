"""Prometheus' own PromQL engine tests, run through dcmon's engine.

Prints, per file, how many ``eval`` statements passed, failed and were unsupported (``pytest -s``
shows it; it is also written to the test's temporary directory). The test fails on any failure
not listed in KNOWN_FAILURES, and on any listed one that now passes, so the list stays exact.
Unsupported evals (native histograms, functions dcmon refuses) are counted, never failures; at
least 95 % of the float-only evals (conformance.py says which) must pass.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.integration import integration_required
from tests.server.promql.conformance import FileReport, Runner

DATA = Path(__file__).resolve().parents[3] / ".." / "shared" / "conformance" / "promql"

# file:line of each eval known to give a wrong answer or wrong error behaviour, and why.
KNOWN_FAILURES: dict[str, str] = {
    # label_replace(testmetric, "\xff", ...): Go reads "\xff" as the invalid UTF-8 byte 0xff,
    # an invalid label name; the Rust parser decodes it as U+00FF, a valid one.
    "functions.test:523": "the parser turns the byte escape into a valid character",
}


def _data_dir() -> Path:
    if not DATA.is_dir() or not any(DATA.glob("*.test")):
        message = f"conformance data not found at {DATA}"
        if integration_required():
            pytest.fail(f"{message}, and DCMON_REQUIRE_INTEGRATION=1")
        pytest.skip(message)
    return DATA.resolve()


# The target: at least this share of the float-only evals pass.
FLOAT_ONLY_TARGET = 0.95


def float_only_counts(reports: list[FileReport]) -> dict[str, int]:
    """Returns: passed/failed/unsupported among the float-only evals (see conformance.py)."""
    counts = {"passed": 0, "failed": 0, "unsupported": 0}
    for report in reports:
        for outcome in report.outcomes.values():
            if outcome.float_only:
                counts[outcome.status] += 1
    return counts


def _table(reports: list[FileReport]) -> str:
    lines = [f"{'file':<26} {'passed':>7} {'failed':>7} {'unsupported':>12} {'total':>6}"]
    totals = [0, 0, 0]
    for report in reports:
        counts = [report.count(s) for s in ("passed", "failed", "unsupported")]
        totals = [a + b for a, b in zip(totals, counts, strict=True)]
        lines.append(
            f"{report.name:<26} {counts[0]:>7} {counts[1]:>7} {counts[2]:>12} {sum(counts):>6}"
        )
    lines.append(f"{'total':<26} {totals[0]:>7} {totals[1]:>7} {totals[2]:>12} {sum(totals):>6}")
    supported = totals[0] + totals[1]
    if sum(totals):
        lines.append(
            f"passed {100 * totals[0] / sum(totals):.1f} % of all evals, "
            f"{100 * totals[0] / max(supported, 1):.1f} % of those the engine answers"
        )
    floats = float_only_counts(reports)
    lines.append(
        f"float-only evals: {floats['passed']} passed, {floats['failed']} failed, "
        f"{floats['unsupported']} unsupported of {sum(floats.values())} "
        f"({100 * floats['passed'] / max(sum(floats.values()), 1):.2f} % passed)"
    )
    return "\n".join(lines)


def test_prometheus_conformance_suite(tmp_path: Path) -> None:
    directory = _data_dir()
    reports = [
        Runner().run(path.name, path.read_text(encoding="utf-8"))
        for path in sorted(directory.glob("*.test"))
    ]
    table = _table(reports)
    failures = {
        f"{report.name}:{line}": outcome.detail
        for report in reports
        for line, outcome in sorted(report.outcomes.items())
        if outcome.status == "failed"
    }
    details = "\n".join(f"  {key}: {detail}" for key, detail in failures.items())
    (tmp_path / "conformance.txt").write_text(f"{table}\n\nfailures:\n{details}\n")
    print(f"\nPromQL conformance\n{table}")

    new = sorted(set(failures) - set(KNOWN_FAILURES))
    fixed = sorted(set(KNOWN_FAILURES) - set(failures))
    assert not new, "new failures:\n" + "\n".join(f"  {k}: {failures[k]}" for k in new)
    assert not fixed, "now passing, remove from KNOWN_FAILURES: " + ", ".join(fixed)
    floats = float_only_counts(reports)
    assert floats["passed"] >= FLOAT_ONLY_TARGET * sum(floats.values()), floats
