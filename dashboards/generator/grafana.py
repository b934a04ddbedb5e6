"""Grafana dashboard models built from the specs.

Stage: dashboards (build time). Input: a ``spec.Dashboard``; output: its Grafana 10/11
dashboard model (schemaVersion 39) as plain dicts, ready for ``json.dumps``. Every dashboard
gets the same frame: uid ``dcmon-<name>``, tag ``dcmon``, a link menu to the other dcmon
dashboards, and a ``datasource`` variable of type prometheus that every panel and every target
reads (``panel.model``), so one dashboard serves a Prometheus that scrapes dcmon and dcmon's
own query API alike. Panels flow left to right on Grafana's 24-column grid under their rows,
and ids are numbered in order.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from dashboards.generator.panel import model
from dashboards.generator.spec import (
    DATASOURCE,
    DATASOURCE_VARIABLE,
    GRID_COLUMNS,
    JSON,
    TAG,
    Dashboard,
    Variable,
)

SCHEMA_VERSION = 39  # Grafana 10.3 to 11.2 write this; newer versions migrate it on load


@dataclass
class _Layout:
    """Places panels on the grid: left to right, a new line when a panel does not fit."""

    next_id: int = 1
    x: int = 0
    y: int = 0
    line_height: int = 0
    placed: list[JSON] = field(default_factory=list)

    def row(self, title: str) -> None:
        self._new_line()
        self.placed.append(
            {
                "type": "row",
                "title": title,
                "id": self._id(),
                "collapsed": False,
                "panels": [],
                "gridPos": {"h": 1, "w": GRID_COLUMNS, "x": 0, "y": self.y},
            }
        )
        self.y += 1

    def panel(self, model: JSON, width: int, height: int) -> None:
        if self.x + width > GRID_COLUMNS:
            self._new_line()
        model["id"] = self._id()
        model["gridPos"] = {"h": height, "w": width, "x": self.x, "y": self.y}
        self.placed.append(model)
        self.x += width
        self.line_height = max(self.line_height, height)

    def _new_line(self) -> None:
        self.y += self.line_height
        self.x = self.line_height = 0

    def _id(self) -> int:
        self.next_id += 1
        return self.next_id - 1


def build(dashboard: Dashboard) -> JSON:
    """Returns: the Grafana dashboard model of ``dashboard``."""
    layout = _Layout()
    for row in dashboard.rows:
        layout.row(row.title)
        for panel in row.panels:
            layout.panel(model(panel), panel.width, panel.height)
    return {
        "id": None,
        "uid": dashboard.uid,
        "title": dashboard.title,
        "description": dashboard.description,
        "tags": [TAG],
        "editable": True,
        "graphTooltip": 1,
        "schemaVersion": SCHEMA_VERSION,
        "version": 1,
        "time": {"from": dashboard.time_from, "to": "now"},
        "timepicker": {},
        "timezone": "",
        "refresh": "30s",
        "fiscalYearStartMonth": 0,
        "liveNow": False,
        "weekStart": "",
        "annotations": {"list": [_builtin_annotations()]},
        "links": [
            {
                "type": "dashboards",
                "tags": [TAG],
                "title": "dcmon dashboards",
                "asDropdown": True,
                "includeVars": True,
                "keepTime": True,
                "targetBlank": False,
                "icon": "external link",
                "tooltip": "",
                "url": "",
            }
        ],
        "templating": {"list": [_datasource_variable(), *map(_variable, dashboard.variables)]},
        "panels": layout.placed,
    }


def _builtin_annotations() -> JSON:
    return {
        "builtIn": 1,
        "datasource": {"type": "grafana", "uid": "-- Grafana --"},
        "enable": True,
        "hide": True,
        "iconColor": "rgba(0, 211, 255, 1)",
        "name": "Annotations & Alerts",
        "type": "dashboard",
    }


def _datasource_variable() -> JSON:
    return {
        "type": "datasource",
        "name": DATASOURCE_VARIABLE,
        "label": "Data source",
        "description": "A Prometheus that scrapes dcmon, or dcmon's own query API "
        "(http://<server>:8470/prometheus)",
        "query": "prometheus",
        "current": {},
        "hide": 0,
        "includeAll": False,
        "multi": False,
        "options": [],
        "refresh": 1,
        "regex": "",
    }


def _variable(variable: Variable) -> JSON:
    return {
        "type": "query",
        "name": variable.name,
        "label": variable.label,
        "datasource": DATASOURCE,
        "definition": variable.query,
        "query": {
            "qryType": 1,
            "query": variable.query,
            "refId": "PrometheusVariableQueryEditor-VariableQuery",
        },
        "refresh": 2,  # on time range change: nodes and jobs come and go
        "sort": 3 if variable.numeric else 1,
        "multi": variable.multi,
        "includeAll": variable.include_all,
        "current": {},
        "options": [],
        "regex": "",
        "hide": 0,
    }
