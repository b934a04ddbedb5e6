"""Run ``promtool check metrics`` and sort its findings into inherited and real problems.

promtool's linter flags names that node_exporter and dcgm-exporter themselves use (it flags
node_exporter's own output the same way): camelCase from /proc/meminfo field names
(node_memory_MemAvailable_bytes), dcgm-exporter's ``modelName`` label, and DCGM counters
without ``_total``. dcmon keeps those names on purpose (DESIGN decision 2) so existing
dashboards and alert rules work. Any other finding, and any parse error, is a real problem.
"""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass

from agent.collectors.host import HOST_COLLECTORS
from agent.wire.catalog import Catalog, default_catalog

_FINDING = re.compile(r"^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*) (?P<message>.+)$")


@dataclass(frozen=True)
class PromtoolResult:
    returncode: int
    inherited: list[str]
    unexpected: list[str]


def check_metrics(promtool: str, text: str, catalog: Catalog | None = None) -> PromtoolResult:
    catalog = catalog or default_catalog()
    completed = subprocess.run(
        [promtool, "check", "metrics"],
        input=text.encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    lines = (completed.stdout + completed.stderr).decode().splitlines()
    inherited: list[str] = []
    unexpected: list[str] = []
    for line in filter(None, (raw.strip() for raw in lines)):
        (inherited if _is_inherited(line, catalog) else unexpected).append(line)
    # Exit code 3 means "lint findings only"; 1 would be a parse error.
    if completed.returncode not in (0, 3):
        unexpected.append(f"promtool exited {completed.returncode}")
    return PromtoolResult(completed.returncode, inherited, unexpected)


def _is_inherited(line: str, catalog: Catalog) -> bool:
    match = _FINDING.match(line)
    if match is None:
        return False
    spec = catalog.get(match["name"])
    if spec is None:
        return False
    message = match["message"]
    if message == "metric names should be written in 'snake_case' not 'camelCase'":
        return spec.source in HOST_COLLECTORS
    if message == 'use base unit "bytes" instead of "bits"':
        return spec.source in HOST_COLLECTORS  # node_entropy_*_bits, node_exporter's own names
    if message == "label names should be written in 'snake_case' not 'camelCase'":
        return "modelName" in spec.labels
    if message in (
        'counter metrics should have "_total" suffix',
        "metric name should not include type 'counter'",  # DCGM_FI_DEV_PCIE_REPLAY_COUNTER
    ):
        return spec.name.startswith("DCGM_FI_")  # names as dcgm-exporter spells them
    return False
