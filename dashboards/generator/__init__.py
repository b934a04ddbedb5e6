"""dcmon's Grafana dashboards as code: compact panel specs in, dashboard JSON files out.

Stage: dashboards (build time). Input: one module per dashboard (``fleet``, ``node``, ``gpu``,
``job``, ``fabric``, ``alerts``, ``benchmarks``), each a ``grafana.Dashboard`` spec; output:
``render()``, the text of each ``dashboards/dcmon-<name>.json``. ``python -m
dashboards.generator`` writes them; ``--check`` only says whether the committed files match.
"""

from __future__ import annotations

import json
from pathlib import Path

from dashboards.generator import alerts, benchmarks, fabric, fleet, gpu, job, node
from dashboards.generator.grafana import build
from dashboards.generator.spec import Dashboard

DASHBOARDS: tuple[Dashboard, ...] = (
    fleet.DASHBOARD,
    node.DASHBOARD,
    gpu.DASHBOARD,
    job.DASHBOARD,
    fabric.DASHBOARD,
    alerts.DASHBOARD,
    benchmarks.DASHBOARD,
)
FOLDER = Path(__file__).resolve().parents[1]


def render() -> dict[str, str]:
    """Returns: file name -> JSON text (two-space indent, a final newline) of each dashboard."""
    return {
        f"{dashboard.uid}.json": json.dumps(build(dashboard), indent=2, ensure_ascii=False) + "\n"
        for dashboard in DASHBOARDS
    }
